"""Waste: the tokens each job's model calls used, so what an analysis costs is on record.

Revision ID: waste_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "waste_0005"
down_revision = "waste_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("model_tokens", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("model_tokens")

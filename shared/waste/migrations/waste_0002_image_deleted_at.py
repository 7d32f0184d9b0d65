"""Waste: remember when a job's image was deleted by retention or abandonment.

Revision ID: waste_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "waste_0002"
down_revision = "waste_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("image_deleted_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("image_deleted_at")

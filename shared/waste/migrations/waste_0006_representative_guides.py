"""Waste: the dictionary's 19 representative (per-category) guides, which search reads.

Revision ID: waste_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "waste_0006"
down_revision = "waste_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "representative_guides",
        sa.Column("category", sa.String(100), primary_key=True),
        sa.Column("guide_id", sa.String(40), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("representative_guides")

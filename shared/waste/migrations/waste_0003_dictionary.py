"""Waste: the imported disposal dictionary and the vision prompt's taxonomy.

Revision ID: waste_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "waste_0003"
down_revision = "waste_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guides",
        sa.Column("guide_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )
    op.create_table(
        "taxonomy_terms",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("term", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("taxonomy_terms")
    op.drop_table("guides")

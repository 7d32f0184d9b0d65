"""Batch: one row of analytics per Korean calendar day.

Revision ID: batch_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "batch_0001"
down_revision = None
branch_labels = ("batch",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_analytics",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("figures", sa.JSON, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("daily_analytics")

"""Users: the imported MOIS disposal schedules, one row per management area.

Revision ID: users_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "users_0001"
down_revision = None
branch_labels = ("users",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_areas",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("province", sa.String(40), nullable=False),
        sa.Column("district", sa.String(40), nullable=False),
        sa.Column("area", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedule_areas")

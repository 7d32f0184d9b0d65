"""Waste: bulky-waste collection fees and volume-rate bag prices per district.

Revision ID: waste_0008
"""

import sqlalchemy as sa
from alembic import op

revision = "waste_0008"
down_revision = "waste_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulky_fees",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("province", sa.String(40), nullable=False),
        sa.Column("district", sa.String(40), nullable=False),
        sa.Column("code", sa.String(10)),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("category", sa.Text),
        sa.Column("size", sa.Text),
        sa.Column("fee_krw", sa.Integer, nullable=False),
        sa.Column("data_date", sa.String(10)),
    )
    op.create_index("ix_bulky_fees_place", "bulky_fees", ["province", "district"])
    op.create_table(
        "bag_prices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("province", sa.String(40), nullable=False),
        sa.Column("district", sa.String(40), nullable=False),
        sa.Column("code", sa.String(10)),
        sa.Column("use", sa.Text),
        sa.Column("kind", sa.Text),
        sa.Column("method", sa.Text),
        sa.Column("target", sa.Text),
        sa.Column("prices", sa.JSON, nullable=False),
        sa.Column("data_date", sa.String(10)),
    )
    op.create_index("ix_bag_prices_place", "bag_prices", ["province", "district"])


def downgrade() -> None:
    op.drop_table("bag_prices")
    op.drop_table("bulky_fees")

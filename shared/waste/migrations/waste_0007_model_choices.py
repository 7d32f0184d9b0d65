"""Waste: the model's choice among a job's candidates, so a redelivered classify step does not
pay for the same question again.

Revision ID: waste_0007
"""

import sqlalchemy as sa
from alembic import op

revision = "waste_0007"
down_revision = "waste_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_choices",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("question", sa.String(64), primary_key=True),
        sa.Column("guide_id", sa.String(40)),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_choices")

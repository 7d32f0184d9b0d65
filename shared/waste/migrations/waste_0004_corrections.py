"""Waste: the guides users chose over growbin's answer.

Revision ID: waste_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "waste_0004"
down_revision = "waste_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corrections",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("image_sha256", sa.String(64)),
        sa.Column("detected_name", sa.String(100), nullable=False),
        sa.Column("proposed_guide_id", sa.String(40), nullable=False),
        sa.Column("chosen_guide_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("corrections_by_image", "corrections", ["user_id", "image_sha256"])


def downgrade() -> None:
    op.drop_index("corrections_by_image", "corrections")
    op.drop_table("corrections")

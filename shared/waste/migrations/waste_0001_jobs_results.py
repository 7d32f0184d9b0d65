"""Waste: analysis jobs, their stage times, results, and the vision answers by image hash.

Revision ID: waste_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "waste_0001"
down_revision = None
branch_labels = ("waste",)
depends_on = "accounts_0001"


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("content_length", sa.Integer, nullable=False),
        sa.Column("hint", sa.String(100)),
        sa.Column("image_key", sa.String(200), nullable=False),
        sa.Column("image_sha256", sa.String(64)),
        sa.Column("vision_source", sa.String(10)),
        sa.Column("error_code", sa.String(40)),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
    )
    # History pages by user, newest queued first; the sweep and analytics scan by status, time.
    op.create_index("ix_jobs_user_id_queued_at", "jobs", ["user_id", "queued_at", "id"])
    op.create_index("ix_jobs_status_updated_at", "jobs", ["status", "updated_at"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_table(
        "job_stages",
        sa.Column(
            "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("stage", sa.String(20), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "results",
        sa.Column(
            "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("guide_id", sa.String(40), nullable=False),
        sa.Column("item_name", sa.String(100), nullable=False),
        sa.Column("major", sa.String(40), nullable=False),
        sa.Column("middle", sa.String(40), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_results_user_id", "results", ["user_id"])
    op.create_table(
        "vision_cache",
        sa.Column("image_sha256", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(100), primary_key=True),
        sa.Column("description", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("vision_cache", "results", "job_stages", "jobs"):
        op.drop_table(table)

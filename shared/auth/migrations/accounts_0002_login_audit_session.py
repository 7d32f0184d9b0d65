"""Accounts: each login audit row names the session the login started.

Revision ID: accounts_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "accounts_0002"
down_revision = "accounts_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("login_audit", sa.Column("session_id", sa.String(36)))


def downgrade() -> None:
    with op.batch_alter_table("login_audit") as batch:
        batch.drop_column("session_id")

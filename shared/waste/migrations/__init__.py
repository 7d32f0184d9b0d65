"""Alembic revisions of this domain's branch; `shared.core.db.migrate` finds this folder."""

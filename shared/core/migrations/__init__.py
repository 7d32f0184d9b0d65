"""Alembic migrations, one branch per domain (`upgrade heads`)."""

"""The tables the code declares are the tables the migrations make: no drift either way."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.core import db


def test_migrations_make_what_the_code_declares(backend):
    import eventing.dead_letters  # noqa: F401 (declares its table)
    from functions import load_all

    load_all()  # every module that declares a table is imported by some function
    db.migrate()
    with db.engine().connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert differences == []

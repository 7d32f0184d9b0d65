"""The database: SQLite under the data directory by default, PostgreSQL when DATABASE_URL says so.

Tables are declared with SQLAlchemy Core next to the rules that use them (`shared/waste/jobs.py`,
`shared/auth/accounts.py`, ...) on the one `metadata` below. Each domain keeps its Alembic
branch in its own `migrations/` folder (the platform's in `shared/core/migrations/versions`);
`migrate` finds the folders on disk, so the platform imports no domain.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, Table, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.types import TypeDecorator

from shared.core.settings import settings

MIGRATIONS = Path(__file__).parent / "migrations"
# Every package of `shared` may hold a `migrations/` folder of its own: one branch per domain.
VERSION_FOLDERS = [MIGRATIONS / "versions", *sorted(Path(__file__).parents[1].glob("*/migrations"))]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def now() -> datetime:
    return datetime.now(UTC)


def _url() -> str:
    url = settings().database_url
    # psycopg 3 is the driver; accept the plain URLs operators write.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@cache
def engine() -> Engine:
    url = _url()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return eng
    timeout = settings().database_timeout
    eng = create_engine(
        url,
        pool_size=10,
        # every request thread may hold a connection at once (THREADS is 32 for model-bound
        # functions; more take turns): beyond pool_size opened on demand, closed when returned
        max_overflow=max(10, settings().pooled_threads),
        pool_timeout=timeout,  # waiting for a free connection is waiting for the database too
        connect_args={"connect_timeout": max(2, round(timeout))},  # libpq's minimum is 2 s
    )

    @event.listens_for(eng, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        return _answering_connection().connect(*cargs, answer_timeout=timeout, **cparams)

    _ping_when_in_doubt(eng)
    return eng


# How long a connection back in the pool with nothing to read on its socket is trusted without a
# ping. A server that closes or resets a connection leaves an EOF, an error or a notice there;
# what leaves nothing (a peer gone silent, a NAT that forgot it) happens after minutes of quiet.
TRUSTED_IDLE = 10.0


def _ping_when_in_doubt(eng: Engine) -> None:
    """Replace a pooled connection that died before it is handed out, as `pool_pre_ping` does,
    but ping only when in doubt: pinging every checkout was 12 of a job's ~61 PostgreSQL round
    trips (docs/profiles/README.md), to learn what a look at the socket already tells."""

    @event.listens_for(eng, "connect")
    @event.listens_for(eng, "checkin")
    def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(eng, "checkout")
    def _alive(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since", 0.0)
        if time.monotonic() - idle_since < TRUSTED_IDLE and not _has_input(dbapi_connection):
            return
        try:
            eng.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if eng.dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool drops this connection and connects anew (the others, dead too if the
                # server restarted, show it on their own sockets).
                raise DisconnectionError(str(exc)) from exc
            raise


def _has_input(dbapi_connection: Any) -> bool:
    """Whether an idle connection's socket has something to read: the server closed or reset it,
    or said something unasked. Either way the connection is pinged before use."""
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


@cache
def _answering_connection() -> type:
    """A psycopg connection that waits at most `answer_timeout` seconds for any answer.

    connect_timeout bounds only connecting. A server that accepts but never answers (hung,
    or a network path that swallows packets while the peer's kernel still ACKs) would hold
    a request forever on a pooled connection; this gives every round trip a deadline, after
    which the connection is dropped (its protocol state is unknown) and the caller gets an
    OperationalError: a 503 for HTTP, a retry for the broker. SQLAlchemy sees the connection
    closed, counts it as a disconnect and recycles the pool.
    """
    import psycopg
    from psycopg import pq

    class AnsweringConnection(psycopg.Connection):
        answer_timeout: float = 0

        @classmethod
        def connect(cls, *args: Any, answer_timeout: float, **kwargs: Any) -> AnsweringConnection:
            conn = super().connect(*args, **kwargs)
            conn.answer_timeout = answer_timeout
            return conn

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            try:
                deadline = timeout if timeout is not None else (self.answer_timeout or None)
                return super().wait(gen, interval, deadline)
            except psycopg.OperationalError:
                if self.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                    # Interrupted mid-query: nothing more can be read from this connection.
                    self.pgconn.finish()
                    raise psycopg.OperationalError(
                        f"the database did not answer within {self.answer_timeout:g} s"
                    ) from None
                raise

    return AnsweringConnection


# SQLite admits one writer at a time and makes the others poll: its busy handler sleeps 1, 2, 5
# ... up to 100 ms between tries, so under load the lock sits free while writers sleep (40 jobs
# at once spent most of their time there). This process's writers queue on a lock instead and
# take turns as soon as the last one commits; the busy handler is left for other processes.
_sqlite_writer = threading.RLock()


@contextmanager
def transaction() -> Iterator[Connection]:
    """A connection inside a transaction that commits on success: `with db.transaction() as c:`."""
    eng = engine()
    if eng.dialect.name == "sqlite":
        with _sqlite_writer, eng.begin() as conn:
            yield conn
    else:
        with eng.begin() as conn:
            yield conn


@contextmanager
def reading() -> Iterator[Connection]:
    """A connection for reads that need no transaction: `with db.reading() as c:`.

    Each statement sees what is committed when it runs, as it would inside a transaction at
    READ COMMITTED. On PostgreSQL it runs in autocommit, which saves a BEGIN and a ROLLBACK round
    trip per use; SQLite's driver opens no transaction for a SELECT anyway."""
    with engine().connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def upsert(
    conn: Connection,
    table: Table,
    values: dict[str, Any],
    keys: list[str],
    update: list[str] | None = None,
) -> None:
    """Insert, or on a key conflict update `update` columns (or do nothing when None)."""
    conn.execute(
        _upsert_statement(conn.dialect.name, table, tuple(keys), tuple(update or ())), values
    )


@cache
def _upsert_statement(dialect: str, table: Table, keys: tuple[str, ...], update: tuple) -> Any:
    """One statement per shape, its columns and values bound at execution: building and hashing
    a new statement on every call cost more CPU than running it (every pipeline stage upserts)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    if update:
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
        )
    return stmt.on_conflict_do_nothing(index_elements=list(keys))


def migrate() -> None:
    """Bring the schema to the newest revision of every branch (Alembic `upgrade heads`)."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per plugin and revision
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations", os.pathsep.join(str(f) for f in VERSION_FOLDERS if f != MIGRATIONS)
    )
    with engine().begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")


def reset() -> None:
    """Forget the engine (tests and forks that change DATABASE_URL)."""
    if engine.cache_info().currsize:
        engine().dispose()
    engine.cache_clear()

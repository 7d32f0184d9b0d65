"""Connection pools sized from the server's concurrency (issue 18): a burst of requests waits
for a connection rather than being told the cache is unavailable while Redis is healthy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from conftest import reset_clients

from shared.core import cache, db, settings


def test_threads_defaults_to_functions_frameworks_own(env):
    import os

    assert settings.settings().threads == (os.cpu_count() or 1) * 4
    env.setenv("THREADS", "32")
    reset_clients()
    assert settings.settings().threads == 32


def test_the_redis_pool_holds_a_connection_per_thread_and_makes_the_rest_wait(env):
    import redis

    env.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never connected to here
    env.setenv("THREADS", "32")
    reset_clients()
    pool = cache.client().connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert pool.max_connections == 32 + cache.POOL_SPARE
    assert pool.timeout == 2
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == 2 and kwargs["retry"].get_retries() == 1
    # A thousand stream threads (they sleep, and reach Redis only to open) take turns.
    env.setenv("THREADS", "1000")
    reset_clients()
    pooled = settings.POOLED_THREADS
    assert cache.client().connection_pool.max_connections == pooled + cache.POOL_SPARE


def test_the_database_pool_grows_to_a_connection_per_thread_up_to_the_same_cap(env):
    """A progress stream's thousand threads must not open a thousand PostgreSQL connections
    (the server's default limit is 100 for every client together)."""
    env.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")  # never connected to
    for threads, overflow in (("8", 10), ("32", 32), ("1000", settings.POOLED_THREADS)):
        env.setenv("THREADS", threads)
        reset_clients()
        pool = db.engine().pool
        assert (pool.size(), pool._max_overflow) == (10, overflow), threads


def test_more_callers_than_connections_all_get_an_answer(services):
    """On the real Redis: 60 callers at once through a pool of THREADS + spare connections."""
    services.setenv("THREADS", "2")
    reset_clients()
    client = cache.client()
    client.set("burst", "ok")

    def call(_: int) -> str | None:
        return client.get("burst")

    with ThreadPoolExecutor(60) as pool:
        answers = list(pool.map(call, range(600)))
    assert answers == ["ok"] * 600


def test_the_mget_lane_keeps_at_most_a_connection_per_pooled_thread(services):
    """The MGET every protected request makes runs on kept connections (redis_client), at
    most one per thread that may hold one; callers beyond them take the pool's turns."""
    services.setenv("THREADS", "2")
    reset_clients()
    client = cache.client()
    client.set("burst", "ok")

    def call(_: int) -> list[str | None]:
        return client.mget(["burst", "missing"])

    with ThreadPoolExecutor(60) as pool:
        answers = list(pool.map(call, range(600)))
    assert answers == [["ok", None]] * 600
    assert client._made <= 2 and len(client._idle) <= 2


def _ping_count(monkeypatch) -> list:
    """The pings the pool sends, counted at the dialect's own `do_ping`."""
    dialect = db.engine().dialect
    pings: list = []
    real = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda conn: pings.append(conn) or real(conn))
    return pings


def _backend_pid() -> int:
    from sqlalchemy import text

    with db.reading() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_back_in_the_pool_moments_ago_is_handed_out_without_a_ping(
    services, monkeypatch
):
    pings = _ping_count(monkeypatch)
    pids = {_backend_pid() for _ in range(5)}
    assert pings == [] and len(pids) == 1  # the same connection, five times, never pinged
    monkeypatch.setattr(db, "TRUSTED_IDLE", 0.0)  # as if it had sat in the pool for long
    assert _backend_pid() in pids
    assert len(pings) == 1


def test_a_pooled_connection_the_server_ended_is_replaced_before_use(services):
    """PostgreSQL restarted, or an administrator ended the session: the socket of the pooled
    connection holds the server's goodbye, so the pool pings it, finds it dead and connects
    anew; the caller never sees the dead one."""
    import time

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    first = _backend_pid()
    # Not the pool under test; autocommit, so that each look at pg_stat_activity is fresh.
    admin = create_engine(db.engine().url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        deadline = time.monotonic() + 5
        while conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": first}
        ).scalar_one():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.01)
    assert _backend_pid() != first

"""Whether the dependencies this process is configured with answer: for operators, not probes.

Kubernetes probes stay TCP checks of the function's own port (knative/render/services.py).
A readiness probe that followed PostgreSQL would take every pod out of service at once during
an outage, so clients would get the gateway's bare 503 instead of the contract's UNAVAILABLE,
and the pods would come back only as fast as the probe period; a liveness probe that followed
it would restart pods a restart cannot fix. What operators ask instead is this: each
dependency, timed, each bounded by the client's own timeouts (DATABASE_TIMEOUT, Redis' socket
timeout, S3_TIMEOUT).
"""

from __future__ import annotations

import time
from typing import Any


def _database() -> None:
    from sqlalchemy import text

    from shared.core import db

    with db.engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def _cache() -> None:
    from shared.core import cache

    cache.client().ping()


def _storage() -> None:
    from shared.core import storage

    storage.check()


CHECKS = {"database": _database, "cache": _cache, "storage": _storage}


def check() -> dict[str, dict[str, Any]]:
    """`{"database": {"ok", "ms", "error"?}, "cache": {...}, "storage": {...}}`; never raises."""
    results: dict[str, dict[str, Any]] = {}
    for name, probe in CHECKS.items():
        started = time.perf_counter()
        try:
            probe()
        except Exception as exc:  # any failure is the answer here, not an error
            error: str | None = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        else:
            error = None
        results[name] = {"ok": error is None, "ms": round((time.perf_counter() - started) * 1000)}
        if error:
            results[name]["error"] = error
    return results

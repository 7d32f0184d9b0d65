"""What a protected request pays to know its caller, against the bare signature check.

Every protected function calls `callers.authenticate`: an ES256 verification plus the session's
state, from the cache (hit) or the sessions table (miss). The baseline is `jwt.decode` alone, run
in the same process on the same token, so the table reads as "overhead over the crypto".
Runs on the embedded default; REDIS_URL (and DATABASE_URL) measure the real services (it migrates
the database it is given, so point DATABASE_URL at a scratch database, not a shared one).

    PYTHONPATH=. python bench/auth.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable


def _per_call_us(fn: Callable[[], object], rounds: int) -> float:
    for _ in range(min(rounds, 100)):  # warm up
        fn()
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        samples.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("GROWBIN_DATA_DIR", tempfile.mkdtemp(prefix="growbin-bench-"))

    import jwt

    from shared.auth import accounts, callers, sessions, tokens
    from shared.core import cache, db
    from shared.core.settings import settings

    db.migrate()
    user = accounts.find_or_create("dev", "bench", "bench")
    pair = sessions.start(user, "bench")
    access = pair["access_token"]
    header = f"Bearer {access}"
    _kid, key = tokens.signing_key()
    public = key.public_key()
    session_id = tokens.verify(access).session_id
    state_key = tokens.session_key(session_id)

    def baseline() -> None:
        jwt.decode(
            access,
            public,
            algorithms=["ES256"],
            audience=settings().jwt_audience,
            issuer=settings().jwt_issuer,
        )

    def cache_miss() -> None:
        cache.client().delete(state_key)
        callers.authenticate(header)

    backend = (
        f"{db.engine().dialect.name}, cache: {'redis' if settings().redis_url else 'in-process'}"
    )
    rows = [
        ("jwt.decode only (baseline)", _per_call_us(baseline, args.rounds)),
        ("tokens.verify", _per_call_us(lambda: tokens.verify(access), args.rounds)),
        (
            "authenticate, session cached",
            _per_call_us(lambda: callers.authenticate(header), args.rounds),
        ),
        ("authenticate, cache miss -> table", _per_call_us(cache_miss, max(args.rounds // 4, 50))),
    ]
    base = rows[0][1]
    print(f"backend: {backend}; {args.rounds} rounds x 5, median per call")
    print(f"{'what':38} {'us/call':>9} {'x baseline':>11}")
    for name, value in rows:
        print(f"{name:38} {value:9.1f} {value / base:11.2f}")
    sessions.revoke(session_id, "bench")


if __name__ == "__main__":
    main()

"""Outage benchmark: how fast PostgreSQL or Redis being down is answered, and how recovery goes.

Against the real servers at DATABASE_URL and REDIS_URL (never stopped: the app reaches them
through tests/faults.py's proxy, which this cuts or blackholes), with the shipping
DATABASE_TIMEOUT unless --timeout says otherwise, in a schema of its own that it drops after.

For each dependency and fault: the seconds each call (login, analyze, status, history) takes
to answer 503 while it is down, against the same call's healthy latency measured in the same
run; then whether the first calls after the restore succeed. Last, the pipeline: an upload
event published while the database is down for --outage seconds, and the time from the
restore until the job is completed by the broker's retries (Trigger delivery: 5 retries,
exponential from 0.5 s, so an outage past ~15 s ends in the dead letters instead).

Run: `python bench/outage.py [--timeout 5] [--outage 3] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from shared.core import datasets  # noqa: E402 (after the path)

PHOTO = (datasets.root() / "images/trashnet_sample/cardboard/cardboard2.jpg").read_bytes()
CALLS = ("login", "analyze", "status", "history")
DATA_DIR = tempfile.TemporaryDirectory(prefix="growbin-bench-")  # removed at exit


def _setup(timeout: float) -> tuple:
    import sqlalchemy
    from conftest import reset_clients
    from faults import proxied

    database, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not database or not redis_url:
        sys.exit("set DATABASE_URL and REDIS_URL: this measures outages of the real servers")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in database else "?"
    scoped = f"{database}{separator}options=-csearch_path%3D{schema}"
    db_proxy, cache_proxy = proxied(scoped), proxied(redis_url)
    for name in ("BROKER_URL", "S3_BUCKET", "OPENAI_API_KEY", "K_SINK"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "GROWBIN_DATA_DIR": DATA_DIR.name,
            "GROWBIN_PUBLIC_URL": "http://localhost",
            "DATABASE_URL": db_proxy.url(scoped),
            "REDIS_URL": cache_proxy.url(redis_url),
            "DATABASE_TIMEOUT": str(timeout),
        }
    )
    reset_clients()
    from knative import local

    return local.start(with_cron=False), {"database": db_proxy, "cache": cache_proxy}, admin, schema


def _login(client, name: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/login/dev", json={"user": name}).get_json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _uploaded_job(client, headers, hint: str = "우유팩") -> str:
    import io

    created = client.post(
        "/api/v1/waste/analyze",
        json={"content_type": "image/jpeg", "content_length": len(PHOTO), "hint": hint},
        headers=headers,
    ).get_json()
    fields = {**created["upload"]["fields"], "file": (io.BytesIO(PHOTO), "p.jpg", "image/jpeg")}
    path = created["upload"]["url"].replace("http://localhost", "")
    assert client.post(path, data=fields, content_type="multipart/form-data").status_code == 204
    return created["job_id"]


def _calls(client, headers, job_id):
    return {
        "login": lambda: client.post("/api/v1/auth/login/dev", json={"user": "bench-2"}),
        "analyze": lambda: client.post(
            "/api/v1/waste/analyze",
            json={"content_type": "image/png", "content_length": 2048, "hint": "페트병"},
            headers=headers,
        ),
        "status": lambda: client.get(f"/api/v1/waste/status/{job_id}", headers=headers),
        "history": lambda: client.get("/api/v1/users/history", headers=headers),
    }


def _timed(call) -> tuple[int, float]:
    started = time.perf_counter()
    status = call().status_code
    return status, time.perf_counter() - started


def _outages(system, proxies, rounds: int) -> dict:
    from shared.core import cache

    client = system.app.test_client()
    headers = _login(client, "bench-1")
    job_id = _uploaded_job(client, headers)
    calls = _calls(client, headers, job_id)
    healthy = {name: [] for name in CALLS}
    for _ in range(rounds):
        for name, call in calls.items():
            healthy[name].append(_timed(call)[1])
    results: dict = {
        "healthy_ms": {n: round(statistics.median(v) * 1000, 1) for n, v in healthy.items()}
    }
    for dependency, proxy in proxies.items():
        for fault in ("cut", "blackhole"):
            getattr(proxy, fault)()
            if dependency == "database":
                cache.client().delete(f"job:{job_id}:status")  # polling a cached view needs no db
            down = {name: _timed(call) for name, call in calls.items()}
            proxy.restore()
            after = {name: _timed(call)[0] for name, call in calls.items()}
            results[f"{dependency}_{fault}"] = {
                "statuses": {name: status for name, (status, _) in down.items()},
                "seconds_to_503": {name: round(s, 3) for name, (_, s) in down.items()},
                "first_calls_after_restore": after,
            }
    return results


def _pipeline(system, proxies, outage: float) -> dict:
    from shared.waste import jobs, messages

    client = system.app.test_client()
    headers = _login(client, "bench-3")
    job_id = _uploaded_job(client, headers)
    jobs.advance(job_id, "queued")
    proxies["database"].cut()
    system.broker.publish(messages.event(messages.Uploaded(job_id), cause=job_id))
    time.sleep(outage)
    proxies["database"].restore()
    restored = time.perf_counter()
    system.broker.wait_idle(60)
    done = time.perf_counter() - restored
    status = client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()["status"]
    return {"outage_s": outage, "status": status, "completed_s_after_restore": round(done, 2)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=5.0, help="DATABASE_TIMEOUT")
    parser.add_argument("--outage", type=float, default=3.0, help="database outage, seconds")
    parser.add_argument("--rounds", type=int, default=20, help="healthy calls per baseline")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import logging

    logging.disable(logging.CRITICAL)
    system, proxies, admin, schema = _setup(args.timeout)
    try:
        results = _outages(system, proxies, args.rounds)
        results["pipeline"] = _pipeline(system, proxies, args.outage)
    finally:
        system.broker.wait_idle(10)
        system.stop()
        for proxy in proxies.values():
            proxy.stop()
        from shared.core import db

        db.reset()
        import sqlalchemy

        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    results["database_timeout_s"] = args.timeout

    print(f"DATABASE_TIMEOUT={args.timeout:g} s; healthy latency, ms (median of {args.rounds}):")
    print("  " + "  ".join(f"{n} {results['healthy_ms'][n]}" for n in CALLS))
    print(f"{'outage':<20}{'call':<10}{'status':>7}{'s to answer':>13}{'after restore':>15}")
    for key, outcome in results.items():
        if not isinstance(outcome, dict) or "statuses" not in outcome:
            continue
        for name in CALLS:
            print(
                f"{key:<20}{name:<10}{outcome['statuses'][name]:>7}"
                f"{outcome['seconds_to_503'][name]:>13.3f}"
                f"{outcome['first_calls_after_restore'][name]:>15}"
            )
    run = results["pipeline"]
    print(
        f"pipeline: database down {run['outage_s']:g} s with the upload event in the broker -> "
        f"{run['status']} {run['completed_s_after_restore']} s after the restore"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

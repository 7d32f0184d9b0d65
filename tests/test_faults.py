"""PostgreSQL or Redis down: 503 UNAVAILABLE with Retry-After, never a 500, and recovery with
no restart once they are back; event functions raise so the broker retries, and the job
completes after the database returns.

The real servers stay up (colleagues' tests share them): the app reaches them through a
`FaultyProxy` (tests/faults.py) that this file cuts, blackholes and restores.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jsonschema
import pytest
from conftest import error_code, login, reset_clients
from faults import FaultyProxy, proxied
from test_waste import start

from knative.openapi import ERROR
from shared.core import cache, db
from shared.waste import jobs, messages

TIMEOUT = 2  # DATABASE_TIMEOUT here: libpq's connect_timeout cannot go lower
# A guard against hanging, not a speed goal (bench/outage.py measures): a blackholed database
# costs one answer timeout on a pooled connection, then one connect timeout on the fresh
# connection the pre-ping asks for; a blackholed Redis one socket timeout (2 s).
SLOWEST_503 = 2 * TIMEOUT + 1.5


@dataclass
class Proxies:
    database: FaultyProxy
    cache: FaultyProxy


@pytest.fixture
def proxies(services):
    """The services backend, with the app's DATABASE_URL and REDIS_URL through fault proxies."""
    database = proxied(os.environ["DATABASE_URL"])
    redis = proxied(os.environ["REDIS_URL"])
    services.setenv("DATABASE_URL", database.url(os.environ["DATABASE_URL"]))
    services.setenv("REDIS_URL", redis.url(os.environ["REDIS_URL"]))
    services.setenv("DATABASE_TIMEOUT", str(TIMEOUT))
    reset_clients()
    yield Proxies(database, redis)
    database.stop()
    redis.stop()


@pytest.fixture
def outage(proxies):
    """The local runtime behind the proxies; retries at a tenth of their declared delays."""
    from knative import local

    system = local.start(time_scale=0.1, with_cron=False, with_bins=False)
    yield system, proxies
    system.broker.wait_idle(10)
    system.stop()


def assert_unavailable(response, dependency: str) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    jsonschema.validate(body, ERROR)
    assert error_code(response) == "UNAVAILABLE"
    assert dependency in body["error"]["message"]
    assert int(response.headers["Retry-After"]) > 0


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def all_at_once(calls) -> dict:
    """Every call at the same time, as clients keep calling during an outage: name ->
    (response, seconds). Concurrent calls also share the stuck pool."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(timed, call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def _calls(app, headers, job_id):
    """What the mobile app does most: sign in, start an analysis, poll it, read the history.
    Each call with its own client, so they can run at once."""
    client = _Clients(app)
    return {
        "login": lambda: client.post("/api/v1/auth/login/dev", json={"user": "ben"}),
        "analyze": lambda: client.post(
            "/api/v1/waste/analyze",
            json={"content_type": "image/png", "content_length": 2048, "hint": "캔"},
            headers=headers,
        ),
        "status": lambda: client.get(f"/api/v1/waste/status/{job_id}", headers=headers),
        "history": lambda: client.get("/api/v1/users/history", headers=headers),
    }


def _assert_not_ready(client, dependency: str) -> None:
    """The operators' check names what is down; liveness does not care (it touches nothing)."""
    healthz, elapsed = timed(lambda: client.get("/healthz"))
    assert healthz.status_code == 200 and elapsed < 0.5
    ready = client.get("/readyz")
    assert_unavailable(ready, dependency)
    checks = ready.get_json()["error"]["details"]["dependencies"]
    assert {name for name, check in checks.items() if not check["ok"]} == {dependency}
    assert checks[dependency]["error"]


def _assert_recovered(client, calls, engine, redis) -> None:
    expected = {"login": 200, "analyze": 201, "status": 200, "history": 200}
    for name, call in calls.items():
        response = call()
        assert response.status_code == expected[name], (name, response.get_data(as_text=True))
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ok"
    # the same process-wide clients: recovery needed no restart and no reset
    assert db.engine() is engine and cache.client() is redis


class _Clients:
    """A fresh test client per call: one Werkzeug client is not meant for several threads."""

    def __init__(self, app) -> None:
        self.app = app

    def get(self, *args, **kwargs):
        return self.app.test_client().get(*args, **kwargs)

    def post(self, *args, **kwargs):
        return self.app.test_client().post(*args, **kwargs)


def _signed_in(system):
    """A user with an uploaded job, and the calls to make: (client, calls, job_id)."""
    client = system.app.test_client()
    headers = login(client, "ana")
    job_id = start(client, headers, hint="페트병")["job_id"]
    return client, _calls(system.app, headers, job_id), job_id


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
@pytest.mark.parametrize("dependency", ["database", "cache"])
def test_dependency_down_is_503_then_recovers_by_itself(outage, dependency, fault):
    system, proxies = outage
    client, calls, job_id = _signed_in(system)
    engine, redis = db.engine(), cache.client()
    proxy = getattr(proxies, dependency)

    getattr(proxy, fault)()
    _assert_not_ready(client, dependency)
    if dependency == "database":
        # The poller's view is in Redis: a cached job goes on answering without PostgreSQL.
        assert calls["status"]().status_code == 200
        redis.delete(f"job:{job_id}:status")  # a view no longer cached needs the database
    # (Redis down: every protected call asks it whether the session is alive, login writes
    # the session there; all of them are 503.)
    for name, (response, elapsed) in all_at_once(calls).items():
        assert_unavailable(response, dependency)
        assert elapsed < SLOWEST_503, (name, elapsed)  # bounded, not hanging

    proxy.restore()
    _assert_recovered(client, calls, engine, redis)


def test_a_restart_in_a_quiet_moment_costs_no_request(outage):
    """Both servers restart while nobody calls: every pooled connection is dead, and the first
    calls afterwards must still succeed (the pool pre-pings, Redis reconnects once)."""
    system, proxies = outage
    client, calls, _job_id = _signed_in(system)
    engine, redis = db.engine(), cache.client()
    for proxy in (proxies.database, proxies.cache):
        proxy.cut()
        proxy.restore()
    _assert_recovered(client, calls, engine, redis)


def test_analyses_refused_in_an_outage_leave_the_allowance_whole(outage):
    """A client retrying through a database outage must not find itself rate limited for an
    hour once the database is back: a refused call gives its count back."""
    from functions.waste import ANALYZE_LIMIT

    system, proxies = outage
    _client, calls, _job_id = _signed_in(system)
    proxies.database.cut()
    for _ in range(ANALYZE_LIMIT[0] + 1):
        assert_unavailable(calls["analyze"](), "database")
    proxies.database.restore()
    assert calls["analyze"]().status_code == 201


@pytest.mark.parametrize("backend", ["embedded", "services"], indirect=True)
def test_a_failed_call_gives_its_count_back(backend):
    from shared.core.errors import ApiError

    key = f"ratelimit:test:{uuid.uuid4().hex}"
    for _ in range(5):
        with pytest.raises(RuntimeError), cache.rate_limited(key, 2, 60, "slow down"):
            raise RuntimeError("the work failed")
    for _ in range(2):
        with cache.rate_limited(key, 2, 60, "slow down"):
            pass
    with pytest.raises(ApiError) as refused, cache.rate_limited(key, 2, 60, "slow down"):
        pass
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) > 0
    cache.client().delete(key)


def test_a_step_taken_while_redis_was_down_shows_once_it_is_back(outage):
    """A stage moved the job in PostgreSQL, then failed to publish the view to Redis; the
    broker's retry finds the step taken. Pollers must see it, not the stale view."""
    import redis

    system, proxies = outage
    _client, calls, job_id = _signed_in(system)
    assert jobs.advance(job_id, "queued")
    proxies.cache.cut()
    with pytest.raises(redis.ConnectionError):
        jobs.advance(job_id, "analyze")  # the database took the step, the cache did not
    proxies.cache.restore()
    assert not jobs.advance(job_id, "analyze")  # the retry: nothing left to move
    view = calls["status"]().get_json()
    assert (view["stage"], view["progress"]) == ("analyze", jobs.STAGES["analyze"][1])


def _queued_job(client, headers) -> str:
    """A job whose image is uploaded and which upload-complete has queued."""
    job_id = start(client, headers, hint="우유팩")["job_id"]
    assert jobs.advance(job_id, "queued")
    return job_id


def _uploaded_event(job_id: str):
    """The event upload-complete emits for the job: the same id every time."""
    return messages.event(messages.Uploaded(job_id), cause=job_id)


def test_event_function_raises_while_the_database_is_down(outage):
    import sqlalchemy.exc

    system, proxies = outage
    job_id = _queued_job(system.app.test_client(), login(system.app.test_client(), "ana"))
    proxies.database.cut()
    with pytest.raises(sqlalchemy.exc.OperationalError):
        system.registry["image_analyze"].handler(_uploaded_event(job_id))
    proxies.database.restore()
    system.registry["image_analyze"].handler(_uploaded_event(job_id))  # now it goes through


def test_pipeline_retries_through_a_database_outage_and_completes(outage, caplog):
    from sqlalchemy import func, select

    from eventing import dead_letters
    from shared.core.idempotency import processed_events

    system, proxies = outage
    client = system.app.test_client()
    headers = login(client, "ana")
    job_id = _queued_job(client, headers)

    # The upload is complete and its event is in the broker when PostgreSQL goes away.
    proxies.database.cut()
    system.broker.publish(_uploaded_event(job_id))
    deadline = time.monotonic() + 10
    while _retries(caplog, "image_analyze") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _retries(caplog, "image_analyze") >= 2, "the broker did not retry the failed delivery"
    proxies.database.restore()

    assert system.broker.wait_idle(30)
    result = client.get(f"/api/v1/waste/result/{job_id}", headers=headers)
    assert result.status_code == 200, result.get_data(as_text=True)
    assert result.get_json()["status"] == "completed"
    assert result.get_json()["item"]["name"] == "우유팩"
    assert dead_letters.listing() == []
    with db.engine().connect() as conn:
        handled = conn.execute(
            select(processed_events.c.consumer, func.count()).group_by(processed_events.c.consumer)
        ).all()
        stages = conn.execute(
            select(jobs.job_stages.c.stage).where(jobs.job_stages.c.job_id == job_id)
        ).scalars()
        saved = conn.execute(
            select(func.count()).select_from(jobs.results).where(jobs.results.c.job_id == job_id)
        ).scalar()
    # each stage handled its event once in effect, whatever the retries
    assert dict(handled) == {
        "image_analyze": 1,
        "classification_identify": 1,
        "feedback_generate": 1,
        "result_save": 1,
    }
    assert sorted(stages) == sorted(["queued", "analyze", "classify", "feedback", "save", "done"])
    assert saved == 1


def _retries(caplog, trigger: str) -> int:
    count = 0
    for record in caplog.records:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            continue
        count += line.get("event") == "delivery_retry" and line.get("trigger") == trigger
    return count


def test_readiness_on_the_embedded_default(client):
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert {name: check["ok"] for name, check in ready.get_json()["dependencies"].items()} == {
        "database": True,
        "cache": True,
        "storage": True,
    }

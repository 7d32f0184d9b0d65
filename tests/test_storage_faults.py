"""S3 down, hung or failing: 503 UNAVAILABLE with Retry-After within a bounded time, never a
500; event and batch functions raise so the broker retries, and finish once S3 is back; an
account is never half deleted behind a 204.

moto's S3 stays up (the whole session shares it): the app reaches it through a `FaultyProxy`
(tests/faults.py) that cuts (refused) or blackholes (accepted, never answered). What moto
cannot be made to do, S3 answering 5xx or failing some keys of a batch delete, is answered at
the HTTP layer by a botocore `before-send` hook on the app's own client.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import error_code, login, reset_clients
from fake_openai import FakeOpenAI
from faults import proxied
from sqlalchemy import select, update
from test_batch import me
from test_faults import _queued_job, _retries, _uploaded_event, assert_unavailable, timed
from test_waste import run, start

from eventing import dead_letters
from eventing.cron import ping
from knative.cli import main as cli
from shared.core import db, storage
from shared.ops import analytics, reports
from shared.waste import jobs, retention, rules

S3_TIMEOUT = 1  # seconds per attempt here (3 shipped), so a hung S3 costs seconds
# A guard against hanging, not a speed goal: two attempts of S3_TIMEOUT, botocore's backoff
# between them (under 50 ms), and slack for a shared 2-core machine.
SLOWEST_503 = 2 * S3_TIMEOUT + 1.5
FAULTS = ["cut", "blackhole"]


@pytest.fixture
def outage(services, s3_endpoint):
    """The local runtime on the services backend with S3 behind a fault proxy and a vision
    model configured, so the analyze stage reads the image from S3. Retries at 1/20 of their
    declared delays: a pipeline stage's five take 0.8 s, a batch function's first waits 3 s."""
    from knative import local

    proxy = proxied(s3_endpoint)
    services.setenv("AWS_ENDPOINT_URL", proxy.url(s3_endpoint))
    services.setenv("S3_TIMEOUT", str(S3_TIMEOUT))
    with FakeOpenAI() as model:
        services.setenv("OPENAI_API_KEY", "sk-test")
        services.setenv("OPENAI_BASE_URL", model.base_url)
        reset_clients()
        system = local.start(time_scale=0.05, with_cron=False, with_bins=False)
        yield system, proxy
        system.broker.wait_idle(10)
        system.stop()
    proxy.stop()


@contextlib.contextmanager
def s3_answers(operation: str, status: int, body: bytes | Callable[[Any], bytes]):
    """While inside, S3 answers every `operation` call with this HTTP response (`body` may
    be made from the request)."""
    from botocore.awsrequest import AWSResponse
    from urllib3.response import HTTPResponse

    def answer(request, **_):
        content = body(request) if callable(body) else body
        raw = HTTPResponse(body=io.BytesIO(content), preload_content=False)
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, raw)

    hooks = storage.s3_client().meta.events
    hooks.register(f"before-send.s3.{operation}", answer, unique_id="s3-answers")
    try:
        yield
    finally:
        hooks.unregister(f"before-send.s3.{operation}", unique_id="s3-answers")


def _error(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()


def _keys_refused(request) -> bytes:
    """A 200 DeleteResult in which S3 failed every key it was asked to delete."""
    keys = re.findall(rb"<Key>(.*?)</Key>", request.body)
    errors = b"".join(
        b"<Error><Key>%s</Key><Code>InternalError</Code><Message>try again</Message></Error>" % k
        for k in keys
    )
    return b"<DeleteResult>%s</DeleteResult>" % errors


@contextlib.contextmanager
def storage_failing(proxy, fault: str):
    """S3 refused, hung, or deleting none of the keys it is asked to; healthy on leaving."""
    if fault == "keys refused":
        with s3_answers("DeleteObjects", 200, _keys_refused):
            yield
        return
    getattr(proxy, fault)()
    try:
        yield
    finally:
        proxy.restore()


def _complete(client, headers, job_id: str):
    return client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)


def _history(client, headers) -> list[str]:
    items = client.get("/api/v1/users/history", headers=headers).get_json()["items"]
    return [item["job_id"] for item in items]


def _job(job_id: str) -> dict:
    with db.engine().connect() as conn:
        return dict(conn.execute(select(jobs.jobs).where(jobs.jobs.c.id == job_id)).one()._mapping)


# ---- upload-complete: the HTTP path -------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_upload_complete_while_storage_is_down_is_503_then_recovers(outage, fault):
    system, proxy = outage
    client = system.app.test_client()
    headers = login(client, "ana")
    done_id, _ = run(client, system, headers)
    job_id = start(client, headers)["job_id"]
    s3 = storage.s3_client()

    with storage_failing(proxy, fault):
        response, elapsed = timed(lambda: _complete(client, headers, job_id))
        assert_unavailable(response, "object storage")
        assert elapsed < SLOWEST_503, elapsed  # bounded, not hanging
        assert _job(job_id)["status"] == "awaiting_upload"  # nothing queued, nothing failed
        # Links are signed here, not asked of S3: what shows a finished job goes on answering.
        for path in (f"/api/v1/waste/result/{done_id}", "/api/v1/users/history"):
            assert client.get(path, headers=headers).status_code == 200, path

        # The operators' check names the store, and only the store.
        ready = client.get("/readyz")
        assert_unavailable(ready, "storage")
        checks = ready.get_json()["error"]["details"]["dependencies"]
        assert {name for name, check in checks.items() if not check["ok"]} == {"storage"}

    response = _complete(client, headers, job_id)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert client.get("/readyz").status_code == 200
    assert storage.s3_client() is s3  # the same client: recovery needed no restart
    assert system.broker.wait_idle(30)
    result = client.get(f"/api/v1/waste/result/{job_id}", headers=headers).get_json()
    assert result["status"] == "completed", result


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(503, "SlowDown", 503), (500, "InternalError", 503), (403, "AccessDenied", 500)],
)
def test_s3_failing_is_unavailable_but_s3_refusing_is_a_bug(outage, status, code, expected):
    """5xx from S3 is an outage to wait out; a 403 means our credentials or policy are wrong,
    which no retry fixes: that is a 500 with an id in the logs."""
    system, _proxy = outage
    client = system.app.test_client()
    headers = login(client, "ana")
    job_id = start(client, headers)["job_id"]
    with s3_answers("HeadObject", status, _error(code)):
        response = _complete(client, headers, job_id)
    if expected == 503:
        assert_unavailable(response, "object storage")
    else:
        assert response.status_code == 500 and error_code(response) == "INTERNAL"
    assert _complete(client, headers, job_id).status_code == 202


# ---- event functions: the broker retries them ------------------------------------------


@contextlib.contextmanager
def delivered_while_down(system, proxy, caplog, trigger: str, event, fault="cut", retries=1):
    """Publish `event` while S3 is down and wait until the broker has retried `trigger`'s
    delivery `retries` times; S3 comes back on leaving, before the retries run out."""
    with storage_failing(proxy, fault):
        assert system.broker.publish(event) == 1
        deadline = time.monotonic() + 20
        while _retries(caplog, trigger) < retries and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _retries(caplog, trigger) >= retries, f"{trigger}'s delivery was not retried"
        yield


@pytest.mark.parametrize("fault", FAULTS)
def test_pipeline_retries_through_a_storage_outage_and_completes(outage, caplog, fault):
    system, proxy = outage
    client = system.app.test_client()
    headers = login(client, "ana")
    job_id = _queued_job(client, headers)

    # The upload is complete and its event is in the broker when S3 goes away.
    event = _uploaded_event(job_id)
    with delivered_while_down(system, proxy, caplog, "image_analyze", event, fault, retries=2):
        assert _job(job_id)["status"] == "processing"  # retried, not failed

    assert system.broker.wait_idle(30)
    result = client.get(f"/api/v1/waste/result/{job_id}", headers=headers).get_json()
    assert result["status"] == "completed", result
    # the guide for what the model saw: the first of the candidates, which the fake picks
    assert result["item"]["guide_id"] == rules.search("페트병", limit=1)[0]["guide_id"]
    assert dead_letters.listing() == []


def test_storage_down_past_the_retries_fails_the_job_with_a_reason(outage):
    """Five retries (exponential from 0.5 s: 15 s on the cluster) and S3 is still down: the
    event goes to the dead letters and the job fails now, with its reason; nobody waits."""
    system, proxy = outage
    client = system.app.test_client()
    headers = login(client, "ana")
    job_id = _queued_job(client, headers)

    with storage_failing(proxy, "cut"):
        system.broker.publish(_uploaded_event(job_id))
        assert system.broker.wait_idle(60), "the delivery never ended"

    [letter] = dead_letters.listing()
    assert (letter["trigger"], letter["attempts"]) == ("image_analyze", 6)
    status = client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()
    assert status["status"] == "failed"
    assert status["error"]["code"] == "PROCESSING_FAILED"
    assert "reading the photo" in status["error"]["message"]
    assert "EndpointConnectionError" in letter["error"]  # the endpoint and key: operators only
    assert "EndpointConnectionError" not in status["error"]["message"]


def _ping(system, name: str):
    return ping(system.registry[name], datetime.now(analytics.KST))  # a new slot each call


def test_cleanup_images_retries_through_an_outage_then_a_rerun_is_harmless(outage, caplog):
    system, proxy = outage
    client = system.app.test_client()
    headers = login(client, "keeper")
    done_id, _ = run(client, system, headers)
    abandoned_id = start(client, headers)["job_id"]
    with db.transaction() as conn:
        for job_id, age in ((done_id, timedelta(days=31)), (abandoned_id, timedelta(hours=2))):
            conn.execute(
                update(jobs.jobs).where(jobs.jobs.c.id == job_id).values(created_at=db.now() - age)
            )
    user = me(client, headers)

    ping_ = _ping(system, "cleanup_images")
    with delivered_while_down(system, proxy, caplog, "cleanup_images", ping_):
        # nothing is recorded as deleted while S3 refused to delete it
        assert _job(done_id)["image_deleted_at"] is None
        assert _job(abandoned_id)["status"] == "awaiting_upload"

    assert system.broker.wait_idle(30)
    assert dead_letters.listing() == []
    for job_id in (done_id, abandoned_id):
        assert storage.head(jobs.image_key(user, job_id)) is None
        assert _job(job_id)["image_deleted_at"] is not None
    assert _job(abandoned_id)["error_code"] == "UPLOAD_EXPIRED"
    assert retention.images(timedelta(days=30)) == {"expired": 0, "abandoned": 0}


def test_keys_s3_failed_to_delete_are_not_recorded_deleted(outage):
    """DeleteObjects answers 200 even when it deleted nothing: the keys it lists as failed
    are still there, and the cleanup must raise rather than mark them gone."""
    from botocore.exceptions import ClientError

    system, proxy = outage
    client = system.app.test_client()
    headers = login(client, "keeper")
    done_id, _ = run(client, system, headers)
    with db.transaction() as conn:
        conn.execute(
            update(jobs.jobs)
            .where(jobs.jobs.c.id == done_id)
            .values(created_at=db.now() - timedelta(days=31))
        )

    with storage_failing(proxy, "keys refused"), pytest.raises(ClientError) as failed:
        retention.images(timedelta(days=30))
    assert failed.value.response["Error"]["Code"] == "InternalError"
    assert _job(done_id)["image_deleted_at"] is None
    assert storage.head(jobs.image_key(me(client, headers), done_id)) is not None
    assert retention.images(timedelta(days=30)) == {"expired": 1, "abandoned": 0}
    assert storage.head(jobs.image_key(me(client, headers), done_id)) is None


def test_report_generate_retries_through_an_outage_then_a_rerun_overwrites(outage, caplog):
    system, proxy = outage
    client = system.app.test_client()
    headers = login(client, "daily")
    assert cli(["grant-admin", me(client, headers)]) == 0
    admin = login(client, "daily")
    day = analytics.previous_kst_day(datetime.now(analytics.KST))

    ping_ = _ping(system, "report_generate")
    with delivered_while_down(system, proxy, caplog, "report_generate", ping_):
        assert_unavailable(client.get("/api/v1/waste/reports", headers=admin), "object storage")

    assert system.broker.wait_idle(30)
    assert dead_letters.listing() == []
    assert system.broker.publish(_ping(system, "report_generate")) == 1  # the same day again
    assert system.broker.wait_idle(30)
    assert storage.list_keys(reports.PREFIX) == [reports.key_for(day)]
    items = client.get("/api/v1/waste/reports", headers=admin).get_json()["items"]
    assert [item["day"] for item in items] == [day.isoformat()]


# ---- leaving: DELETE /users/profile -----------------------------------------------------


@pytest.mark.parametrize("fault", [*FAULTS, "keys refused"])
def test_an_account_is_never_half_deleted_behind_a_204(outage, fault):
    """The contract's 204 says the images are gone, so S3 failing is a 503 that keeps the
    account, its session and its history for the retry; the retry deletes it all."""
    system, proxy = outage
    client = system.app.test_client()
    headers = login(client, "leaver")
    run(client, system, headers)
    start(client, headers)
    user = me(client, headers)
    images = storage.list_keys(jobs.image_key(user, ""))
    assert len(images) == 3  # the analysed job's upload and its checked copy, the new upload
    history = _history(client, headers)

    with storage_failing(proxy, fault):
        response, elapsed = timed(lambda: client.delete("/api/v1/users/profile", headers=headers))
        assert_unavailable(response, "object storage")
        assert elapsed < SLOWEST_503, elapsed

    assert client.get("/api/v1/users/profile", headers=headers).status_code == 200
    assert _history(client, headers) == history
    assert storage.list_keys(jobs.image_key(user, "")) == images
    assert client.delete("/api/v1/users/profile", headers=headers).status_code == 204
    assert storage.list_keys(jobs.image_key(user, "")) == []
    assert client.get("/api/v1/users/profile", headers=headers).status_code == 401

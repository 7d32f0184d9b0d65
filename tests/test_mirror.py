"""The status poll's copies of the cache (shared.core.mirror), on the real Redis: polls between
two changes make no round trip; a stage change or a revocation reaches the next poll once its
news arrives, not when a copy would have aged out; a change heard while a read was on its way,
or missed while the subscription was down, is never covered by an older copy."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import login
from test_waste import MILK, start

from shared.auth import sessions, tokens
from shared.core import cache, mirror
from shared.waste import jobs, progress

pytestmark = pytest.mark.services


@pytest.fixture
def polled(services, monkeypatch):
    """The system on PostgreSQL and Redis, its copies trusted for a minute: whatever a test
    sees change, it saw through the news of the change, not through a copy aging out."""
    from knative import local

    monkeypatch.setattr(mirror, "SECONDS", 60.0)
    system = local.start(with_cron=False, with_bins=False)
    client = system.app.test_client()
    headers = login(client)
    job_id = start(client, headers, hint="우유팩", data=MILK)["job_id"]
    yield client, headers, job_id
    system.stop()


def _poll(client, headers, job_id) -> tuple[int, str | None]:
    response = client.get(f"/api/v1/waste/status/{job_id}", headers=headers)
    return response.status_code, (response.get_json() or {}).get("status")


def _following(client, headers, job_id) -> None:
    """Polled until the process follows the changes, then once more: the poll's keys are
    kept."""
    deadline = time.monotonic() + 10
    while mirror.CHANGED.generation is None and time.monotonic() < deadline:
        assert _poll(client, headers, job_id)[0] == 200
        time.sleep(0.01)
    assert mirror.CHANGED.generation is not None
    assert _poll(client, headers, job_id)[0] == 200


def _reads(monkeypatch, during=None) -> list[list[str]]:
    """Every MGET that reaches Redis from now on; `during` runs inside each, after the read."""
    client = cache.client()
    real, reads = client.mget, []

    def counted(keys, *args):
        values = real(keys, *args)
        reads.append(list(keys))
        if during is not None:
            during()
        return values

    monkeypatch.setattr(client, "mget", counted)
    return reads


def _until(condition, seconds: float = 5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.005)
    return condition()


def test_polls_between_changes_make_no_round_trip_and_a_change_reaches_the_next(
    polled, monkeypatch
):
    client, headers, job_id = polled
    _following(client, headers, job_id)
    reads = _reads(monkeypatch)
    assert [_poll(client, headers, job_id) for _ in range(20)] == [(200, "awaiting_upload")] * 20
    assert reads == []
    jobs.advance(job_id, "queued")
    assert _until(lambda: _poll(client, headers, job_id) == (200, "queued"), 2)
    assert reads and all(progress.status_key(job_id) in keys for keys in reads)
    seen = len(reads)
    assert _poll(client, headers, job_id) == (200, "queued")
    assert len(reads) == seen  # kept again


def test_a_revoked_session_is_refused_by_the_next_poll_after_the_news(polled):
    client, headers, job_id = polled
    _following(client, headers, job_id)
    session_id = tokens.verify(headers["Authorization"].split()[1]).session_id
    sessions.revoke(session_id, "logout")
    assert _until(lambda: _poll(client, headers, job_id)[0] == 401, 2)


def test_a_change_heard_while_a_read_is_on_its_way_keeps_that_read_out(polled, monkeypatch):
    """The job moves after Redis answered a poll's read but before the poll keeps its values:
    the poll answers what it read, and the next one reads again rather than trust it."""
    client, headers, job_id = polled
    _following(client, headers, job_id)
    key = progress.status_key(job_id)
    heard = threading.Event()
    mirror.CHANGED.follow(lambda changed: heard.set() if changed == key else None)
    mirror.changed(key)  # news of a change that is none: the copy goes, the next poll reads
    assert heard.wait(5)
    heard.clear()

    def move_once():
        if not heard.is_set():
            jobs.advance(job_id, "queued")
            assert heard.wait(5)  # after the mirror's own follower, which came first

    reads = _reads(monkeypatch, during=move_once)
    assert _poll(client, headers, job_id) == (200, "awaiting_upload")  # read before the move
    assert _poll(client, headers, job_id) == (200, "queued")
    assert len(reads) == 2


def test_changes_missed_while_the_subscription_was_down_are_not_covered_by_old_copies(
    polled, monkeypatch
):
    client, headers, job_id = polled
    redis = cache.client()
    others = {c["id"] for c in redis.client_list(_type="pubsub")}
    _following(client, headers, job_id)
    before = mirror.CHANGED.generation
    ours = {c["id"] for c in redis.client_list(_type="pubsub")} - others
    assert len(ours) == 1  # the process follows on one subscription
    with monkeypatch.context() as lost:  # a change whose news no one heard
        lost.setattr(mirror, "changed", lambda key, via=None: None)
        jobs.advance(job_id, "queued")
    assert _poll(client, headers, job_id) == (200, "awaiting_upload")  # the old copy, for now
    for client_id in ours:
        redis.client_kill_filter(_id=client_id)
    assert _until(lambda: mirror.CHANGED.generation not in (None, before), 10)
    assert _poll(client, headers, job_id) == (200, "queued")

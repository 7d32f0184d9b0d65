"""Progress pushed as Server-Sent Events (GET /api/v1/waste/status/{job_id}/events), on the
embedded default and on the real Redis: one event per stage, the final one ends the stream,
Last-Event-ID resumes, heartbeats flow while nothing changes, status's auth and 404 rules, and
however many streams a process holds, one subscription."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import timedelta

import pytest
from conftest import error_code, login
from sqlalchemy import update
from test_batch import fire
from test_waste import MILK, start

from shared.core import cache, db, settings
from shared.waste import jobs, progress

# upload, queued, analyze, classify, feedback, done: the ids in order. "save" (90) is stepped
# in the transaction that completes the job, so no reader ever sees it: it is no change.
STAGE_IDS = [0, 10, 25, 50, 75, 100]


def _path(job_id: str) -> str:
    return f"/api/v1/waste/status/{job_id}/events"


class Stream:
    """An open stream read on a thread of its own, as a client reads it: its events (id,
    data), its comments and its retry field, until the server ends it."""

    def __init__(self, client, job_id: str, headers: dict[str, str]) -> None:
        self.response = client.get(_path(job_id), headers=headers, buffered=False)
        self.events: list[tuple[int, dict]] = []
        self.comments: list[str] = []
        self.retry: int | None = None
        self.ended = threading.Event()
        self._leave = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        text = ""
        try:
            for chunk in self.response.response:
                if self._leave.is_set():
                    break
                text += chunk.decode() if isinstance(chunk, bytes) else chunk
                while "\n\n" in text:
                    block, text = text.split("\n\n", 1)
                    self._take(block)
        finally:
            self.response.close()  # as a WSGI server does when the body ends
            self.ended.set()

    def _take(self, block: str) -> None:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "retry" in fields:
            self.retry = int(fields["retry"])
        if "data" in fields:
            self.events.append((int(fields["id"]), json.loads(fields["data"])))

    def wait_for(self, condition, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert condition(), (self.events, self.comments)

    def leave(self) -> None:
        """Go away mid-stream: the server learns it at its next write (here, a heartbeat)."""
        self._leave.set()
        assert self.ended.wait(10)


def test_each_stage_is_an_event_in_order_and_the_final_one_ends_the_stream(system_on):
    client = system_on.app.test_client()
    headers = login(client)
    job_id = start(client, headers, hint="우유팩", data=MILK)["job_id"]
    stream = Stream(client, job_id, headers)
    assert stream.response.status_code == 200
    assert stream.response.mimetype == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-cache"
    stream.wait_for(lambda: stream.events)  # awaiting the upload: the current state at once
    response = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
    assert response.status_code == 202
    assert stream.ended.wait(30), stream.events
    ids = [event_id for event_id, _ in stream.events]
    # Every stage the job went through, in order, each once; the stages publish one by one,
    # so none is skipped (queued alone may lose its race with the analysis, which stamps it).
    assert ids in (STAGE_IDS, [i for i in STAGE_IDS if i != 10]), ids
    assert [view["progress"] for _, view in stream.events] == ids
    assert stream.events[-1][1]["status"] == "completed"
    final = client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()
    assert stream.events[-1][1] == final  # the status body, exactly
    assert stream.retry == progress.RECONNECT_MS
    assert progress.PROGRESS.watching == 0  # the ended stream let its inbox go


def test_last_event_id_resumes_after_it_and_a_client_behind_gets_the_state_at_once(backend):
    from knative import local

    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    try:
        client = system.app.test_client()
        headers = login(client)
        job_id = start(client, headers, hint="우유팩", data=MILK)["job_id"]
        jobs.advance(job_id, "queued")
        # Resumed at the current state: nothing until the next change, and then only it.
        resumed = Stream(client, job_id, {**headers, "Last-Event-ID": "10"})
        resumed.wait_for(lambda: resumed.retry is not None)
        # Behind (it saw 0, the job is at 10): the current state at once, not the history.
        behind = Stream(client, job_id, {**headers, "Last-Event-ID": "0"})
        behind.wait_for(lambda: behind.events)
        assert [event_id for event_id, _ in behind.events] == [10]
        assert resumed.events == []
        jobs.advance(job_id, "analyze")
        jobs.fail(job_id, "TIMED_OUT", "the analysis took too long; try again")
        for stream in (resumed, behind):
            assert stream.ended.wait(10)
            assert [event_id for event_id, _ in stream.events][-2:] == [25, 100]
            assert stream.events[-1][1]["error"]["code"] == "TIMED_OUT"
        # Resumed after the final event: nothing more will come, and 204 tells the client so.
        done = client.get(_path(job_id), headers={**headers, "Last-Event-ID": "100"})
        assert done.status_code == 204
        bad = client.get(_path(job_id), headers={**headers, "Last-Event-ID": "ten"})
        assert bad.status_code == 422 and error_code(bad) == "VALIDATION_FAILED"
        assert progress.PROGRESS.watching == 0
    finally:
        system.stop()


def test_a_heartbeat_comment_flows_while_nothing_changes(system, env):
    env.setenv("EVENTS_HEARTBEAT_SECONDS", "0.05")
    settings.settings.cache_clear()
    client = system.app.test_client()
    headers = login(client)
    job_id = start(client, headers, hint="우유팩", data=MILK)["job_id"]
    stream = Stream(client, job_id, headers)
    stream.wait_for(lambda: len(stream.comments) >= 3)
    assert set(stream.comments) == {"keep-alive"}
    assert [event_id for event_id, _ in stream.events] == [0]  # no change, no event
    stream.leave()  # the client went away: its inbox goes with it
    assert progress.PROGRESS.watching == 0


def test_an_upload_never_completed_ends_its_stream_when_cleanup_fails_it(system):
    """Cleanup fails abandoned uploads in one update; their streams hear it like any change."""
    client = system.app.test_client()
    headers = login(client)
    job_id = start(client, headers, hint="우유팩", data=MILK)["job_id"]
    stream = Stream(client, job_id, headers)
    stream.wait_for(lambda: len(stream.events) == 1)
    with db.transaction() as conn:
        conn.execute(
            update(jobs.jobs)
            .where(jobs.jobs.c.id == job_id)
            .values(created_at=db.now() - timedelta(hours=2))
        )
    fire(system, "cleanup_images")
    assert stream.ended.wait(10)
    last = stream.events[-1][1]
    assert (last["status"], last["error"]["code"]) == ("failed", "UPLOAD_EXPIRED")
    polled = client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()
    assert polled == last


def test_status_rules_apply_no_token_401_and_another_users_job_404(client):
    headers = login(client)
    job_id = start(client, headers, hint="우유팩", data=MILK)["job_id"]
    anonymous = client.get(_path(job_id))
    assert anonymous.status_code == 401 and error_code(anonymous) == "UNAUTHENTICATED"
    bob = client.get(_path(job_id), headers=login(client, "bob"))
    assert bob.status_code == 404 and error_code(bob) == "NOT_FOUND"
    unknown = client.get(_path("no-such-job"), headers=headers)
    assert unknown.status_code == 404 and error_code(unknown) == "NOT_FOUND"
    assert progress.PROGRESS.watching == 0  # a refused stream holds nothing


def _subscribers() -> int:
    """Subscribers of the progress channel as Redis counts them (every process)."""
    return dict(cache.client().pubsub_numsub(progress.PROGRESS.channel))[progress.PROGRESS.channel]


@pytest.mark.parametrize("streams", [20])
def test_many_streams_share_one_subscription(backend, streams):
    from knative import local

    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    try:
        client = system.app.test_client()
        headers = login(client)
        job_ids = [start(client, headers, hint="우유팩", data=MILK)["job_id"] for _ in range(4)]
        before = _subscribers() if backend == "services" else 0
        opened = [Stream(client, job_ids[i % 4], headers) for i in range(streams)]
        for stream in opened:
            stream.wait_for(lambda stream=stream: stream.events)
        assert progress.PROGRESS.watching == streams
        assert progress.PROGRESS.subscriptions == 1
        if backend == "services":
            assert _subscribers() == before + 1
        for job_id in job_ids:
            jobs.fail(job_id, "TIMED_OUT", "the analysis took too long; try again")
        for stream in opened:
            assert stream.ended.wait(10)
            assert [event_id for event_id, _ in stream.events] == [0, 100]
        assert progress.PROGRESS.watching == 0
        assert progress.PROGRESS.subscriptions == 1
    finally:
        system.stop()


def test_the_stream_is_its_own_service_with_timeouts_the_alb_and_knative_agree_on():
    import re

    import functions.waste
    from functions import load_all
    from knative.render import routing, services
    from knative.render.values import Values

    registry = load_all()
    stream, status = registry["waste_status_events"], registry["waste_status"]
    # The ALB path map stays; the Gateway tells the two paths apart, whatever the precedence.
    matches = routing.route_matches([stream, status])
    for function, other in ((stream, status), (status, stream)):
        pattern = matches[function.name]["path"]["value"]
        assert re.fullmatch(pattern, function.path.replace("{job_id}", "j-1"))
        assert not re.fullmatch(pattern, other.path.replace("{job_id}", "j-1"))
    spec = services.knative_service(stream, Values())["spec"]["template"]["spec"]
    heartbeat = float(services.HEARTBEAT.default)
    assert spec["timeoutSeconds"] > functions.waste.STREAM_SECONDS  # the stream ends first
    assert spec["idleTimeoutSeconds"] >= 2 * heartbeat
    assert 2 * heartbeat <= services.ALB_IDLE_TIMEOUT
    assert spec["containerConcurrency"] == stream.scaling.workers * stream.scaling.threads
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["THREADS"] == str(stream.scaling.threads)
    assert env["EVENTS_HEARTBEAT_SECONDS"] == services.HEARTBEAT.default
    alb = routing.routing_objects([stream, status], Values())[0]
    idle = alb["metadata"]["annotations"]["alb.ingress.kubernetes.io/load-balancer-attributes"]
    assert idle == f"idle_timeout.timeout_seconds={services.ALB_IDLE_TIMEOUT}"
    # The polling route is untouched: no stream timeouts on it.
    assert (
        "idleTimeoutSeconds"
        not in services.knative_service(status, Values())["spec"]["template"]["spec"]
    )


def test_the_dev_server_streams_each_event_as_it_happens(system, env):
    """`growbin dev` (werkzeug, a thread per request) sends each event when it happens, not
    when the stream ends; a client that goes away is noticed at the next heartbeat."""
    import requests
    from werkzeug.serving import make_server

    from knative.server import ContractHandler

    env.setenv("EVENTS_HEARTBEAT_SECONDS", "0.1")
    settings.settings.cache_clear()
    server = make_server("127.0.0.1", 0, system.app, threaded=True, request_handler=ContractHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = system.app.test_client()
        headers = login(client)
        base = f"http://127.0.0.1:{server.server_port}"
        first, second = (start(client, headers, hint="우유팩", data=MILK)["job_id"] for _ in "ab")
        with requests.get(base + _path(first), headers=headers, stream=True, timeout=10) as got:
            assert got.headers["Content-Type"].startswith("text/event-stream")
            lines = got.iter_lines(decode_unicode=True)
            assert next(lines) == f"retry: {progress.RECONNECT_MS}"
            assert next(lines) == ""
            assert next(lines) == "id: 0"  # while the job waits: the stream is open
            jobs.fail(first, "TIMED_OUT", "the analysis took too long; try again")
            rest = list(lines)  # the final event, then the server ends the stream
        assert "id: 100" in rest and rest[-1] == ""
        gone = requests.get(base + _path(second), headers=headers, stream=True, timeout=10)
        # Held: a dropped line iterator closes the connection (urllib3 ends it on
        # GeneratorExit), and the server would notice at its next heartbeat, 0.1 s away.
        reading = gone.iter_lines()
        next(reading)
        assert progress.PROGRESS.watching == 1
        gone.close()  # the client leaves mid-stream
        deadline = time.monotonic() + 10
        while progress.PROGRESS.watching and time.monotonic() < deadline:
            time.sleep(0.05)
        assert progress.PROGRESS.watching == 0
    finally:
        server.shutdown()


def test_a_dropped_subscription_comes_back_and_the_streams_read_what_they_missed(
    services, monkeypatch
):
    """Redis closes the process's subscription; a stage change published while it was down
    reached no one, so once it is back every stream re-reads its job's state."""
    from knative import local

    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    try:
        client = system.app.test_client()
        headers = login(client)
        job_id = start(client, headers, hint="우유팩", data=MILK)["job_id"]
        redis = cache.client()
        before = {c["id"] for c in redis.client_list(_type="pubsub")}
        stream = Stream(client, job_id, headers)
        stream.wait_for(lambda: stream.events)
        ours = [c["id"] for c in redis.client_list(_type="pubsub") if c["id"] not in before]
        assert len(ours) == 1  # however many streams: this process's one subscription
        # A change whose message is lost (published while no one listened: here, not at all).
        with monkeypatch.context() as lost:
            lost.setattr(progress, "publish", lambda view, via=None: None)
            jobs.advance(job_id, "queued")
        redis.client_kill_filter(_id=ours[0])
        stream.wait_for(lambda: [i for i, _ in stream.events] == [0, 10])
        assert progress.PROGRESS.subscriptions == 2
        jobs.fail(job_id, "TIMED_OUT", "the analysis took too long; try again")
        assert stream.ended.wait(10)
        assert [i for i, _ in stream.events] == [0, 10, 100]
    finally:
        system.stop()


@pytest.mark.services
@pytest.mark.parametrize("failing", [1, 2, 3])
def test_a_status_change_is_cached_and_published_together_or_not_at_all(
    services, monkeypatch, failing
):
    """A status change is one transaction. Redis stops answering from the first, second or
    third round trip of the write on (it made three): either way, the view the pollers read
    is the last one the streams were sent, never a newer one the streams never hear of."""
    import redis

    from shared.auth import accounts

    db.migrate()
    listener = cache.client().pubsub()
    listener.subscribe(progress.PROGRESS.channel)
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    user = accounts.find_or_create("dev", "tx", "tx")
    job_id = jobs.create(user["id"], "image/jpeg", 1000, "pet")["id"]
    before = jobs.status(user["id"], job_id)  # and the writer's connection is open: only
    assert listener.get_message(timeout=5)["type"] == "message"  # its commands are counted
    writer, sent = threading.get_ident(), []
    send = redis.connection.AbstractConnection.send_packed_command

    def going_away(self, command, check_health=True):
        if threading.get_ident() == writer:  # the write's round trips, not the listener's
            sent.append(command)
            if len(sent) >= failing:
                raise redis.ConnectionError("Redis went away")
        return send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", going_away)
    # The step is in the row either way; a failed write's redelivery drops the cached view.
    with contextlib.suppress(redis.ConnectionError):
        jobs.advance(job_id, "queued")
    monkeypatch.undo()
    assert sent  # the write went through the patched connection
    published = []
    while (message := listener.get_message(timeout=0.5)) is not None:
        if message["type"] == "message" and json.loads(message["data"])["key"] == job_id:
            published.append(json.loads(message["data"])["data"])
    listener.close()
    cached = cache.get_json(progress.status_key(job_id))
    cached.pop("user_id")
    assert cached == (published[-1] if published else before)

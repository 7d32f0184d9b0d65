"""Faults against the real RabbitMQ and PostgreSQL: dev-server processes sharing a queue, a
dispatcher killed between delivery and ack, RabbitMQ restarted with events in flight, RabbitMQ
hung (a proxy that accepts and never answers) under a publisher and under a dispatcher.

Every event ends processed or dead-lettered with a reason; none is lost, none done twice in
effect. Each test prints its numbers (run with -s to see them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import rabbit_worker

from eventing import dead_letters
from shared.core import db, events

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parent.parent
FUNCTION = rabbit_worker.FUNCTIONS[0].name


@pytest.fixture
def fault(services, rabbitmq):
    db.migrate()
    rabbit_worker.create_tables()
    return rabbitmq


@contextlib.contextmanager
def _workers(count: int, logs: Path):
    """`count` worker processes consuming the fault Trigger; stopped (or killed) on the way out."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    procs = []
    for n in range(count):
        with open(logs / f"worker{n}.log", "w") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "tests" / "rabbit_worker.py")],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _wait_until(condition, timeout: float, what: str, logs: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tails = (
                "".join(p.read_text()[-2000:] for p in sorted(logs.glob("*.log"))) if logs else ""
            )
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.05)


def _consumers(rabbit, queue: str) -> int:
    channel = rabbit.channel()
    try:
        return channel.queue_declare(queue, passive=True).method.consumer_count
    finally:
        channel.connection.close()


def _publish(broker, **data) -> str:
    event = events.make(rabbit_worker.WORK_TYPE, data)
    broker.publish(event)
    return event["id"]


def _done() -> Counter:
    return Counter(event_id for event_id, _pid in rabbit_worker.rows("rabbit_effects"))


def test_two_processes_share_one_queue_and_nothing_runs_twice(fault, tmp_path):
    publisher = fault.broker(rabbit_worker.FUNCTIONS, dispatch=False)
    queue = publisher.layout.queues[FUNCTION]
    with _workers(2, tmp_path) as procs:
        _wait_until(lambda: _consumers(fault, queue) == 2, 30, "two consumers", tmp_path)
        ids = [_publish(publisher, sleep=0.05) for _ in range(40)]
        _wait_until(lambda: len(_done()) == len(ids), 30, "40 effects", tmp_path)
        time.sleep(0.3)  # a second run of anything would land now
    effects = rabbit_worker.rows("rabbit_effects")
    done = Counter(event_id for event_id, _ in effects)
    by_process = Counter(pid for _, pid in effects)
    lost = len(set(ids) - set(done))
    twice = sum(n > 1 for n in done.values())
    print(
        f"\ncompeting consumers: events={len(ids)} processes={len(procs)} "
        f"per_process={sorted(by_process.values())} lost={lost} duplicates_in_effect={twice}"
    )
    assert lost == 0 and twice == 0
    assert set(by_process) == {p.pid for p in procs}  # both did part of the work
    assert min(by_process.values()) >= 5


def test_dispatcher_killed_between_delivery_and_ack_is_redelivered(fault, tmp_path):
    publisher = fault.broker(rabbit_worker.FUNCTIONS, dispatch=False)
    queue = publisher.layout.queues[FUNCTION]
    with _workers(2, tmp_path) as procs:
        _wait_until(lambda: _consumers(fault, queue) == 2, 30, "two consumers", tmp_path)
        victim = _publish(publisher, block=True)
        others = [_publish(publisher, sleep=0.02) for _ in range(20)]

        def victim_started() -> list[int]:
            return [pid for e, pid in rabbit_worker.rows("rabbit_starts") if e == victim]

        _wait_until(victim_started, 20, "the victim's first delivery", tmp_path)
        [killed_pid] = victim_started()
        killed = next(p for p in procs if p.pid == killed_pid)
        os.kill(killed.pid, signal.SIGKILL)  # mid-handler: delivered, never acked
        killed.wait(10)
        _wait_until(lambda: _done()[victim] == 1, 30, "the victim redelivered and done", tmp_path)
        _wait_until(lambda: len(_done()) == 1 + len(others), 30, "all events done", tmp_path)
        time.sleep(0.3)
    effects = rabbit_worker.rows("rabbit_effects")
    done = Counter(event_id for event_id, _ in effects)
    [finisher] = [pid for e, pid in effects if e == victim]
    deliveries = len([e for e, _ in rabbit_worker.rows("rabbit_starts") if e == victim])
    lost = len({victim, *others} - set(done))
    twice = sum(n > 1 for n in done.values())
    print(
        f"\nkilled dispatcher: events={1 + len(others)} killed_pid={killed_pid} "
        f"victim_deliveries={deliveries} finished_by={finisher} lost={lost} "
        f"duplicates_in_effect={twice}"
    )
    assert finisher != killed_pid and deliveries == 2
    assert lost == 0 and twice == 0


@pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="restarting RabbitMQ needs rabbitmqctl")
def test_rabbitmq_restarts_with_events_in_flight_and_nothing_is_lost(fault, caplog):
    """Connections dropped, then the RabbitMQ application stopped and started, while 100
    events (10 of them poison) are queued or running and 20 more are published meanwhile."""
    caplog.set_level(logging.INFO, logger="growbin")
    broker = fault.broker(rabbit_worker.FUNCTIONS, time_scale=0.1)
    ids, poison = [], set()
    for n in range(100):
        event_id = _publish(broker, sleep=0.15, fail=n % 10 == 0)
        ids.append(event_id)
        if n % 10 == 0:
            poison.add(event_id)
    late: list[str] = []
    refused: list[str] = []  # publishes that failed within their patience, then were retried
    in_flight, restarts = [], 0

    def unfinished() -> int:
        return len(ids) - len(_done()) - len({x["event_id"] for x in dead_letters.listing()})

    try:
        in_flight.append(unfinished())
        _rabbitmqctl("close_all_connections", "growbin fault test")
        restarts += 1
        time.sleep(0.3)
        in_flight.append(unfinished())
        _rabbitmqctl("stop_app")
        publishing = threading.Thread(
            target=lambda: late.extend(_publish_until_taken(broker, refused) for _ in range(20))
        )
        # A publish fails after PUBLISH_PATIENCE (a 503, a delivery retried); its callers
        # retry, as these do, until RabbitMQ is back (start_app can take longer than that).
        publishing.start()
        time.sleep(1.0)
        _rabbitmqctl("start_app")
        restarts += 1
        publishing.join(30)
    finally:
        _rabbitmqctl("start_app")  # whatever happened, leave RabbitMQ running
    everything = ids + late

    def letters() -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for letter in dead_letters.listing():
            found.setdefault(letter["event_id"], []).append(letter)
        return found

    _wait_until(
        lambda: set(_done()) | set(letters()) >= set(everything), 45, "every event accounted for"
    )
    time.sleep(0.5)  # a second run of anything would land now
    done, dead = _done(), letters()
    logged = Counter(
        json.loads(r.getMessage())["event"] for r in caplog.records if r.name == "growbin"
    )
    lost = len(set(everything) - set(done) - set(dead))
    twice = (
        sum(n > 1 for n in done.values())
        + sum(len(v) > 1 for v in dead.values())
        + len(set(done) & set(dead))
    )
    print(
        f"\nrabbitmq restart: events={len(everything)} in_flight_at_faults={in_flight} "
        f"restarts={restarts} published_while_down={len(late)} "
        f"publishes_failed_and_retried={len(refused)} processed={len(done)} "
        f"dead_lettered={len(dead)} acks_lost={logged['ack_lost']} "
        f"redelivered_and_skipped={logged['duplicate_event']} "
        f"reconnections={logged['broker_connection_lost']} lost={lost} "
        f"duplicates_in_effect={twice}"
    )
    assert len(late) == 20 and restarts == 2
    assert lost == 0 and twice == 0
    assert set(dead) == poison and set(done) == set(everything) - poison
    assert all("poison event" in v[0]["error"] for v in dead.values())
    # The faults hit work in progress, not an idle broker: handlers finished on dropped
    # connections, their acks were lost, and the redeliveries were recognised and skipped.
    assert min(in_flight) >= 30 and logged["ack_lost"] >= 1 and logged["duplicate_event"] >= 1


def _publish_until_taken(broker, failures: list[str], patience: float = 30.0) -> str:
    """Publish one event (the same one each try), retrying while the publish fails."""
    from pika.exceptions import AMQPError

    event = events.make(rabbit_worker.WORK_TYPE, {"sleep": 0.01})
    deadline = time.monotonic() + patience
    while True:
        try:
            broker.publish(event)
            return event["id"]
        except AMQPError as exc:
            failures.append(repr(exc))
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def test_upload_complete_during_a_rabbitmq_outage_is_a_prompt_503_and_nothing_happened(
    rabbitmq, services
):
    """The broker unreachable (RabbitMQ down: connections refused and reset) or hung (accepts,
    never answers): upload-complete answers 503 within the publisher's patience, the job still
    awaits its upload, and completing it after the outage runs the analysis."""
    from conftest import login, reset_clients
    from faults import proxied
    from test_batch import me
    from test_waste import MILK, start

    from eventing.rabbitmq import PUBLISH_PATIENCE
    from knative import local
    from shared.waste import jobs

    proxy = proxied(os.environ["BROKER_URL"])
    services.setenv("BROKER_URL", proxy.url(os.environ["BROKER_URL"]))
    reset_clients()
    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    rabbitmq.track(system.broker)
    try:
        client = system.app.test_client()
        headers = login(client)
        for fault in (proxy.cut, proxy.blackhole):
            job_id = start(client, headers, hint="우유팩", data=MILK)["job_id"]
            fault()
            began = time.monotonic()
            try:
                response = _capped(
                    lambda job_id=job_id: client.post(
                        f"/api/v1/waste/upload-complete/{job_id}", headers=headers
                    ),
                    PUBLISH_PATIENCE + 5,
                    f"upload-complete with RabbitMQ {fault.__name__}",
                )
                waited = time.monotonic() - began
                outcome = f"{response.status_code} in {waited:.1f} s"
                print(f"\nupload-complete with RabbitMQ {fault.__name__}: {outcome}")
                assert response.status_code == 503, response.get_data(as_text=True)
                assert response.get_json()["error"]["code"] == "UNAVAILABLE"
                assert response.headers["Retry-After"]
                # Read before restore(): a publish left hanging may still arrive once RabbitMQ
                # answers, and then the analysis runs (one, as the event has one id per job).
                assert jobs.get(me(client, headers), job_id)["status"] == "awaiting_upload"
            finally:
                proxy.restore()
            again = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
            assert again.status_code == 202, again.get_data(as_text=True)
            _wait_until(
                lambda job_id=job_id: (
                    client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()[
                        "status"
                    ]
                    == "completed"
                ),
                30,
                "the analysis after the outage",
            )
    finally:
        proxy.restore()
        system.stop()
        proxy.stop()


def _capped(call, cap: float, what: str):
    """`call()`'s result, or a failure once it has run `cap` seconds (it is left running, and
    ends when the test restores the proxy): a hang fails the test instead of holding it."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    began = time.monotonic()
    thread = threading.Thread(target=run, name="capped", daemon=True)
    thread.start()
    thread.join(cap)
    if thread.is_alive():
        pytest.fail(f"{what}: still waiting after {time.monotonic() - began:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _through(rabbitmq, proxy, **options):
    """A broker of the fault Trigger on the test's RabbitMQ, reached through `proxy`."""
    from eventing.rabbitmq import RabbitBroker

    url = proxy.url(rabbitmq.url)
    return rabbitmq.track(RabbitBroker(rabbit_worker.FUNCTIONS, url, rabbitmq.name, **options))


@pytest.mark.parametrize("when", ["connected", "connecting"])
def test_a_publish_to_a_hung_rabbitmq_fails_within_its_patience_then_the_next_goes_out(
    rabbitmq, when
):
    """RabbitMQ accepts and never answers (FaultyProxy.blackhole), under the open publisher
    connection or before the publish connects: the publish fails within PUBLISH_PATIENCE, as
    the AMQPError a request turns into a 503; once RabbitMQ answers again the next one goes out."""
    from faults import proxied
    from pika.exceptions import AMQPError

    from eventing.rabbitmq import PUBLISH_PATIENCE

    proxy = proxied(rabbitmq.url)
    try:
        publisher = _through(rabbitmq, proxy, dispatch=False)
        queue = publisher.layout.queues[FUNCTION]
        _publish(publisher)  # the publisher connection is open and used
        if when == "connecting":
            proxy.cut()  # the open connection is reset; the next publish has to connect
            proxy.restore()
        proxy.blackhole()
        began = time.monotonic()
        with pytest.raises(AMQPError):
            _capped(lambda: _publish(publisher), PUBLISH_PATIENCE + 1, f"a publish ({when})")
        failed_in = time.monotonic() - began
        proxy.restore()
        began = time.monotonic()
        sent = _capped(lambda: _publish(publisher), PUBLISH_PATIENCE + 1, "the publish after")
        next_in = time.monotonic() - began
    finally:
        proxy.restore()
    print(
        f"\npublish to a hung RabbitMQ ({when}): failed in {failed_in:.2f} s "
        f"(patience {PUBLISH_PATIENCE:g} s); the next after restore went out in {next_in:.2f} s"
    )
    assert failed_in < PUBLISH_PATIENCE + 1
    channel = rabbitmq.channel()
    try:
        assert channel.queue_declare(queue, passive=True).method.message_count >= 2
    finally:
        channel.connection.close()
    assert sent


def test_a_dispatcher_whose_rabbitmq_hangs_notices_reconnects_and_consumes(fault, caplog):
    """RabbitMQ accepts and never answers under a running dispatcher: its connection's
    heartbeat gives up within two checks (HEARTBEAT + 5 s each), the dispatcher reconnects once
    RabbitMQ answers again, and an event published then is processed."""
    from faults import proxied

    from eventing.rabbitmq import HEARTBEAT

    caplog.set_level(logging.INFO, logger="growbin")
    queue = fault.broker(rabbit_worker.FUNCTIONS, dispatch=False).layout.queues[FUNCTION]
    proxy = proxied(fault.url)

    def lost() -> bool:
        return any(
            '"broker_connection_lost"' in r.getMessage() and queue in r.getMessage()
            for r in caplog.records
        )

    try:
        _through(fault, proxy, time_scale=0.1)
        _wait_until(lambda: _consumers(fault, queue) == 1, 30, "the dispatcher consuming")
        proxy.blackhole()
        began = time.monotonic()
        _wait_until(lost, 2 * (HEARTBEAT + 5) + 5, "the dispatcher noticing the hung RabbitMQ")
        noticed = time.monotonic() - began
    finally:
        proxy.restore()
    began = time.monotonic()
    _wait_until(lambda: _consumers(fault, queue) == 1, 30, "the dispatcher back")
    back = time.monotonic() - began
    event_id = _publish(fault.broker(rabbit_worker.FUNCTIONS, dispatch=False))
    _wait_until(lambda: _done()[event_id] == 1, 30, "the event published after")
    print(
        f"\ndispatcher under a hung RabbitMQ: noticed in {noticed:.1f} s "
        f"(heartbeat {HEARTBEAT} s), consuming again {back:.1f} s after restore"
    )

"""The RabbitMQ-backed broker lays out and honours Triggers as eventing-rabbitmq does.

Against the real RabbitMQ at BROKER_URL, each test under its own broker name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import pika
import pytest
from conftest import event_function as _function

from eventing import dead_letters
from eventing.rabbitmq import DELIVERY_LIMIT, RabbitBroker, from_message
from shared.core import db, events, idempotency
from shared.core.registry import REGISTRY, Delivery, Function, Scaling, event

pytestmark = pytest.mark.services


@pytest.fixture
def rabbit(rabbitmq):
    db.migrate()  # dead letters and processed events, in this test's SQLite
    return rabbitmq


def _rabbitmqctl(command: str, *columns: str) -> list[list[str]]:
    output = subprocess.run(
        ["rabbitmqctl", "-q", command, *columns],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    rows = [line.split("\t") for line in output.splitlines()]
    return [row for row in rows if row != list(columns)]  # without the header line


@pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl to list the layout")
def test_layout_is_what_eventing_rabbitmq_declares(rabbit):
    broker = rabbit.broker(
        [_function("image_analyze", print, type="kr.growbin.waste.uploaded")], dispatch=False
    )
    base = f"b.growbin.{rabbit.name}"
    queue = f"t.growbin.image-analyze.{rabbit.name}"
    assert broker.layout.queues == {"image_analyze": queue}
    exchanges = {
        row[0]: row[1:] for row in _rabbitmqctl("list_exchanges", "name", "type", "durable")
    }
    assert exchanges[base] == ["headers", "true"] and exchanges[f"{base}.dlx"] == [
        "headers",
        "true",
    ]
    queues = {row[0]: row[1:] for row in _rabbitmqctl("list_queues", "name", "type", "arguments")}
    assert queues[queue][0] == "quorum" and queues[f"{base}.dlq"][0] == "quorum"
    assert f'"x-dead-letter-exchange","{base}.dlx"' in queues[queue][1]
    bindings = [
        row
        for row in _rabbitmqctl("list_bindings", "source_name", "destination_name", "arguments")
        if row[0] in (base, f"{base}.dlx")
    ]
    [trigger_binding] = [b for b in bindings if b[1] == queue]
    assert '"x-match","all"' in trigger_binding[2]
    assert '"type","kr.growbin.waste.uploaded"' in trigger_binding[2]
    assert [b[1] for b in bindings if b[0] == f"{base}.dlx"] == [f"{base}.dlq"]


def test_rabbitmq_routes_on_the_binding_headers_alone(rabbit):
    """No dispatcher here: what lands in each Trigger's queue is RabbitMQ's exact matching."""
    publisher = rabbit.broker(
        [
            _function("plain", print, type="kr.growbin.a"),
            _function("daily", print, type="kr.growbin.a", task="daily"),
        ],
        dispatch=False,
    )
    publisher.publish(events.make("kr.growbin.a", {}))
    publisher.publish(events.make("kr.growbin.a", {}, task="daily"))
    publisher.publish(events.make("kr.growbin.a", {}, task="Daily"))
    publisher.publish(events.make("kr.growbin.ab", {}, task="daily"))
    channel = rabbit.channel()
    counts = {
        name: channel.queue_declare(queue, passive=True).method.message_count
        for name, queue in publisher.layout.queues.items()
    }
    channel.connection.close()
    assert counts == {"plain": 3, "daily": 1}


def test_event_travels_as_binary_amqp_message_with_attribute_headers(rabbit):
    broker = rabbit.broker([], dispatch=False)
    channel = rabbit.channel()
    peek = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(peek, broker.layout.exchange, arguments={"x-match": "all"})
    sent = events.make("kr.growbin.a", {"item": "페트병"}, event_id="wire-1", task="daily")
    broker.publish(sent)
    method, properties, body = channel.basic_get(peek, auto_ack=True)
    channel.connection.close()
    assert method is not None
    assert properties.delivery_mode == 2 and properties.message_id == "wire-1"
    assert {"type", "source", "id", "specversion", "time", "task"} <= set(properties.headers)
    assert properties.headers["type"] == "kr.growbin.a" and properties.headers["task"] == "daily"
    assert json.loads(body) == {"item": "페트병"}
    received = from_message(properties, body)
    assert received.get_attributes() == sent.get_attributes() and received.data == sent.data


def test_event_reaches_only_the_matching_trigger(rabbit):
    got: dict[str, list] = {"a": [], "b": [], "task": []}
    lock = threading.Lock()

    def record(key):
        def handler(e):
            with lock:
                got[key].append(e["id"])

        return handler

    broker = rabbit.broker(
        [
            _function("a", record("a"), type="kr.growbin.a"),
            _function("b", record("b"), type="kr.growbin.b"),
            _function("task", record("task"), type="kr.growbin.a", task="daily"),
        ],
        time_scale=0.01,
    )
    assert broker.publish(events.make("kr.growbin.a", {"n": 1}, event_id="e1")) == 1
    assert broker.publish(events.make("kr.growbin.a", {}, event_id="e2", task="daily")) == 2
    assert broker.publish(events.make("kr.growbin.a", {}, event_id="e3", task="weekly")) == 1
    assert broker.publish(events.make("kr.growbin.a.extra", {}, event_id="e4")) == 0
    assert broker.publish(events.make("kr.growbin.B", {}, event_id="e5")) == 0
    assert broker.wait_idle(10)
    assert {k: sorted(v) for k, v in got.items()} == {
        "a": ["e1", "e2", "e3"],
        "b": [],
        "task": ["e2"],
    }


def test_retries_then_dead_letter_then_replay(rabbit, capsys):
    healthy = threading.Event()
    calls: list[str] = []

    def flaky(e):
        calls.append(e["id"])
        if not healthy.is_set():
            raise RuntimeError("model down")

    broker = rabbit.broker([_function("flaky", flaky, type="kr.growbin.x")], time_scale=0.01)
    broker.publish(events.make("kr.growbin.x", {"job": 1}, event_id="poison"))
    assert broker.wait_idle(10)
    assert calls == ["poison"] * 3  # the first try plus retry=2
    [letter] = dead_letters.listing()
    assert letter["trigger"] == "flaky" and letter["attempts"] == 3
    assert "model down" in letter["error"] and letter["event"]["data"] == {"job": 1}
    assert not any(k.startswith("knativeerror") for k in letter["event"])  # the original event

    from knative import cli

    assert cli.main(["dead-letters"]) == 0
    listed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert listed["id"] == letter["id"] and listed["trigger"] == "flaky"

    healthy.set()
    from knative.server import create_app

    client = create_app({}, broker).test_client()
    response = client.post(f"/_broker/dead-letters/{letter['id']}/replay")
    assert response.status_code == 202 and response.get_json()["trigger"] == "flaky"
    assert broker.wait_idle(10)
    assert calls == ["poison"] * 4
    assert dead_letters.listing() == [] and len(dead_letters.listing(include_replayed=True)) == 1
    assert client.post("/_broker/dead-letters/nope/replay").status_code == 404


def test_replayed_event_that_fails_again_is_a_new_dead_letter(rabbit):
    def broken(e):
        raise ValueError("still broken")

    broker = rabbit.broker(
        [_function("broken", broken, Delivery(retry=0), type="kr.growbin.y")], time_scale=0.01
    )
    broker.publish(events.make("kr.growbin.y", {}, event_id="again"))
    assert broker.wait_idle(10)
    [first] = dead_letters.listing()
    broker.replay(first["id"])
    assert broker.wait_idle(10)
    [second] = dead_letters.listing()
    assert second["id"] != first["id"] and second["event_id"] == "again"
    assert second["attempts"] == 1


def test_delivered_twice_runs_once(rabbit):
    """The @event wrapper deduplicates on the CloudEvent id and the consumer's name."""
    runs = []

    @event("kr.growbin.test.rabbit.once", scaling=Scaling(threads=2))
    def test_rabbit_consumer_once(cloud_event):
        runs.append(cloud_event["id"])

    declared = REGISTRY.pop("test_rabbit_consumer_once")
    broker = rabbit.broker([declared], time_scale=0.01)
    same = events.make("kr.growbin.test.rabbit.once", {}, event_id="dup-1")
    broker.publish(same)
    assert broker.wait_idle(10)
    broker.publish(same)
    broker.publish(events.make("kr.growbin.test.rabbit.once", {}, event_id="dup-2"))
    assert broker.wait_idle(10)
    assert runs == ["dup-1", "dup-2"]
    assert idempotency.seen("dup-1", "test_rabbit_consumer_once")


def test_a_message_no_dispatcher_ever_finishes_is_dead_lettered_by_rabbitmq(rabbit):
    """A handler that kills its dispatcher every time must not go round forever: after
    DELIVERY_LIMIT deliveries RabbitMQ dead-letters it, and the letter says why."""
    done = []
    crashing = _function("crashing", lambda e: done.append(e["id"]), type="kr.growbin.z")
    publisher = rabbit.broker([crashing], dispatch=False)
    publisher.publish(events.make("kr.growbin.z", {"n": 1}, event_id="crash-loop"))
    queue = publisher.layout.queues["crashing"]
    channel = rabbit.channel()
    deliveries = 0
    while True:  # a dispatcher that takes the message and dies before its ack, again and again
        method, _properties, _body = channel.basic_get(queue)
        if method is None:
            break
        deliveries += 1
        channel.basic_nack(method.delivery_tag, requeue=True)
    channel.connection.close()
    assert deliveries == DELIVERY_LIMIT + 1

    broker = rabbit.broker([crashing], time_scale=0.01)  # its dead-letter consumer records it
    assert broker.wait_idle(10)
    [letter] = dead_letters.listing()
    assert letter["trigger"] == "crashing" and letter["attempts"] == DELIVERY_LIMIT + 1
    assert "delivery_limit" in letter["error"] and letter["event"]["data"] == {"n": 1}
    broker.replay(letter["id"])
    assert broker.wait_idle(10)
    assert done == ["crash-loop"]


def test_publisher_reconnects_after_its_connection_drops(rabbit):
    broker = rabbit.broker([], dispatch=False)
    broker.publish(events.make("kr.growbin.a", {}))
    broker._publisher[0].close()  # as when RabbitMQ closes it
    assert broker.publish(events.make("kr.growbin.a", {})) == 0  # sent, on a new connection


def test_unreachable_rabbitmq_fails_at_start_and_publishing_maps_to_503(rabbit):
    from shared.core.errors import as_api_error

    with pytest.raises(pika.exceptions.AMQPConnectionError) as raised:
        RabbitBroker([], "amqp://guest:guest@127.0.0.1:1/%2F", rabbit.name)
    error = as_api_error(raised.value, "test")
    assert error.status == 503 and error.code == "UNAVAILABLE" and "Retry-After" in error.headers


def test_local_runtime_uses_rabbitmq_when_broker_url_is_set(rabbit):
    from knative import local

    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    rabbit.track(system.broker)
    try:
        assert isinstance(system.broker, RabbitBroker)
        assert system.broker.name == rabbit.name
        headers, body = _binary(events.make("kr.growbin.nobody.listens", {"x": 1}))
        response = system.app.test_client().post("/_broker", headers=headers, data=body)
        assert response.status_code == 202 and response.get_json() == {"matched": 0}
    finally:
        system.stop()


def _binary(event):
    from cloudevents.conversion import to_binary

    return to_binary(event)


def test_close_lets_the_running_handler_finish_and_leaves_the_rest_queued(rabbit):
    started, release = threading.Event(), threading.Event()
    handled = []

    def slow(e):
        started.set()
        release.wait(5)
        handled.append(e["id"])

    function = Function(
        name="slow",
        module="functions.test",
        kind="event",
        summary="slow",
        handler=slow,
        filter={"type": "kr.growbin.slow"},
        scaling=Scaling(threads=1),
    )
    broker = rabbit.broker([function], time_scale=0.01)
    for n in range(3):
        broker.publish(events.make("kr.growbin.slow", {}, event_id=f"s{n}"))
    assert started.wait(5)
    closing = threading.Thread(target=broker.close)
    closing.start()
    time.sleep(0.3)
    release.set()
    closing.join(15)
    assert handled == ["s0"]  # the running one finished and was acked before the close
    channel = rabbit.channel()
    left = channel.queue_declare(broker.layout.queues["slow"], passive=True).method.message_count
    channel.connection.close()
    assert left == 2  # the others are back in the queue for the next dispatcher

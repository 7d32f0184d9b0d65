"""The local broker honours Triggers as eventing-rabbitmq does: exact filters, retries, DLQ."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from conftest import event_function as _function

from eventing import dead_letters
from eventing.broker import LocalBroker, backoff
from shared.core import db, events, idempotency
from shared.core.registry import Delivery, event, seconds


@pytest.fixture
def migrated(env):
    db.migrate()


def test_event_reaches_only_the_matching_trigger(migrated):
    got: dict[str, list] = {"a": [], "b": [], "task": []}
    broker = LocalBroker(
        [
            _function("a", lambda e: got["a"].append(e["id"]), type="kr.growbin.a"),
            _function("b", lambda e: got["b"].append(e["id"]), type="kr.growbin.b"),
            _function(
                "task", lambda e: got["task"].append(e["id"]), type="kr.growbin.a", task="daily"
            ),
        ],
        time_scale=0.01,
    )
    try:
        assert broker.publish(events.make("kr.growbin.a", {"n": 1}, event_id="e1")) == 1
        assert broker.publish(events.make("kr.growbin.a", {}, event_id="e2", task="daily")) == 2
        assert broker.publish(events.make("kr.growbin.a.extra", {}, event_id="e3")) == 0
        assert broker.wait_idle(5)
    finally:
        broker.close()
    assert got == {"a": ["e1", "e2"], "b": [], "task": ["e2"]}


def test_failing_function_is_retried_then_dead_lettered(migrated):
    calls = []

    def always_fails(e):
        calls.append(e["id"])
        raise RuntimeError("model down")

    broker = LocalBroker([_function("fails", always_fails, type="kr.growbin.x")], time_scale=0.01)
    try:
        broker.publish(events.make("kr.growbin.x", {"job": 1}, event_id="poison"))
        assert broker.wait_idle(5)
    finally:
        broker.close()
    assert calls == ["poison"] * 3  # the first try plus retry=2
    [letter] = dead_letters.listing()
    assert letter["trigger"] == "fails" and letter["attempts"] == 3
    assert "model down" in letter["error"] and letter["event"]["data"] == {"job": 1}


def test_dead_letter_replays_to_its_trigger(migrated):
    healthy = threading.Event()
    seen = []

    def flaky(e):
        if not healthy.is_set():
            raise RuntimeError("down")
        seen.append(e["id"])

    broker = LocalBroker(
        [_function("flaky", flaky, Delivery(retry=0), type="kr.growbin.y")], time_scale=0.01
    )
    try:
        broker.publish(events.make("kr.growbin.y", {}, event_id="later"))
        assert broker.wait_idle(5)
        [letter] = dead_letters.listing()
        healthy.set()
        broker.replay(letter["id"])
        assert broker.wait_idle(5)
    finally:
        broker.close()
    assert seen == ["later"]
    assert dead_letters.listing() == []
    assert len(dead_letters.listing(include_replayed=True)) == 1


def test_retry_recovers_a_transient_failure(migrated):
    attempts = []

    def second_time_lucky(e):
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("blip")

    broker = LocalBroker(
        [_function("blip", second_time_lucky, type="kr.growbin.z")], time_scale=0.01
    )
    try:
        broker.publish(events.make("kr.growbin.z", {}))
        assert broker.wait_idle(5)
    finally:
        broker.close()
    assert len(attempts) == 2 and dead_letters.listing() == []


def test_delivered_twice_runs_once(migrated):
    """The @event wrapper deduplicates on the CloudEvent id and the consumer's name."""
    runs = []

    @event("kr.growbin.test.once")
    def test_consumer_once(cloud_event):
        runs.append(cloud_event["id"])

    from shared.core.registry import REGISTRY

    declared = REGISTRY.pop("test_consumer_once")
    broker = LocalBroker([declared], time_scale=0.01)
    try:
        same = events.make("kr.growbin.test.once", {}, event_id="dup-1")
        broker.publish(same)
        broker.wait_idle(5)
        broker.publish(same)
        broker.publish(events.make("kr.growbin.test.once", {}, event_id="dup-2"))
        assert broker.wait_idle(5)
    finally:
        broker.close()
    assert runs == ["dup-1", "dup-2"]
    assert idempotency.seen("dup-1", "test_consumer_once")


def test_backoff_follows_knative_policies():
    exponential = Delivery(backoff_policy="exponential", backoff_delay="PT0.5S")
    linear = Delivery(backoff_policy="linear", backoff_delay="PT2S")
    assert [backoff(exponential, n) for n in range(3)] == [0.5, 1.0, 2.0]
    assert [backoff(linear, n) for n in range(3)] == [2, 4, 6]
    assert seconds("P1DT2H3M4.5S") == 86400 + 7200 + 180 + 4.5
    with pytest.raises(ValueError):
        seconds("5s")


def test_derived_ids_are_stable_per_stage():
    assert idempotency.derived_id("e1", "analyze") == idempotency.derived_id("e1", "analyze")
    assert idempotency.derived_id("e1", "analyze") != idempotency.derived_id("e1", "classify")


def test_an_event_is_kept_even_when_the_dead_letter_store_is_down(migrated, monkeypatch):
    """The database down as well: the event is tried again later, then recorded, not dropped."""
    calls = []
    real_record = dead_letters.record
    outages = iter([True, False])

    def flaky_record(*args, **kwargs):
        if next(outages):
            raise RuntimeError("database down")
        return real_record(*args, **kwargs)

    def always_fails(e):
        calls.append(e["id"])
        raise RuntimeError("still failing")

    monkeypatch.setattr(dead_letters, "record", flaky_record)
    broker = LocalBroker(
        [
            _function(
                "fails",
                always_fails,
                Delivery(retry=1, backoff_delay="PT0.1S"),
                type="kr.growbin.dl",
            )
        ],
        time_scale=0.01,
    )
    try:
        broker.publish(events.make("kr.growbin.dl", {}, event_id="kept"))
        assert broker.wait_idle(5)
    finally:
        broker.close()
    assert calls == ["kept"] * 3  # two tries, then once more after the store failed
    [letter] = dead_letters.listing()
    assert letter["event_id"] == "kept"


def test_a_dead_letter_calls_the_reaction_its_function_declared(migrated, monkeypatch):
    from functions import load_all
    from shared.core.registry import REGISTRY
    from shared.waste import pipeline

    reactions = []
    declared = _function("reacts", lambda e: None, type="kr.growbin.r")
    declared = dataclasses.replace(
        declared, on_dead_letter=lambda e, error: reactions.append((e["id"], error))
    )
    monkeypatch.setitem(REGISTRY, "reacts", declared)
    dead_letters.record("reacts", events.make("kr.growbin.r", {}, event_id="r1"), 3, "boom")
    dead_letters.record("undeclared", events.make("kr.growbin.r", {}, event_id="r2"), 3, "boom")
    assert reactions == [("r1", "boom")]
    stages = ("image_analyze", "classification_identify", "feedback_generate", "result_save")
    assert all(load_all()[name].on_dead_letter is pipeline.dead_lettered for name in stages)

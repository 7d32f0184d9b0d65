"""The local broker: what the Knative Broker and its Triggers do on the cluster, in one process.

Triggers are read off the function declarations. An event published here goes to every
function whose Trigger's `filter.attributes` all match exactly (as eventing-rabbitmq matches:
no prefixes, no CESQL), each Trigger with its own queue of at most the function's concurrency
in flight. A failed delivery is retried per the Trigger's `delivery` (retry count, linear or
exponential backoff); after the last retry the event goes to the dead letters, where it can be
listed and replayed. Events cross a binary-mode HTTP encoding on the way, as on the cluster, so
what cannot be sent over the wire fails here too.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http

from eventing import dead_letters
from shared.core.errors import log_event
from shared.core.registry import Delivery, Function, seconds


def backoff(delivery: Delivery, retry_number: int) -> float:
    """Delay before retry `retry_number` (0-based), as Knative's backoffPolicy defines it."""
    base = seconds(delivery.backoff_delay)
    if delivery.backoff_policy == "exponential":
        return base * (2**retry_number)
    return base * (retry_number + 1)


def next_retry(
    function: Function, event: CloudEvent, attempt: int, error: str, time_scale: float = 1.0
) -> float | None:
    """Seconds before retrying failed delivery `attempt` (0-based), or None when the Trigger's
    retries are spent and the event goes to the dead letters; logs which."""
    if attempt < function.delivery.retry:
        delay = backoff(function.delivery, attempt) * time_scale
        log_event(
            "warning",
            "delivery_retry",
            trigger=function.name,
            event_id=event["id"],
            attempt=attempt + 1,
            retry_in_s=round(delay, 3),
            error=error,
        )
        return delay
    log_event(
        "error",
        "dead_lettered",
        trigger=function.name,
        event_id=event["id"],
        attempts=attempt + 1,
        error=error,
    )
    return None


def matches(filter_attributes: dict[str, str], event: CloudEvent) -> bool:
    attributes = event.get_attributes()
    return all(attributes.get(name) == value for name, value in filter_attributes.items())


@dataclass
class _Trigger:
    function: Function
    pool: ThreadPoolExecutor


class LocalBroker:
    """Publish events to the Triggers of the given functions; deliveries run on threads."""

    def __init__(self, functions: Iterable[Function], time_scale: float = 1.0) -> None:
        self.time_scale = time_scale  # tests shrink backoff delays; the semantics stay
        self.triggers = [
            _Trigger(f, ThreadPoolExecutor(f.scaling.concurrency, thread_name_prefix=f.name))
            for f in functions
            if f.kind == "event"
        ]
        self._pending: list[tuple[float, int, _Trigger, CloudEvent, int]] = []
        self._seq = itertools.count()
        self._outstanding = 0
        self._cond = threading.Condition()
        self._closed = False
        self._timer = threading.Thread(target=self._release_due, name="broker-timer", daemon=True)
        self._timer.start()

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, event: CloudEvent) -> int:
        """Hand an event to every matching Trigger; returns how many matched."""
        targets = [t for t in self.triggers if matches(t.function.filter, event)]
        for trigger in targets:
            self._submit(trigger, event, attempt=0)
        if not targets:
            log_event("info", "event_unmatched", event_type=event["type"], event_id=event["id"])
        return len(targets)

    def _submit(self, trigger: _Trigger, event: CloudEvent, attempt: int) -> None:
        with self._cond:
            self._outstanding += 1
        trigger.pool.submit(self._deliver, trigger, event, attempt)

    # -- delivery -----------------------------------------------------------------------------

    def _deliver(self, trigger: _Trigger, event: CloudEvent, attempt: int) -> None:
        function = trigger.function
        try:
            headers, body = to_binary(event)
            function.handler(from_http(headers, body))
        except Exception as exc:
            delay = next_retry(function, event, attempt, repr(exc), self.time_scale)
            if delay is not None:
                self._later(trigger, event, attempt + 1, delay)
            else:
                self._dead_letter(trigger, event, attempt, repr(exc))
        finally:
            with self._cond:
                self._outstanding -= 1
                self._cond.notify_all()

    def _later(self, trigger: _Trigger, event: CloudEvent, attempt: int, delay: float) -> None:
        with self._cond:
            heapq.heappush(
                self._pending, (time.monotonic() + delay, next(self._seq), trigger, event, attempt)
            )
            self._outstanding += 1
            self._cond.notify_all()

    def _dead_letter(self, trigger: _Trigger, event: CloudEvent, attempt: int, error: str) -> None:
        """Keep what the Trigger gave up on; if even that fails (the database is down too), the
        event waits and is tried once more, then kept: nothing is dropped."""
        try:
            dead_letters.record(trigger.function.name, event, attempt + 1, error)
        except Exception as exc:
            delay = backoff(trigger.function.delivery, attempt) * self.time_scale
            log_event(
                "error",
                "dead_letter_unrecorded",
                trigger=trigger.function.name,
                event_id=event["id"],
                retry_in_s=round(delay, 3),
                error=repr(exc),
            )
            self._later(trigger, event, attempt, delay)

    def _release_due(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (
                    not self._pending or self._pending[0][0] > time.monotonic()
                ):
                    timeout = self._pending[0][0] - time.monotonic() if self._pending else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, trigger, event, attempt = heapq.heappop(self._pending)
                self._outstanding -= 1  # _submit counts it again
            self._submit(trigger, event, attempt)

    # -- lifecycle ----------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is queued, running or waiting to be retried."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for trigger in self.triggers:
            trigger.pool.shutdown(wait=False, cancel_futures=True)

    def replay(self, letter_id: str) -> dict[str, Any]:
        """Send a dead letter back to its Trigger's function."""
        letter, event = dead_letters.take(letter_id)
        trigger = next((t for t in self.triggers if t.function.name == letter["trigger"]), None)
        if trigger is None:
            raise KeyError(f"no trigger {letter['trigger']}")
        self._submit(trigger, event, attempt=0)
        return letter

"""Local cron: fires the PingSource schedules of the declarations into the local broker.

The events look like the PingSource's (type dev.knative.sources.ping, its source path, the
`task` extension its ceOverrides set), so the same Triggers match locally and on the cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cloudevents.http import CloudEvent

from shared.core.deployment import NAMESPACE
from shared.core.errors import log_event
from shared.core.events import make
from shared.core.idempotency import derived_id
from shared.core.registry import PING_TYPE, SEOUL, Function

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # minute hour day month weekday (7 = Sunday)


def _field(spec: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        body, _, step = part.partition("/")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            start, end = (int(x) for x in body.split("-"))
        else:
            start = end = int(body)
        if start < low or end > high or start > end:
            raise ValueError(f"cron field {part!r} outside {low}-{high}")
        values.update(range(start, end + 1, int(step) if step else 1))
    return values


def parse(schedule: str) -> list[set[int]]:
    """The five standard cron fields, each as the set of values it allows."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"cron needs 5 fields: {schedule!r}")
    parsed = [_field(f, lo, hi) for f, (lo, hi) in zip(fields, _RANGES, strict=True)]
    parsed[4] = {0 if d == 7 else d for d in parsed[4]}
    return parsed


def due(schedule: str, at: datetime) -> bool:
    minute, hour, day, month, weekday = parse(schedule)
    cron_weekday = (at.weekday() + 1) % 7  # cron counts Sunday as 0
    return (
        at.minute in minute
        and at.hour in hour
        and at.day in day
        and at.month in month
        and cron_weekday in weekday
    )


def source_of(function: Function) -> str:
    return f"/apis/v1/namespaces/{NAMESPACE}/pingsources/{function.service}"


def ping(function: Function, at: datetime) -> CloudEvent:
    """The ping due at `at`. Its id is derived from the schedule slot: dev servers sharing one
    RabbitMQ broker each fire it, and the @event wrapper runs the task once."""
    return make(
        PING_TYPE,
        {"task": function.filter["task"]},
        source=source_of(function),
        event_id=derived_id(at.isoformat(), f"ping:{function.name}"),
        task=function.filter["task"],
    )


class Cron:
    """A thread that wakes each minute (Seoul time) and publishes the pings that are due."""

    def __init__(self, functions: Iterable[Function], publish: Callable[[CloudEvent], int]) -> None:
        self.scheduled = [f for f in functions if f.schedule]
        for function in self.scheduled:
            parse(function.schedule)  # a bad schedule fails at start, not at 3 am
        self.publish = publish
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cron", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def fire_due(self, at: datetime) -> list[str]:
        fired = []
        for function in self.scheduled:
            if due(function.schedule, at):
                self.publish(ping(function, at))
                fired.append(function.name)
        return fired

    def _run(self) -> None:
        zone = ZoneInfo(SEOUL)
        while not self._stop.is_set():
            now = datetime.now(zone)
            next_minute = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
            if self._stop.wait((next_minute - now).total_seconds()):
                return
            fired = self.fire_due(next_minute)
            if fired:
                log_event("info", "cron_fired", functions=fired, at=next_minute.isoformat())

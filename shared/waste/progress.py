"""A job's progress, pushed: every status view the jobs write is published, and a stream sends
the ones its client has not seen, as Server-Sent Events, until the job completes or fails.

An event's id is the job's progress (0, 10, 25, ... 100): it only grows, so a client's
Last-Event-ID says what it has seen, and a repeated or late view (a redelivered stage, a view
republished from the row) is never sent twice. A failed job's event is 100 too: the last one.

It is polled too: where a job's status view is cached, its shape, and the answer a poll gets
from the cache alone. This module loads no database layer, so the status poll (the app's most
frequent call) starts cold without it; the row is the jobs module's, read on a miss.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core import cache, streams
from shared.core.errors import not_found
from shared.core.times import parse_rfc3339

PROGRESS = streams.Fanout("waste:progress")
FINAL = ("completed", "failed")
LAST = 100  # the final event's id, whichever way the job ended
RECONNECT_MS = 1000  # how soon a client reconnects when a stream ends before the job
DEADLINE = timedelta(minutes=10)  # queued/processing longer than this is TIMED_OUT
POLL_AFTER = {"awaiting_upload": 5, "queued": 1, "processing": 1}  # Retry-After seconds

# The status body, as a closed object schema (what `validation.obj` builds), written out here:
# the pipeline's stages import this module and need no schema compiler at cold start.
STATUS = {
    "type": "object",
    "properties": {
        "job_id": {"type": "string"},
        "status": {"enum": ["awaiting_upload", "queued", "processing", "completed", "failed"]},
        "stage": {"enum": ["upload", "queued", "analyze", "classify", "feedback", "save", "done"]},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "updated_at": {"type": "string", "format": "date-time"},
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
    "required": ["job_id", "status", "stage", "progress", "updated_at"],
}


def status_key(job_id: str) -> str:
    """Where the poller's view of the job is cached: status routes read it with their caller."""
    return f"job:{job_id}:status"


def status_along(job_id: str) -> list[str]:
    """The keys a status route reads in its caller's round trip (`along`)."""
    return [status_key(job_id)]


def overdue(view: dict[str, Any]) -> bool:
    if view["status"] not in ("queued", "processing"):
        return False
    return datetime.now(UTC) - parse_rfc3339(view["updated_at"]) > DEADLINE


def cached(user_id: str, job_id: str, value: str | None) -> dict[str, Any] | None:
    """The poller's view from its cached `value` (read at `status_key`); None when nothing is
    cached or the job is overdue: then the row decides (`jobs.status`). Another user's job is
    NOT_FOUND."""
    if value is None:
        return None
    view = json.loads(value)
    if view.pop("user_id") != user_id:
        raise not_found("job")
    return None if overdue(view) else view


def retry_after(view: dict[str, Any]) -> dict[str, str]:
    seconds = POLL_AFTER.get(view["status"])
    return {"Retry-After": str(seconds)} if seconds else {}


def publish(view: dict[str, Any], via: cache.Pipeline | None = None) -> None:
    """Tell the streams of this job (in every process) where it is now; as part of the
    transaction `via` when given."""
    PROGRESS.publish(view["job_id"], view, via)


def event_id(view: dict[str, Any]) -> int:
    return LAST if view["status"] in FINAL else view["progress"]


class Events:
    """One client's stream of one job: the current view if the client has not seen it, then a
    view per change, a heartbeat comment whenever `heartbeat` seconds pass without one, and
    the end after the final view or after `seconds` (the client then resumes). The server
    closes it when the client goes away; that closes its inbox."""

    def __init__(
        self,
        inbox: streams.Inbox,
        view: dict[str, Any],
        after: int | None,
        read: Callable[[], dict[str, Any]],
        seconds: float,
        heartbeat: float,
    ) -> None:
        self.inbox, self.view, self.after, self.read = inbox, view, after, read
        self.seconds, self.heartbeat = seconds, heartbeat

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._events()
        finally:
            self.inbox.close()  # ended, or the client went away: either way, done listening

    def _events(self) -> Iterator[str]:
        deadline = time.monotonic() + self.seconds
        seen = -1 if self.after is None else self.after
        view = self.view
        yield streams.retry(RECONNECT_MS)  # the first bytes at once, whatever the job does
        while True:
            if event_id(view) > seen:
                seen = event_id(view)
                yield streams.event(seen, view)
                if view["status"] in FINAL:
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            message = self.inbox.get(min(self.heartbeat, left))
            if message is None:
                yield streams.HEARTBEAT
            elif message is streams.RESYNC:
                view = self.read()
            else:
                view = message

    def close(self) -> None:
        """The server closes the body it was given, read or not: the inbox goes either way."""
        self.inbox.close()


def events(
    job_id: str,
    after: int | None,
    read: Callable[[], dict[str, Any]],
    seconds: float,
    heartbeat: float,
) -> Events | None:
    """The stream of a job whose view `read` gives (it raises for an unknown or another
    user's job), from after event `after`; None when the client has seen the final event.
    The process listens for the job before reading it, so no change falls in between."""
    inbox = PROGRESS.watch(job_id)
    try:
        view = read()
    except BaseException:
        inbox.close()
        raise
    if view["status"] in FINAL and after is not None and after >= LAST:
        inbox.close()
        return None
    return Events(inbox, view, after, read, seconds, heartbeat)

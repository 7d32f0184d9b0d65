"""Pushed updates: one cache subscription per process, fanned out to the streams waiting here,
and the Server-Sent Events a stream is written as.

A `Fanout` is a channel of the cache (Redis pub/sub, or the in-process cache locally) whose
messages each name a key. However many streams wait, the process subscribes once: a thread
reads the channel and hands each message to the inboxes watching its key, and its key to
every follower (the process's copies of the cache, `mirror`, drop theirs). That is what keeps
Redis at one connection per instance rather than one per client.

Pub/sub is fire and forget: a message published while the subscription is down is lost. So
whenever the thread subscribes again after losing the subscription, every inbox gets `RESYNC`
and its stream reads the current state instead of trusting that it missed nothing.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from shared.core import cache
from shared.core.errors import log_event, unavailable, validation_failed

RESYNC = object()  # what an inbox gets after the subscription was lost: read the state again
READY_SECONDS = 5  # how long a new stream waits for the process's subscription
BACKOFF_SECONDS = (0.1, 0.5, 1, 2, 5)  # between attempts to subscribe again
POLL_SECONDS = 1.0  # the thread's longest wait on the channel: how soon it notices `stop`


class Inbox:
    """The messages of one key, from the moment the inbox was made until `close`."""

    def __init__(self, fanout: Fanout, key: str) -> None:
        self.fanout, self.key = fanout, key
        self._messages: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, message: Any) -> None:
        self._messages.put(message)

    def get(self, timeout: float) -> Any:
        """The next message (its data, or RESYNC), or None when `timeout` seconds pass."""
        try:
            return self._messages.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self) -> None:
        self.fanout._forget(self)


class Fanout:
    """One subscription to `channel` per process, shared by every inbox of every key."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.subscriptions = 0  # times this process subscribed: one, unless the link broke
        self._generation = 0
        self._inboxes: dict[str, set[Inbox]] = {}
        self._followers: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _FANOUTS.append(self)

    def publish(self, key: str, data: Any, via: cache.Pipeline | None = None) -> None:
        """Send `data` to every stream watching `key`, in every process; queued on the
        transaction `via` when given (it is sent when that executes)."""
        message = json.dumps({"key": key, "data": data}, ensure_ascii=False, default=str)
        (via or cache.client()).publish(self.channel, message)

    def watch(self, key: str) -> Inbox:
        """An inbox for `key`, registered and with the subscription live before it returns:
        read the current state after this, and no change can fall between the two."""
        inbox = Inbox(self, key)
        with self._lock:
            self._inboxes.setdefault(key, set()).add(inbox)
            self._listening()
        if not self._ready.wait(READY_SECONDS):
            inbox.close()
            raise unavailable("progress updates are unavailable; poll the status meanwhile")
        return inbox

    def follow(self, callback: Callable[[str], None]) -> None:
        """Call `callback` with the key of every message from now on, in the listening thread
        (it must be quick); once, however often it is asked. Unlike `watch`, this does not
        wait for the subscription: the follower asks `generation` whether it is live."""
        with self._lock:
            if callback not in self._followers:
                self._followers.append(callback)
            self._listening()

    @property
    def generation(self) -> int | None:
        """Which subscription is live, or None while none is. Each subscription, this
        fanout's or another's, again or after `stop`, has a number never used before: a
        follower trusts what it heard only within one generation."""
        return self._generation if self._ready.is_set() else None

    def _listening(self) -> None:
        """Start the listening thread unless it runs (under the lock)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._listen, args=(self._stop,), name=f"fanout-{self.channel}"
            )
            self._thread.daemon = True
            self._thread.start()

    @property
    def watching(self) -> int:
        """How many inboxes are open: the streams this process holds."""
        with self._lock:
            return sum(len(inboxes) for inboxes in self._inboxes.values())

    def stop(self) -> None:
        """Let the subscription go (tests, between fresh clients); the next `watch` subscribes
        again on the current cache client."""
        with self._lock:
            thread, self._thread = self._thread, None
            self.subscriptions = 0
            self._stop.set()
            self._ready.clear()
        if thread is not None:
            thread.join(POLL_SECONDS * 2)  # its subscription is gone when this returns

    def _forget(self, inbox: Inbox) -> None:
        with self._lock:
            inboxes = self._inboxes.get(inbox.key)
            if inboxes is not None:
                inboxes.discard(inbox)
                if not inboxes:
                    del self._inboxes[inbox.key]

    def _listen(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = cache.client().pubsub()
                pubsub.subscribe(self.channel)
                while not stop.is_set():
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Ours, or redis-py's own after it reconnected a dropped connection.
                        self._subscribed()
                        failures = 0
                    elif message["type"] == "message":
                        self._deliver(message["data"])
            except Exception as exc:  # the cache is down: streams wait, and resync after
                self._ready.clear()
                wait = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                log_event("warning", "fanout_lost", channel=self.channel, error=repr(exc))
                stop.wait(wait)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception as exc:  # a connection already gone has nothing to close
                        log_event("info", "fanout_close_failed", error=repr(exc))

    def _subscribed(self) -> None:
        """Subscribed: the first time, streams may start; again, what was published while
        the subscription was down is lost, so every stream reads its state anew."""
        if self.subscriptions:
            self._broadcast(RESYNC)
        self.subscriptions += 1
        self._generation = next(_GENERATIONS)
        self._ready.set()

    def _deliver(self, raw: str) -> None:
        message = json.loads(raw)
        with self._lock:
            inboxes = list(self._inboxes.get(message["key"], ()))
            followers = list(self._followers)
        for follower in followers:
            follower(message["key"])
        for inbox in inboxes:
            inbox.put(message["data"])

    def _broadcast(self, message: Any) -> None:
        with self._lock:
            inboxes = [inbox for group in self._inboxes.values() for inbox in group]
        for inbox in inboxes:
            inbox.put(message)


_FANOUTS: list[Fanout] = []
_GENERATIONS = itertools.count(1)


def reset() -> None:
    """Every fanout lets its subscription go, as a new process would have none."""
    for fanout in _FANOUTS:
        fanout.stop()


# ---- Server-Sent Events -------------------------------------------------------------------

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
HEARTBEAT = ": keep-alive\n\n"  # a comment: clients ignore it, proxies see bytes flow


def event(event_id: int, data: Any) -> str:
    """One event: its id (what Last-Event-ID sends back) and its JSON data on one line."""
    return f"id: {event_id}\ndata: {_encode(data)}\n\n"


def retry(milliseconds: int) -> str:
    """How long a client waits before it reconnects when the stream ends early."""
    return f"retry: {milliseconds}\n\n"


def response(body: Iterable[str]):
    """A `text/event-stream` response: the body is sent as it is made, never buffered (by
    the server or, `X-Accel-Buffering`, a proxy) nor cached."""
    from flask import Response

    return Response(
        body,
        content_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def last_event_id(header: str | None) -> int | None:
    """The Last-Event-ID a reconnecting client sends: a non-negative integer, or absent."""
    if header is None or header == "":
        return None
    if not header.isdigit() or len(header) > 9:
        raise validation_failed({"header.Last-Event-ID": "must be an event id this stream sent"})
    return int(header)

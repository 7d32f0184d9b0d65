"""Cache values read on every request, kept in the process between their changes.

The status poll reads two keys each time (the caller's session state and the job's view), and
on Redis that round trip was most of its cost. Between two changes of a key its value is the
same, so a process may keep what it read, provided it hears when the key changes. Writers of
a mirrored key say so (`changed`, in the same transaction as the write), on one channel every
process follows through its one subscription (`streams.Fanout`); a process drops its copy of a
key when the message comes, and the next read goes to Redis again.

What keeps a copy true:
- Only a value read while the subscription was live is kept, and only within that
  subscription's generation: a subscription lost and made again may have missed changes.
- A change heard while a read of the same key is on its way keeps that read's value out.
- Absent keys are not kept: a key appears only through a write, and writes here are heard.
- Nothing is kept longer than `SECONDS`: a key that expires or is evicted in Redis says
  nothing, and a connection that silently broke is noticed late.

On the in-process cache (the embedded default) there is no round trip to save: reads go to it.
"""

from __future__ import annotations

import threading
import time

from shared.core import cache, streams
from shared.core.settings import settings

CHANGED = streams.Fanout("cache:changed")
SECONDS = 2.0  # the longest a copy is trusted without hearing of a change
LIMIT = 50_000  # copies kept before the expired ones are swept out

_copies: dict[str, tuple[str, float, int]] = {}  # key -> value, until, generation
_reading: dict[str, int] = {}  # key -> reads on their way to Redis
_changed_while_read: set[str] = set()
_lock = threading.Lock()


def changed(key: str, via: cache.Pipeline | None = None) -> None:
    """Tell every process that `key` was written or deleted; queued on the transaction `via`
    when given, so the write and the news of it go together."""
    CHANGED.publish(key, None, via)


def mget(keys: list[str]) -> list[str | None]:
    """The values of `keys`: this process's copies when it holds all of them, else one MGET,
    whose values it keeps."""
    client = cache.client()
    if not settings().redis_url:  # the in-process cache: nothing to save
        return client.mget(keys)
    generation = CHANGED.generation
    if generation is None:  # not subscribed (yet, or any more): nothing heard is trusted
        CHANGED.follow(_forget)
        return client.mget(keys)
    now = time.monotonic()
    with _lock:
        copies = [_copies.get(key) for key in keys]
        if all(c is not None and c[1] > now and c[2] == generation for c in copies):
            return [c[0] for c in copies]  # type: ignore[index]
        for key in keys:
            _reading[key] = _reading.get(key, 0) + 1
    values: list[str | None] = []
    try:
        values = client.mget(keys)
    finally:
        _keep(keys, values, now + SECONDS, generation)
    return values


def _keep(keys: list[str], values: list[str | None], until: float, generation: int) -> None:
    """Keep what a read found (nothing when it failed), unless a key changed meanwhile."""
    with _lock:
        if len(_copies) > LIMIT:
            _sweep()
        for key, value in zip(keys, values or [None] * len(keys), strict=True):
            left = _reading.pop(key) - 1
            if left:
                _reading[key] = left
            if key in _changed_while_read:
                if not left:
                    _changed_while_read.discard(key)
            elif value is not None:
                _copies[key] = (value, until, generation)


def _forget(key: str) -> None:
    """A key changed somewhere: drop the copy, and keep out the reads on their way."""
    with _lock:
        _copies.pop(key, None)
        if key in _reading:
            _changed_while_read.add(key)


def _sweep() -> None:
    """Drop the copies past their time (under the lock); all of them if that is not enough."""
    now = time.monotonic()
    for key in [key for key, (_, until, _) in _copies.items() if until <= now]:
        del _copies[key]
    if len(_copies) > LIMIT:
        _copies.clear()

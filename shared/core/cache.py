"""The cache: Redis when REDIS_URL is set, else an in-process store with the same TTL semantics.

`client()` picks one of the two once per process, from the settings. Callers use only the
Redis commands `Client` names; values are strings (JSON where structured). `Memory` implements
exactly those commands, so code and tests run the same on both; its pub/sub reaches the
subscribers of this process, which is all there is locally.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import cache
from typing import Any, Protocol

from shared.core.errors import ApiError
from shared.core.settings import settings


class Client(Protocol):
    """The redis-py commands the project uses: a `redis.Redis` and a `Memory` both have them."""

    def get(self, key: str) -> str | None: ...

    def mget(self, keys: list[str]) -> list[str | None]: ...

    def set(self, key: str, value: Any, ex: int | None = None, nx: bool = False) -> bool | None: ...

    def delete(self, *keys: str) -> int: ...

    def incr(self, key: str, amount: int = 1) -> int: ...

    def decr(self, key: str) -> int: ...

    def expire(self, key: str, seconds: int) -> bool: ...

    def ttl(self, key: str) -> int: ...

    def scan_iter(self, match: str = "*", count: int | None = None) -> Iterator[str]: ...

    def ping(self) -> bool: ...

    def publish(self, channel: str, message: str) -> int: ...

    def pubsub(self) -> PubSub: ...

    def pipeline(self, transaction: bool = True) -> Pipeline: ...


class Pipeline(Protocol):
    """A transaction (MULTI/EXEC, redis-py's `Pipeline`): the commands queued on it run at
    `execute`, together, in one round trip, with no other client's command between them."""

    def set(self, key: str, value: Any, ex: int | None = None, nx: bool = False) -> Pipeline: ...

    def delete(self, *keys: str) -> Pipeline: ...

    def publish(self, channel: str, message: str) -> Pipeline: ...

    def execute(self) -> list[Any]: ...

    def __enter__(self) -> Pipeline: ...

    def __exit__(self, *exc: object) -> None: ...


class PubSub(Protocol):
    """The part of redis-py's `PubSub` the project uses: one connection's subscriptions."""

    def subscribe(self, *channels: str) -> None: ...

    def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float = 0.0
    ) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class MemoryPubSub:
    """`PubSub` on a `Memory`: messages as redis-py hands them out (dicts with type, channel,
    data), the subscription's confirmation included."""

    def __init__(self, hub: Memory) -> None:
        self._hub = hub
        self._messages: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._channels: list[str] = []

    def subscribe(self, *channels: str) -> None:
        with self._hub._lock:
            for channel in channels:
                self._hub._subscribers.setdefault(channel, []).append(self)
                self._channels.append(channel)
                self._deliver("subscribe", channel, len(self._channels))

    def _deliver(self, kind: str, channel: str, data: Any) -> None:
        self._messages.put({"type": kind, "pattern": None, "channel": channel, "data": data})

    def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float = 0.0
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if not (ignore_subscribe_messages and message["type"] == "subscribe"):
                return message

    def close(self) -> None:
        with self._hub._lock:
            for channel in self._channels:
                self._hub._subscribers[channel].remove(self)
            self._channels.clear()


class MemoryPipeline:
    """`Pipeline` on a `Memory`: the queued commands run at `execute` under the store's lock,
    so no other thread's command falls between them."""

    def __init__(self, hub: Memory) -> None:
        self._hub = hub
        self._queued: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []

    def set(self, key: str, value: Any, ex: int | None = None, nx: bool = False) -> MemoryPipeline:
        self._queued.append((self._hub.set, (key, value), {"ex": ex, "nx": nx}))
        return self

    def delete(self, *keys: str) -> MemoryPipeline:
        self._queued.append((self._hub.delete, keys, {}))
        return self

    def publish(self, channel: str, message: str) -> MemoryPipeline:
        self._queued.append((self._hub.publish, (channel, message), {}))
        return self

    def execute(self) -> list[Any]:
        queued, self._queued = self._queued, []
        with self._hub._lock:
            return [command(*args, **kwargs) for command, args, kwargs in queued]

    def __enter__(self) -> MemoryPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._queued = []  # as redis-py: what was not executed is dropped


class Memory:
    """The commands of `Client` in one process, thread-safe, with Redis's TTL semantics."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}
        # Reentrant: a pipeline holds it across the commands it runs.
        self._lock = threading.RLock()
        self._subscribers: dict[str, list[MemoryPubSub]] = {}

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def mget(self, keys: list[str]) -> list[str | None]:
        with self._lock:
            return [self._live(key) for key in keys]

    def set(self, key: str, value: Any, ex: int | None = None, nx: bool = False) -> bool | None:
        with self._lock:
            if nx and self._live(key) is not None:
                return None
            self._data[key] = (str(value), time.monotonic() + ex if ex else None)
            return True

    def delete(self, *keys: str) -> int:
        with self._lock:
            return sum(self._data.pop(k, None) is not None for k in keys)

    def incr(self, key: str, amount: int = 1) -> int:
        with self._lock:
            current = self._live(key)
            expires = self._data[key][1] if current is not None else None
            value = int(current or 0) + amount
            self._data[key] = (str(value), expires)
            return value

    def decr(self, key: str) -> int:
        return self.incr(key, -1)

    def expire(self, key: str, seconds: int) -> bool:
        with self._lock:
            if self._live(key) is None:
                return False
            self._data[key] = (self._data[key][0], time.monotonic() + seconds)
            return True

    def ttl(self, key: str) -> int:
        with self._lock:
            if self._live(key) is None:
                return -2
            expires = self._data[key][1]
            return -1 if expires is None else max(0, round(expires - time.monotonic()))

    def scan_iter(self, match: str = "*", count: int | None = None) -> Iterator[str]:
        with self._lock:
            keys = [k for k in list(self._data) if self._live(k) is not None]
        return iter([k for k in keys if fnmatchcase(k, match)])

    def ping(self) -> bool:
        return True

    def publish(self, channel: str, message: str) -> int:
        with self._lock:
            subscribers = list(self._subscribers.get(channel, ()))
        for subscriber in subscribers:
            subscriber._deliver("message", channel, str(message))
        return len(subscribers)

    def pubsub(self) -> MemoryPubSub:
        return MemoryPubSub(self)

    def pipeline(self, transaction: bool = True) -> MemoryPipeline:
        return MemoryPipeline(self)


POOL_SPARE = 4  # connections beyond the request threads


@cache
def client() -> Client:
    """The cache, decided once per process: Redis at REDIS_URL, else in this process."""
    url = settings().redis_url
    if not url:
        return Memory()
    _import_redis()
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from shared.core.redis_client import Redis

    # One connection per request thread, and a few for the threads besides (the local broker's
    # deliveries): redis-py's default pool refuses the 101st concurrent caller with "Too many
    # connections", a 503 while Redis is healthy. A blocking pool makes a caller beyond it
    # wait for a free connection, up to one socket timeout, before that 503.
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings().pooled_threads + POOL_SPARE,
        timeout=2,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        # Retries pinned, not left to redis-py: its Redis() default retries 10 times, timeouts
        # included, which holds a request ~20 s on a Redis that does not answer. Here a timeout
        # is answered 503 after one socket timeout; a dropped connection is retried once.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )
    # The MGET every protected request makes runs on a lane of kept connections beside the
    # pool, one per request thread at most (redis_client): no pool round per call.
    return Redis(connection_pool=pool, lane=settings().pooled_threads)


def _import_redis() -> None:
    """Import redis-py without the OpenTelemetry SDK's metrics. redis-py 8 loads them whenever
    they are installed, for an instrumentation of its own that growbin never turns on (its
    spans and metrics are `telemetry`'s): 50-60 ms of every cold start on Redis, the status
    poll's included. A process that loaded the SDK already (one that exports) is left as is."""
    hidden = "opentelemetry.sdk.metrics"
    if hidden in sys.modules:
        return
    sys.modules[hidden] = None  # type: ignore[assignment]  # importing it fails: "not installed"
    try:
        import redis  # noqa: F401
    finally:
        del sys.modules[hidden]


def get_json(key: str) -> Any:
    raw = client().get(key)
    return json.loads(raw) if raw is not None else None


def set_json(key: str, value: Any, ttl: int, via: Client | Pipeline | None = None) -> None:
    """Cache `value` as JSON for `ttl` seconds; queued on the transaction `via` when given."""
    (via or client()).set(key, json.dumps(value, ensure_ascii=False, default=str), ex=ttl)


def hit_rate_limit(key: str, limit: int, window: int) -> int | None:
    """Count one call in a fixed window; the seconds to wait when over `limit`, else None."""
    c = client()
    count = c.incr(key)
    if count == 1:
        c.expire(key, window)
    if count > limit:
        ttl = c.ttl(key)
        if ttl < 0:  # a key left without TTL by a crash between incr and expire
            c.expire(key, window)
            ttl = window
        return max(1, ttl)
    return None


@contextlib.contextmanager
def rate_limited(key: str, limit: int, window: int, message: str) -> Iterator[None]:
    """Count one call against `limit` per `window` seconds: 429 RATE_LIMITED with Retry-After
    over it. A call that fails inside the block gives its count back, so a client retrying
    through an outage (503s while the database is down) keeps its allowance for afterwards."""
    wait = hit_rate_limit(key, limit, window)
    if wait:
        raise ApiError(429, "RATE_LIMITED", message, headers={"Retry-After": str(wait)})
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # the failure that brought us here is the answer
            client().decr(key)
        raise

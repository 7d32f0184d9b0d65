"""The Redis client: redis-py's, with its one hot command sent on a kept connection.

Every protected request, the status poll most often, is one MGET (the caller's session state
and the route's `along` keys). What redis-py wraps around a command costs more CPU than the
round trip's own Python: its observability hooks, option parsing and response callbacks, a
closure per retry; and taking a connection from the pool and giving it back costs as much
again: a queue with its lock and condition, a readiness `poll()` system call, the pool's fork
check and its connection-count metrics, twice per call. So `mget` here sends MGET straight on a
connection of its own lane: idle connections kept on a stack, popped and pushed back (each an
atomic list operation under the interpreter lock, so two threads never hold the same one).

What the pool gave is kept:
- A dropped connection is retried once, by the connection's own `Retry` (as `cache.client`
  configures it: once, on a connection error, none on a timeout). A connection that failed
  is disconnected before the error leaves `mget`, and reconnects on its next command, so a
  connection on the stack never has a reply left unread (what the pool's `poll()` checks).
- A cap: at most `lane` connections (the request threads that may hold one at once); a caller
  finding all of them busy takes redis-py's pooled path, with its cap and its wait. A
  progress stream's thousand threads thus keep no more idle connections than a poll's 16.
- Fork safety: a forked worker must not talk on its parent's sockets. The lane remembers the
  process that made it; a call in another process drops the parent's connections unused (the
  child closes only its copies of their descriptors: redis-py shuts a socket down only in the
  process that opened it) and makes its own.

Imported only when REDIS_URL is set.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.commands.helpers import list_or_args


class Redis(redis.Redis):
    """redis-py's client; `mget` on a lane of at most `lane` kept connections."""

    def __init__(self, *args: Any, lane: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lane = lane
        self._making = threading.Lock()
        self._reset_lane()

    def _reset_lane(self) -> None:
        self._pid = os.getpid()
        self._idle: list[Any] = []  # connections not in use; pop() and append() are atomic
        self._made = 0

    def mget(self, keys: Any, *args: Any) -> list[Any]:
        """MGET on a kept connection, as `execute_command` sends it minus its hooks; on the
        pool when every kept connection is busy."""
        names = list_or_args(keys, args)
        if self._pid != os.getpid():
            self._forked()
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._new_connection()
            if connection is None:  # the lane is full: the pool, which waits for one
                return super().mget(names)
        try:
            return connection.retry.call_with_retry(
                lambda: _mget(connection, names), lambda _error: connection.disconnect()
            )
        except BaseException:
            # Whatever broke the exchange (redis-py disconnects on its own errors; this also
            # covers one raised between sending and reading), the next caller must not find
            # this call's reply unread: it gets a fresh connection instead.
            connection.disconnect()
            raise
        finally:
            self._idle.append(connection)

    def _new_connection(self) -> Any | None:
        """A connection for the lane, made the way the pool makes its own; None at the cap."""
        with self._making:
            if self._made >= self._lane:
                return None
            self._made += 1
        pool = self.connection_pool
        return pool.connection_class(**pool.connection_kwargs)

    def _forked(self) -> None:
        """In a forked process: forget the parent's connections (never used here) once."""
        with self._making:
            if self._pid != os.getpid():
                self._reset_lane()

    def close(self) -> None:
        """Close the lane's idle connections, then what redis-py closes."""
        idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for connection in idle:
                connection.disconnect()
        super().close()


def _mget(connection: Any, names: list[Any]) -> list[Any]:
    connection.send_command("MGET", *names)
    return connection.read_response()

"""The Redis client: redis-py's, with its one hot command sent straight on a pooled connection.

Every status poll is one MGET (the caller's session state and the job's view, `along`). What
redis-py wraps around a command costs more CPU than the round trip's own Python: its
observability hooks, option parsing and response callbacks, a closure per retry. `mget` here
keeps the pool (its cap and checks), the connection's own retry (a dropped connection retried
once, as `cache.client` configures it) and the reply as redis-py parses it (MGET has no
callback: the list as read), and leaves out the rest. Imported only when REDIS_URL is set.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.helpers import list_or_args


class Redis(redis.Redis):
    def mget(self, keys: Any, *args: Any) -> list[Any]:
        """MGET on a connection from the pool, as `execute_command` sends it, minus its hooks."""
        names = list_or_args(keys, args)
        pool = self.connection_pool
        connection = pool.get_connection()
        try:
            return connection.retry.call_with_retry(
                lambda: _mget(connection, names), lambda _error: connection.disconnect()
            )
        finally:
            pool.release(connection)


def _mget(connection: Any, names: list[Any]) -> list[Any]:
    connection.send_command("MGET", *names)
    return connection.read_response()

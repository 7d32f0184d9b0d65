"""Housekeeping the TTLs cannot do: cache keys whose rows are gone, rate-limit buckets that lost
their TTL. Safe to run twice: it acts on what is still there. (Jobs and images keep their own
house: shared/waste/retention.py.)
"""

from __future__ import annotations

from shared.auth import accounts
from shared.core import cache
from shared.core.batching import chunked
from shared.waste import jobs

BATCH = 500


def cache_keys() -> dict[str, int]:
    """Remove job and user keys whose rows are gone, and rate-limit buckets left without TTL."""
    client = cache.client()
    removed = {"orphaned_jobs": 0, "orphaned_users": 0, "stale_rate_limits": 0}
    job_keys = list(client.scan_iter(match="job:*"))
    for chunk in chunked(job_keys, BATCH):
        ids = {key.split(":")[1] for key in chunk}
        alive = jobs.existing(list(ids))
        dead = [key for key in chunk if key.split(":")[1] not in alive]
        if dead:
            removed["orphaned_jobs"] += client.delete(*dead)
    user_keys = list(client.scan_iter(match="user:*"))
    for chunk in chunked(user_keys, BATCH):
        alive = accounts.existing(list({key.split(":")[1] for key in chunk}))
        dead = [key for key in chunk if key.split(":")[1] not in alive]
        if dead:
            removed["orphaned_users"] += client.delete(*dead)
    for key in client.scan_iter(match="ratelimit:*"):
        if client.ttl(key) == -1:  # a bucket whose expire was lost: it would never reset
            removed["stale_rate_limits"] += client.delete(key)
    return removed

"""A user's analyses over time: the history pages and the stats.

History is ordered by when each analysis was queued, newest first, and paged by a keyset
cursor on (queued_at, id): an analysis that arrives while someone pages can only appear
before the first page, so pages never repeat or skip a row. Stats are computed from the
rows, cached until the next change to the user's jobs (jobs.py drops the key) or the next
midnight in Korea, whichever comes first, since the streak is counted in KST days.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select

from shared.core import cache, db, storage
from shared.core.errors import bad_request
from shared.core.times import rfc3339
from shared.waste import jobs

KST = ZoneInfo("Asia/Seoul")
STATS_TTL = 300


# ---- history ------------------------------------------------------------------------------


def encode_cursor(queued_at: datetime, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{queued_at.isoformat()}|{job_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    invalid = bad_request("cursor is not one this API returned", fields={"cursor": "invalid"})
    try:
        stamp, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:  # ours always carry an offset; a naive time cannot be compared
            raise ValueError(stamp)
        # The stores compare in UTC: an offset that moves the time before year 1 or after
        # 9999 (0001-01-01T00:00:00+14:00) overflows there, so it is refused here.
        at = at.astimezone(UTC)
    except (ValueError, UnicodeError, binascii.Error, OverflowError):
        raise invalid from None
    if "\x00" in job_id:  # the stores cannot hold it; no id of ours has one
        raise invalid
    return at, job_id


def page(user_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    j, r = jobs.jobs, jobs.results
    query = (
        select(
            j.c.id,
            j.c.status,
            j.c.created_at,
            j.c.queued_at,
            j.c.image_key,
            j.c.image_deleted_at,
            r.c.item_name,
            r.c.major,
            r.c.middle,
        )
        .select_from(j.outerjoin(r, r.c.job_id == j.c.id))
        .where(j.c.user_id == user_id, j.c.queued_at.is_not(None))
        .order_by(j.c.queued_at.desc(), j.c.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        at, job_id = decode_cursor(cursor)
        query = query.where(or_(j.c.queued_at < at, and_(j.c.queued_at == at, j.c.id < job_id)))
    with db.engine().connect() as conn:
        rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "job_id": row.id,
            "status": row.status,
            "created_at": rfc3339(row.created_at),
            "item_name": row.item_name,
            "category": {"major": row.major, "middle": row.middle} if row.major else None,
            "image_url": None if row.image_deleted_at else storage.presign_download(row.image_key),
        }
        for row in rows
    ]
    next_cursor = encode_cursor(rows[-1].queued_at, rows[-1].id) if more else None
    return {"items": items, "next_cursor": next_cursor}


# ---- stats --------------------------------------------------------------------------------


def streak(days: set[date], today: date) -> int:
    """Consecutive KST days with a completed analysis, ending today (or yesterday, when today
    has none yet: the streak is not broken before the day is over)."""
    day = today if today in days else today - timedelta(days=1)
    count = 0
    while day in days:
        count += 1
        day -= timedelta(days=1)
    return count


def _seconds_to_kst_midnight(now: datetime) -> int:
    local = now.astimezone(KST)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - local).total_seconds()))


def stats(user_id: str) -> dict[str, Any]:
    cached = cache.get_json(jobs.stats_key(user_id))
    if cached is not None:
        return cached
    j, r = jobs.jobs, jobs.results
    with db.engine().connect() as conn:
        counts = dict(
            conn.execute(
                select(j.c.status, func.count())
                .where(j.c.user_id == user_id, j.c.queued_at.is_not(None))
                .group_by(j.c.status)
            ).all()
        )
        by_category = dict(
            conn.execute(
                select(r.c.middle, func.count()).where(r.c.user_id == user_id).group_by(r.c.middle)
            ).all()
        )
        finished = conn.execute(select(r.c.completed_at).where(r.c.user_id == user_id)).scalars()
        days = {at.astimezone(KST).date() for at in finished}
        last = conn.execute(select(func.max(j.c.queued_at)).where(j.c.user_id == user_id)).scalar()
    now = db.now()
    body = {
        "total_analyses": sum(counts.values()),
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "by_category": by_category,
        "streak_days": streak(days, now.astimezone(KST).date()),
        "last_analysis_at": rfc3339(last),
    }
    cache.set_json(jobs.stats_key(user_id), body, min(STATS_TTL, _seconds_to_kst_midnight(now)))
    return body

"""Daily analytics: one row per Korean calendar day, computed from the jobs of that day.

A day is recomputed whole and replaces its row, so running the same day twice (a redelivered
ping, a backfill) leaves exactly one row with the same figures.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Column, Date, Table, select

from shared.auth import accounts
from shared.core import db
from shared.waste import jobs

KST = ZoneInfo("Asia/Seoul")
# The stage steps whose durations are reported, as (from, to) in job_stages.
STEPS = (
    ("queued", "analyze"),
    ("analyze", "classify"),
    ("classify", "feedback"),
    ("feedback", "save"),
    ("save", "done"),
    ("queued", "done"),
)

daily_analytics = Table(
    "daily_analytics",
    db.metadata,
    Column("day", Date, primary_key=True),
    Column("figures", JSON, nullable=False),
    Column("computed_at", db.UtcDateTime, nullable=False),
)


def kst_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), KST)
    return start, start + timedelta(days=1)


def previous_kst_day(at: datetime) -> date:
    return at.astimezone(KST).date() - timedelta(days=1)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


def compute(day: date) -> dict[str, Any]:
    """The day's figures from the rows: what was analysed, how it went, how long it took."""
    start, end = kst_day_bounds(day)
    rows = jobs.queued_between(start, end)
    district = accounts.districts(sorted({row["user_id"] for row in rows}))
    stamps = [row["stages"] for row in rows]
    total = len(rows)
    status = Counter(row["status"] for row in rows)
    latencies = {}
    for first, last in STEPS:
        durations = [
            (s[last] - s[first]).total_seconds() for s in stamps if first in s and last in s
        ]
        latencies[f"{first}->{last}"] = {
            "p50_s": percentile(durations, 0.5),
            "p95_s": percentile(durations, 0.95),
            "n": len(durations),
        }
    sources = Counter(row["vision_source"] for row in rows if row["vision_source"])
    return {
        "day": day.isoformat(),
        "total": total,
        "completed": status.get("completed", 0),
        "failed": status.get("failed", 0),
        "completion_rate": round(status.get("completed", 0) / total, 4) if total else None,
        "failure_rate": round(status.get("failed", 0) / total, 4) if total else None,
        "by_category": dict(Counter(row["middle"] for row in rows if row["middle"])),
        "by_district": dict(Counter(district.get(row["user_id"]) or "unknown" for row in rows)),
        "failure_reasons": dict(Counter(row["error_code"] for row in rows if row["error_code"])),
        "stage_latency": latencies,
        "model_calls": sources.get("model", 0),
        "vision_cache_hits": sources.get("cache", 0),
        "hint_only": sources.get("hint", 0),
    }


def run_day(day: date) -> dict[str, Any]:
    figures = compute(day)
    with db.transaction() as conn:
        db.upsert(
            conn,
            daily_analytics,
            {"day": day, "figures": figures, "computed_at": db.now()},
            keys=["day"],
            update=["figures", "computed_at"],
        )
    return figures


def days(first: date, last: date) -> list[dict[str, Any]]:
    """The stored rows from `first` to `last` inclusive, oldest first."""
    with db.engine().connect() as conn:
        rows = conn.execute(
            select(daily_analytics.c.figures)
            .where(daily_analytics.c.day >= first, daily_analytics.c.day <= last)
            .order_by(daily_analytics.c.day)
        ).scalars()
        return list(rows)

"""Batch functions: PingSource schedules (Asia/Seoul) through the Broker, each safe to repeat.

A redelivered or repeated ping for the same period leaves the same state: analytics replaces
its day's row, the report overwrites its day's page, cleanups act only on what is left.
Operators read the reports through an admin-only endpoint (functions/ops.py).
"""

from __future__ import annotations

from datetime import date, timedelta

from shared.core.errors import log_event
from shared.core.registry import BATCH, Delivery, Resources, cron
from shared.core.settings import settings
from shared.core.times import parse_rfc3339
from shared.ops import analytics, cleanup, knowledge, reports
from shared.waste import retention

ONCE_A_DAY = Delivery(retry=3, backoff_delay="PT1M", timeout="PT5M")


def _period(cloud_event) -> date:
    """The Korean day a ping is about: the day before it fired, or `data.day` for backfills."""
    requested = (cloud_event.data or {}).get("day")
    if requested:
        return date.fromisoformat(requested)
    return analytics.previous_kst_day(parse_rfc3339(cloud_event["time"]))


@cron("10 0 * * *", task="analytics.daily", scaling=BATCH, delivery=ONCE_A_DAY, timeout_seconds=300)
def analytics_daily(cloud_event):
    """Aggregate yesterday's analyses (KST) into its daily row, replacing any earlier run."""
    figures = analytics.run_day(_period(cloud_event))
    log_event("info", "analytics_daily", day=figures["day"], total=figures["total"])


@cron(
    "30 0 * * *",
    task="report.generate",
    scaling=BATCH,
    delivery=ONCE_A_DAY,
    uses=("db", "cache", "storage"),
    timeout_seconds=300,
)
def report_generate(cloud_event):
    """Render the 7- and 30-day report with charts into object storage."""
    key = reports.generate(_period(cloud_event))
    log_event("info", "report_generated", key=key)


@cron("15 * * * *", task="cleanup.cache", scaling=BATCH, timeout_seconds=300)
def cleanup_cache(cloud_event):
    """Remove cache keys whose rows are gone and rate-limit buckets that lost their TTL."""
    log_event("info", "cleanup_cache", **cleanup.cache_keys())


@cron(
    "0 4 * * *",
    task="cleanup.images",
    scaling=BATCH,
    delivery=ONCE_A_DAY,
    uses=("db", "cache", "storage"),
    timeout_seconds=300,
)
def cleanup_images(cloud_event):
    """Delete images past retention, uploads never completed within an hour, and stored images
    no job accounts for."""
    keep_for = timedelta(days=settings().image_retention_days)
    done = retention.images(keep_for)
    log_event("info", "cleanup_images", **done, orphaned=retention.orphaned_images())


@cron("*/5 * * * *", task="jobs.sweep", scaling=BATCH, timeout_seconds=120)
def jobs_sweep(cloud_event):
    """Fail jobs stuck in queued or processing past their deadline, so nobody waits forever."""
    log_event("info", "jobs_sweep", timed_out=len(retention.sweep()))


@cron(
    "40 4 * * *",
    task="datasets.import",
    scaling=BATCH,
    resources=Resources(memory="256Mi", memory_limit="512Mi"),
    uses=("db", "kakao", "storage"),
    timeout_seconds=540,  # Knative allows 600 s a request; geocoding resumes next run
)
def datasets_import(cloud_event):
    """Import what changed in the datasets folder (`data.force`: everything), and geocode the
    street bins still without coordinates: a new edition is an event, not a release."""
    force = bool((cloud_event.data or {}).get("force"))
    for report in knowledge.run(only_if_changed=not force):
        log_event("info", "dataset_import_report", **knowledge.counts(report))

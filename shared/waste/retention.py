"""How long jobs and their images live: stuck jobs ended, old and abandoned images deleted.

Every function here is safe to run twice for the same period: it acts on what is still there
and marks what it did. None of them touches a job that is still running (queued or
processing): those are the sweep's, and the sweep only ends them after their deadline.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from shared.core import db, storage
from shared.core.batching import chunked
from shared.waste import jobs, progress

ABANDONED_AFTER = timedelta(hours=1)
BATCH = 500


def sweep(deadline: timedelta = progress.DEADLINE) -> list[str]:
    """Fail jobs stuck in queued or processing beyond the deadline with TIMED_OUT."""
    stuck = jobs.stuck(deadline)
    for job_id in stuck:
        jobs.fail(job_id, "TIMED_OUT", "the analysis took too long and was stopped; try again")
    return stuck


def _drop_images(rows: list[Any]) -> None:
    storage.delete([key for row in rows for key in jobs.image_keys(row.image_key)])


def images(retention: timedelta) -> dict[str, int]:
    """Delete images of finished jobs past retention, and uploads never completed in an hour."""
    now = db.now()
    j = jobs.jobs
    with db.engine().connect() as conn:
        expired = conn.execute(
            select(j.c.id, j.c.image_key)
            .where(
                j.c.status.in_(("completed", "failed")),
                j.c.image_deleted_at.is_(None),
                j.c.created_at < now - retention,
            )
            .limit(BATCH)
        ).all()
        abandoned = conn.execute(
            select(j.c.id, j.c.image_key)
            .where(j.c.status == "awaiting_upload", j.c.created_at < now - ABANDONED_AFTER)
            .limit(BATCH)
        ).all()
    _drop_images(expired)
    _drop_images(abandoned)
    with db.transaction() as conn:
        if expired:
            conn.execute(
                update(j).where(j.c.id.in_([r.id for r in expired])).values(image_deleted_at=now)
            )
        if abandoned:
            conn.execute(
                update(j)
                .where(j.c.id.in_([r.id for r in abandoned]), j.c.status == "awaiting_upload")
                .values(
                    status="failed",
                    error_code="UPLOAD_EXPIRED",
                    error_message="the image was never uploaded",
                    image_deleted_at=now,
                    updated_at=now,
                )
            )
    # After the rows say so, not before: a read in between would cache the old view again.
    jobs.forget([r.id for r in expired])  # cached results must stop offering the image
    jobs.republish([r.id for r in abandoned])  # pollers and streams learn they failed
    return {"expired": len(expired), "abandoned": len(abandoned)}


def orphaned_images() -> int:
    """Delete stored images no row accounts for: their job is gone (an upload that landed while
    its account was being deleted, after the images were listed) or says the image was deleted
    (a delete that once failed). Safe against uploads in flight: a job's row is committed before
    its upload form is handed out, so a live upload always has a row that keeps its image."""
    j = jobs.jobs
    deleted = 0
    keys = storage.list_keys(jobs.IMAGE_PREFIX)
    for some in chunked(keys, BATCH):
        chunk = {key: jobs.image_job(key) for key in some}
        with db.engine().connect() as conn:
            kept = set(
                conn.execute(
                    select(j.c.id).where(
                        j.c.id.in_(list(chunk.values())), j.c.image_deleted_at.is_(None)
                    )
                ).scalars()
            )
        orphans = [key for key, job_id in chunk.items() if job_id not in kept]
        storage.delete(orphans)
        deleted += len(orphans)
    return deleted

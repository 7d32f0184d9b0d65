"""Analysis jobs: from the upload form to the saved result, with progress that never goes back.

The database row is the record. Each stage moves it forward with a conditional update
(`progress < new`), so a late or replayed event cannot move a job backwards; the cache holds
the row's status view for the pollers, written only after the database took the step. A job
that sits queued or processing past its deadline is failed with TIMED_OUT when next read
(and by the sweep), so nobody waits forever.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    update,
)

from shared.core import cache, db, idempotency, mirror, telemetry
from shared.core.batching import chunked
from shared.core.errors import ApiError, not_found
from shared.core.times import rfc3339
from shared.waste import progress

MAX_BYTES = 10 * 1024 * 1024
CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic")
UPLOAD_TTL = 600  # seconds the presigned form stays valid
RESULT_TTL = 7 * 24 * 3600
STATUS_TTL = 24 * 3600

# stage -> (status, progress); progress only ever grows.
STAGES = {
    "upload": ("awaiting_upload", 0),
    "queued": ("queued", 10),
    "analyze": ("processing", 25),
    "classify": ("processing", 50),
    "feedback": ("processing", 75),
    "save": ("processing", 90),
    "done": ("completed", 100),
}

jobs = Table(
    "jobs",
    db.metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("stage", String(20), nullable=False),
    Column("progress", Integer, nullable=False),
    Column("content_type", String(40), nullable=False),
    Column("content_length", Integer, nullable=False),
    Column("hint", String(100)),
    Column("image_key", String(200), nullable=False),
    Column("image_sha256", String(64)),
    Column("vision_source", String(10)),  # model, cache or hint: what analytics counts
    Column("error_code", String(40)),
    Column("error_message", Text),
    Column("created_at", db.UtcDateTime, nullable=False),
    Column("updated_at", db.UtcDateTime, nullable=False),
    Column("queued_at", db.UtcDateTime),
    Column("completed_at", db.UtcDateTime),
    Column("image_deleted_at", db.UtcDateTime),  # retention or abandonment removed it
    Column("model_tokens", Integer, nullable=False, server_default="0"),  # what its calls cost
    Index("ix_jobs_user_id_queued_at", "user_id", "queued_at", "id"),  # history's keyset
    Index("ix_jobs_status_updated_at", "status", "updated_at"),  # the sweep
    Index("ix_jobs_created_at", "created_at"),  # abandoned uploads
)

# When each job reached each stage: the stage latencies analytics reports.
job_stages = Table(
    "job_stages",
    db.metadata,
    Column("job_id", String(36), ForeignKey(jobs.c.id, ondelete="CASCADE"), primary_key=True),
    Column("stage", String(20), primary_key=True),
    Column("at", db.UtcDateTime, nullable=False),
)

results = Table(
    "results",
    db.metadata,
    Column("job_id", String(36), ForeignKey(jobs.c.id, ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("guide_id", String(40), nullable=False),
    Column("item_name", String(100), nullable=False),
    Column("major", String(40), nullable=False),
    Column("middle", String(40), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("body", JSON, nullable=False),
    Column("completed_at", db.UtcDateTime, nullable=False),
    Index("ix_results_user_id", "user_id"),
)


# ---- creating and completing uploads ------------------------------------------------------


def check_upload(content_type: str, content_length: int) -> None:
    if content_type not in CONTENT_TYPES:
        raise ApiError(
            415, "UNSUPPORTED_MEDIA_TYPE", f"content_type must be one of {', '.join(CONTENT_TYPES)}"
        )
    if content_length > MAX_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"images are at most {MAX_BYTES} bytes")


IMAGE_PREFIX = "uploads/"


def image_key(user_id: str, job_id: str) -> str:
    """Where a job's image lives: under its user, so deleting a user is one prefix."""
    return f"{IMAGE_PREFIX}{user_id}/{job_id}"


# The analysed copy's suffix. The upload form writes `image_key`; at upload-complete the checked
# bytes are copied beside it and the job points at the copy: no form can write that key, so
# what was analysed is what is stored and served, whatever is uploaded through the form later.
ANALYSED = ".analysed"


def analysed_key(key: str) -> str:
    return key.removesuffix(ANALYSED) + ANALYSED


def image_keys(key: str) -> list[str]:
    """Both objects a job may have stored: the upload and its analysed copy."""
    upload = key.removesuffix(ANALYSED)
    return [upload, upload + ANALYSED]


def image_job(key: str) -> str:
    """The job an image key belongs to (upload or analysed copy): `image_key` read backwards."""
    return key.rsplit("/", 1)[-1].removesuffix(ANALYSED)


def create(user_id: str, content_type: str, content_length: int, hint: str | None) -> dict:
    check_upload(content_type, content_length)
    job_id = str(uuid.uuid4())
    now = db.now()
    row = {
        "id": job_id,
        "user_id": user_id,
        "status": "awaiting_upload",
        "stage": "upload",
        "progress": 0,
        "content_type": content_type,
        "content_length": content_length,
        "hint": (hint or "").strip() or None,
        "image_key": image_key(user_id, job_id),
        "created_at": now,
        "updated_at": now,
    }
    with db.transaction() as conn:
        conn.execute(jobs.insert().values(**row))
    _cache_status(row)
    return row


# The statements every job runs, built once with their values bound at execution: building
# and hashing a statement per call cost more CPU than running it.
_BY_ID = select(jobs).where(jobs.c.id == bindparam("job_id"))
_KEEP_ANALYSED = (
    update(jobs).where(jobs.c.id == bindparam("job_id")).values(image_key=bindparam("key"))
)
_RECORD_VISION = (
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"))
    .values(
        image_sha256=bindparam("sha256"),
        vision_source=bindparam("source"),
        model_tokens=jobs.c.model_tokens + bindparam("tokens"),
    )
)
_ADD_TOKENS = (
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"))
    .values(model_tokens=jobs.c.model_tokens + bindparam("tokens"))
)


def get(user_id: str, job_id: str) -> dict[str, Any]:
    """The caller's job; another user's job is NOT_FOUND, never FORBIDDEN."""
    with db.reading() as conn:
        row = conn.execute(_BY_ID, {"job_id": job_id}).first()
    if row is None or row.user_id != user_id:
        raise not_found("job")
    return dict(row._mapping)


def keep_analysed(job_id: str, key: str) -> None:
    """The job's image is now its analysed copy (`analysed_key`)."""
    with db.transaction() as conn:
        conn.execute(_KEEP_ANALYSED, {"job_id": job_id, "key": key})


def check_uploaded(job: dict[str, Any], stored: dict[str, Any] | None) -> None:
    """The object must be there, of the declared type, and no larger than declared."""
    if stored is None:
        raise ApiError(409, "UPLOAD_MISSING", "the image is not in storage yet; upload it first")
    if stored["content_type"] and stored["content_type"] != job["content_type"]:
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"the upload is {stored['content_type']}, not {job['content_type']}",
        )
    if stored["size"] > job["content_length"] or stored["size"] > MAX_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", "the upload is larger than declared")


# ---- progress -----------------------------------------------------------------------------


def status_view(job: dict[str, Any]) -> dict[str, Any]:
    view = {
        "job_id": job["id"],
        "status": job["status"],
        "stage": job["stage"],
        "progress": job["progress"],
        "updated_at": rfc3339(job["updated_at"]),
    }
    if job["status"] == "failed":
        view["error"] = {"code": job["error_code"], "message": job["error_message"]}
    return view


def stats_key(user_id: str) -> str:
    return f"user:{user_id}:stats"


def rate_limit_key(user_id: str) -> str:
    return f"ratelimit:analyze:{user_id}"


def _cache_status(job: dict[str, Any], tx: cache.Pipeline | None = None) -> None:
    """The row's view to the pollers (cached) and the streams (published), and the user's
    stats stale: one transaction, one round trip (it was three). Neither happens without the
    other, so a stream never waits for a change the pollers see, and no other writer's view
    falls between them: the view cached is the last one published. Cached first: a stream
    that reads it on the message misses nothing. Queued on `tx` when the caller passes its
    own transaction, to send with what it caches too."""
    if tx is None:
        with cache.client().pipeline() as tx:
            _cache_status(job, tx)
            tx.execute()
        return
    view = status_view(job)
    key = progress.status_key(job["id"])
    cache.set_json(key, {**view, "user_id": job["user_id"]}, STATUS_TTL, tx)
    mirror.changed(key, tx)
    tx.delete(stats_key(job["user_id"]))
    progress.publish(view, tx)


def _step(conn: Any, job_id: str, stage: str, now: Any) -> dict[str, Any] | None:
    """In the caller's transaction, move a job forward to `stage` (no change if it is there or
    beyond already, or failed) and stamp the stage; the row as moved, or None when it did not
    move. The update returns the row: no second statement to read it back."""
    row = conn.execute(_step_statement(stage), {"job_id": job_id, "now": now}).first()
    if row is None:
        return None
    db.upsert(conn, job_stages, {"job_id": job_id, "stage": stage, "at": now}, ["job_id", "stage"])
    return dict(row._mapping)


@functools.cache
def _step_statement(stage: str) -> Any:
    """One statement per stage, the job and the time bound at execution: every stage of every
    job runs one, and building (and hashing) a new one cost more CPU than running it."""
    status, progress = STAGES[stage]
    now = bindparam("now")
    values: dict[str, Any] = {
        "status": status,
        "stage": stage,
        "progress": progress,
        "updated_at": now,
    }
    if stage != "upload":
        # The first stage past the upload stamps it, whichever stage wins the race.
        values["queued_at"] = func.coalesce(jobs.c.queued_at, now)
    if stage == "done":
        values["completed_at"] = now
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("job_id"), jobs.c.progress < progress)
        .where(jobs.c.status != "failed")
        .values(**values)
        .returning(*jobs.c)
    )


def _publish_move(
    job_id: str, moved: dict[str, Any] | None, tx: cache.Pipeline | None = None
) -> None:
    """After the commit: the moved row's view to the pollers. Nothing moved: a redelivery,
    maybe of a step whose view never reached the cache (Redis failed after the database took
    it). Drop the view; the next poll reads the row. Dropping, not rewriting, cannot put an
    older view over a newer one. Queued on `tx` when the caller passes one."""
    if moved is not None:
        _cache_status(moved, tx)
    elif tx is None:
        with cache.client().pipeline() as tx:
            _publish_move(job_id, None, tx)
            tx.execute()
    else:
        tx.delete(progress.status_key(job_id))
        mirror.changed(progress.status_key(job_id), tx)


def _move(job_id: str, stage: str) -> tuple[bool, dict[str, Any] | None]:
    """Move a job forward to `stage`; whether it moved, and the row as it is now, read in the
    same transaction."""
    with db.transaction() as conn:
        job = moved = _step(conn, job_id, stage, db.now())
        if moved is None:
            row = conn.execute(_BY_ID, {"job_id": job_id}).first()
            job = dict(row._mapping) if row is not None else None
    _publish_move(job_id, moved)
    return moved is not None, job


def advance(job_id: str, stage: str) -> bool:
    """Move a job forward to `stage`; False (and no change) if it is there or beyond already."""
    return _move(job_id, stage)[0]


# The job as it is, and whether a delivery was handled already: one statement, in the
# transaction of a step that did not move the job. Without a delivery `seen` is false.
_CURRENT = select(jobs, idempotency.SEEN).where(jobs.c.id == bindparam("job_id"))


def _current(
    conn: Any, job_id: str, stage: str, delivery: idempotency.Delivery | None
) -> dict[str, Any] | None:
    """The job a step did not move. A delivery this stage has handled, of a job that has moved
    past the stage since, is a duplicate: the next stage took what this one emitted. Handled
    but not moved past, its emit may have been lost (the broker down after the commit): the
    stage runs again, and re-emits the same event id."""
    event_id, consumer = delivery or (None, None)
    row = conn.execute(
        _CURRENT, {"job_id": job_id, "event_id": event_id, "consumer": consumer}
    ).first()
    if row is None:
        return None
    job = dict(row._mapping)
    if job.pop("seen") and job["progress"] > STAGES[stage][1]:
        raise idempotency.Duplicate(f"{consumer} handled {event_id}")
    return job


@contextmanager
def entering(
    job_id: str, stage: str, delivery: idempotency.Delivery | None = None
) -> Iterator[tuple[Any, dict[str, Any] | None]]:
    """The job as a pipeline stage starts on it, moved forward to `stage`, with the delivery's
    duplicate check and record, in one transaction: `with jobs.entering(...) as (conn, job):`
    reads what else the stage needs in it too. The job is None when it is gone or has failed:
    the stage has nothing to do. A duplicate raises `idempotency.Duplicate`. The move is
    pushed to the pollers and streams after the commit."""
    telemetry.annotate(job_id=job_id, stage=stage)
    with db.transaction() as conn:
        job = moved = _step(conn, job_id, stage, db.now())
        if moved is None:  # a job moved now cannot have had this delivery before
            job = _current(conn, job_id, stage, delivery)
        if job is not None and job["status"] == "failed":
            job = None
        if job is not None and delivery is not None:
            idempotency.remember(*delivery, conn)
        yield conn, job
    _publish_move(job_id, moved)


def enter(
    job_id: str, stage: str, delivery: idempotency.Delivery | None = None
) -> dict[str, Any] | None:
    """`entering` for a stage that needs nothing else read with its job."""
    with entering(job_id, stage, delivery) as (_, job):
        return job


def record_vision(job_id: str, image_sha256: str | None, source: str, tokens: int = 0) -> None:
    """What the analysis saw the image as, and what the model call cost (in one write)."""
    telemetry.count(telemetry.VISION_ANSWERS, source=source)
    with db.transaction() as conn:
        conn.execute(
            _RECORD_VISION,
            {"job_id": job_id, "sha256": image_sha256, "source": source, "tokens": tokens},
        )


def add_tokens(job_id: str, tokens: int, conn: Any = None) -> None:
    """Count what a model call for this job cost (prompt and completion tokens), in the
    caller's transaction when it passes one."""
    if not tokens:
        return
    if conn is None:
        with db.transaction() as conn:
            add_tokens(job_id, tokens, conn)
        return
    conn.execute(_ADD_TOKENS, {"job_id": job_id, "tokens": tokens})


def fail(job_id: str, code: str, message: str) -> None:
    """End a job with a reason; a completed job stays completed. Counted once, by the call
    that ended it: a redelivered failure changes nothing, the count included."""
    telemetry.annotate(failure_code=code)
    with db.transaction() as conn:
        ended = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.notin_(("completed", "failed")))
            .values(status="failed", error_code=code, error_message=message, updated_at=db.now())
        ).rowcount
        row = conn.execute(_BY_ID, {"job_id": job_id}).first()
    if ended:
        telemetry.count(telemetry.ANALYSES_FAILED, code=code)
    if row is not None:
        _cache_status(dict(row._mapping))


def status(user_id: str, job_id: str, cached: str | None = None) -> dict[str, Any]:
    """The poller's view: from the cache when it has it (`progress.cached`), else from the row
    (and cached); a job overdue on the row fails with TIMED_OUT. `cached` is the view as read
    from the cache already (at `progress.status_key`), when it was."""
    if cached is None:
        cached = cache.client().get(progress.status_key(job_id))
    view = progress.cached(user_id, job_id, cached)
    if view is not None:
        return view
    job = get(user_id, job_id)
    view = status_view(job)
    if progress.overdue(view):
        fail(job_id, "TIMED_OUT", "the analysis took too long; try again")
        return status_view(get(user_id, job_id))
    _cache_status(job)
    return view


def stuck(older_than: timedelta = progress.DEADLINE) -> list[str]:
    """Ids of jobs queued or processing without progress for longer than `older_than`."""
    cutoff = db.now() - older_than
    with db.engine().connect() as conn:
        return list(
            conn.execute(
                select(jobs.c.id).where(
                    jobs.c.status.in_(("queued", "processing")), jobs.c.updated_at < cutoff
                )
            ).scalars()
        )


# ---- results ------------------------------------------------------------------------------


def _result_key(job_id: str) -> str:
    return f"job:{job_id}:result"


# What saving reads first, the delivery's duplicate check with it; and the result kept.
_SAVING = select(jobs.c.user_id, jobs.c.image_key, jobs.c.status, idempotency.SEEN).where(
    jobs.c.id == bindparam("job_id")
)
_SAVED = select(results.c.body).where(results.c.job_id == bindparam("job_id"))


def save_result(
    job_id: str, body: dict[str, Any], delivery: idempotency.Delivery | None = None
) -> None:
    """Persist the finished result (idempotent), cache it 7 days, complete the job: the step to
    `save`, the result, the step to `done` and the delivery's record in one transaction, the
    cached result and the job's view in one cache round trip. A failed or deleted job saves
    nothing; a delivery handled before, of a completed job, raises `idempotency.Duplicate`."""
    telemetry.annotate(job_id=job_id, stage="save")
    started = db.now()
    body = {**body, "completed_at": rfc3339(started)}
    event_id, consumer = delivery or (None, None)
    with db.transaction() as conn:
        job = conn.execute(
            _SAVING, {"job_id": job_id, "event_id": event_id, "consumer": consumer}
        ).first()
        if job is None or job.status == "failed":
            return  # deleted with its user while it ran, or failed meanwhile (timed out)
        if job.seen and job.status == "completed":
            raise idempotency.Duplicate(f"{consumer} handled {event_id}")
        db.upsert(
            conn,
            results,
            {
                "job_id": job_id,
                "user_id": job.user_id,
                "guide_id": body["item"]["guide_id"],
                "item_name": body["item"]["name"],
                "major": body["category"]["major"],
                "middle": body["category"]["middle"],
                "confidence": body["confidence"],
                "body": body,
                "completed_at": started,
            },
            keys=["job_id"],
        )  # a replay keeps the first result, completed_at included
        saved = conn.execute(_SAVED, {"job_id": job_id}).scalar()
        _step(conn, job_id, "save", started)
        done = _step(conn, job_id, "done", db.now())
        if delivery is not None:
            idempotency.remember(*delivery, conn)
    cached = {**saved, "user_id": job.user_id, "image_key": job.image_key}
    with cache.client().pipeline() as tx:
        cache.set_json(_result_key(job_id), cached, RESULT_TTL, tx)
        _publish_move(job_id, done, tx)
        tx.execute()
    if done is not None:  # this call completed it: a replay is not a second analysis
        telemetry.count(
            telemetry.ANALYSES_COMPLETED, needs_confirmation=saved["needs_confirmation"]
        )


def replace_result(conn: Any, job_id: str, body: dict[str, Any]) -> None:
    """Overwrite a saved result (a user's confirmation), in the caller's transaction; history
    and stats read the same columns, so they follow."""
    conn.execute(
        update(results)
        .where(results.c.job_id == job_id)
        .values(
            guide_id=body["item"]["guide_id"],
            item_name=body["item"]["name"],
            major=body["category"]["major"],
            middle=body["category"]["middle"],
            confidence=body["confidence"],
            body=body,
        )
    )


def forget_result(job_id: str, user_id: str) -> None:
    """Drop the cached result and the user's stats after the row changed."""
    cache.client().delete(_result_key(job_id), stats_key(user_id))


def result(user_id: str, job_id: str) -> dict[str, Any] | None:
    """The finished result body plus `image_key` (None once the image is deleted), or None."""
    cached = cache.get_json(_result_key(job_id))
    if cached is not None:
        if cached.pop("user_id") != user_id:
            raise not_found("job")
        return cached
    with db.engine().connect() as conn:
        row = conn.execute(
            select(results.c.body, results.c.user_id, jobs.c.image_key, jobs.c.image_deleted_at)
            .join(jobs, jobs.c.id == results.c.job_id)
            .where(results.c.job_id == job_id)
        ).first()
    if row is None:
        return None
    if row.user_id != user_id:
        raise not_found("job")
    body = {**row.body, "image_key": None if row.image_deleted_at else row.image_key}
    cache.set_json(_result_key(job_id), {**body, "user_id": row.user_id}, RESULT_TTL)
    return body


def republish(job_ids: list[str]) -> None:
    """Cache and publish the views of jobs a bulk update changed (pollers and streams)."""
    for chunk in chunked(job_ids, 500):
        with db.engine().connect() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.id.in_(chunk))).all()
        for row in rows:
            _cache_status(dict(row._mapping))


def forget(job_ids: list[str]) -> None:
    """Drop the cached status and result of these jobs (their rows are going away)."""
    keys = [key for job_id in job_ids for key in (progress.status_key(job_id), _result_key(job_id))]
    for chunk in chunked(keys, 500):
        cache.client().delete(*chunk)


# ---- what other domains ask of jobs ------------------------------------------------------


def forget_user(user_id: str) -> None:
    """Delete the user's images and cached views before the account goes (its rows follow the
    account by cascade). S3 failing raises, so the account stays whole for the retry."""
    with db.reading() as conn:
        job_ids = list(conn.execute(select(jobs.c.id).where(jobs.c.user_id == user_id)).scalars())
    from shared.core import storage  # only account deletion needs storage here

    storage.delete(storage.list_keys(image_key(user_id, "")))
    forget(job_ids)
    cache.client().delete(stats_key(user_id), rate_limit_key(user_id))


def queued_between(start: Any, end: Any) -> list[dict[str, Any]]:
    """Every job queued in [start, end): its outcome, its answer's category, its user, and when
    it first reached each stage; the raw figures of a day for ops.analytics."""
    with db.reading() as conn:
        rows = conn.execute(
            select(
                jobs.c.id,
                jobs.c.user_id,
                jobs.c.status,
                jobs.c.error_code,
                jobs.c.vision_source,
                jobs.c.queued_at,
                results.c.middle,
            )
            .select_from(jobs.outerjoin(results, results.c.job_id == jobs.c.id))
            .where(jobs.c.queued_at >= start, jobs.c.queued_at < end)
        ).all()
        # queued_at is the queue's start even when a stage won the race with upload-complete
        found = {row.id: {**row._asdict(), "stages": {"queued": row.queued_at}} for row in rows}
        ids = list(found)
        for chunk in chunked(ids, 500):
            for job_id, stage, at in conn.execute(
                select(job_stages.c.job_id, job_stages.c.stage, job_stages.c.at).where(
                    job_stages.c.job_id.in_(chunk)
                )
            ):
                found[job_id]["stages"].setdefault(stage, at)
    return list(found.values())


def existing(job_ids: list[str]) -> set[str]:
    """Which of these jobs still have a row: cache keys of the others are orphans."""
    with db.reading() as conn:
        return set(conn.execute(select(jobs.c.id).where(jobs.c.id.in_(job_ids))).scalars())

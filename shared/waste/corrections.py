"""Corrections that stick: a user says which guide their item really is.

Confirming makes the job's result that guide, with its official steps, and records what was
detected, what growbin proposed and what the user chose. The same user's same photo (by the
stored image's hash) gets the chosen guide next time, and operators read the most frequent
(proposed, chosen) pairs to turn them into aliases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Table, bindparam, func, select

from shared.core import db, telemetry
from shared.core.errors import conflict, validation_failed
from shared.waste import answers, jobs, rules

corrections = Table(
    "corrections",
    db.metadata,
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("image_sha256", String(64)),
    Column("detected_name", String(100), nullable=False),
    Column("proposed_guide_id", String(40), nullable=False),
    Column("chosen_guide_id", String(40), nullable=False),
    Column("created_at", db.UtcDateTime, nullable=False),
    Index("corrections_by_image", "user_id", "image_sha256"),
)


def confirm(user_id: str, job_id: str, guide_id: str) -> dict[str, Any]:
    """Make the job's answer `guide_id` (the result, with its `image_key`); the same choice
    again changes nothing."""
    job = jobs.get(user_id, job_id)  # another user's job is NOT_FOUND
    if job["status"] != "completed":
        raise conflict("JOB_NOT_COMPLETED", "only a completed analysis can be confirmed")
    guide = rules.guide(guide_id)
    if guide is None:
        raise validation_failed({"guide_id": "no guide in the item dictionary has this id"})
    current = jobs.result(user_id, job_id)
    if current is None:  # completed without a result row: deleted while we looked
        raise conflict("JOB_NOT_COMPLETED", "this analysis has no result to confirm")
    chosen_before = current.get("source", {}).get("chosen_by") == "user"
    if chosen_before and current["item"]["guide_id"] == guide_id:
        return current
    image_key = current.pop("image_key", None)
    proposed = _proposed(job_id) or current["item"]["guide_id"]
    detected = current.get("detected_name") or job["hint"] or current["item"]["name"]
    parts = answers.for_guide(guide)
    body = {
        **current,
        **parts,
        "confidence": 1.0,
        "needs_confirmation": False,
        "feedback": answers.sentence(guide["name"], parts["category"], parts["disposal_steps"]),
        "source": {**parts["source"], "chosen_by": "user"},
    }
    body.pop("candidates", None)
    with db.transaction() as conn:
        db.upsert(
            conn,
            corrections,
            {
                "job_id": job_id,
                "user_id": user_id,
                "image_sha256": job["image_sha256"],
                "detected_name": detected[:100],
                "proposed_guide_id": proposed,
                "chosen_guide_id": guide_id,
                "created_at": db.now(),
            },
            keys=["job_id"],
            update=["chosen_guide_id", "created_at"],
        )
        jobs.replace_result(conn, job_id, body)
    jobs.forget_result(job_id, user_id)
    telemetry.count(telemetry.CORRECTIONS)
    return {**body, "image_key": image_key}


def _proposed(job_id: str) -> str | None:
    """What growbin proposed before the user's first choice (a second choice keeps it)."""
    with db.reading() as conn:
        return conn.execute(
            select(corrections.c.proposed_guide_id).where(corrections.c.job_id == job_id)
        ).scalar()


# Asked by every classification: one statement, its values bound at execution.
_REMEMBERED = (
    select(corrections.c.chosen_guide_id)
    .where(
        corrections.c.user_id == bindparam("user_id"),
        corrections.c.image_sha256 == bindparam("sha256"),
    )
    .order_by(corrections.c.created_at.desc())
    .limit(1)
)


def remembered(user_id: str, image_sha256: str | None, conn: Any = None) -> str | None:
    """The guide this user last chose for this very photo, if they ever corrected it; read on
    the caller's connection when it passes one."""
    if not image_sha256:
        return None
    if conn is None:
        with db.reading() as conn:
            return remembered(user_id, image_sha256, conn)
    return conn.execute(_REMEMBERED, {"user_id": user_id, "sha256": image_sha256}).scalar()


def frequent(since: datetime | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The most frequent (detected, proposed, chosen) corrections where the user changed the
    answer: each a candidate alias for the search."""
    count = func.count().label("count")
    query = (
        select(
            corrections.c.detected_name,
            corrections.c.proposed_guide_id,
            corrections.c.chosen_guide_id,
            count,
        )
        .where(corrections.c.proposed_guide_id != corrections.c.chosen_guide_id)
        .group_by(
            corrections.c.detected_name,
            corrections.c.proposed_guide_id,
            corrections.c.chosen_guide_id,
        )
        .order_by(count.desc(), corrections.c.detected_name)
        .limit(limit)
    )
    if since is not None:
        query = query.where(corrections.c.created_at >= since)
    with db.reading() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "detected_name": row.detected_name,
            "proposed": _named(row.proposed_guide_id),
            "chosen": _named(row.chosen_guide_id),
            "count": row.count,
        }
        for row in rows
    ]


def _named(guide_id: str) -> dict[str, str]:
    guide = rules.guide(guide_id)
    return {
        "guide_id": guide_id,
        "name": guide["name"] if guide else "(no longer in the dictionary)",
    }

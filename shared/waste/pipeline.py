"""The analysis pipeline's four stages, as plain functions over the events' data.

    uploaded -> analyze -> analyzed -> classify -> classified -> feedback -> answered -> save

Each stage takes the previous event's data and returns the next event's data, or None when the
job has ended (failed, deleted). Stages are safe to run twice: progress only moves forward,
the vision answer is cached by image hash, and the result is upserted. A failure the stage
understands (the model is rate limited, the image unreadable, nothing in the dictionary
matches) fails the job with its code; anything else raises, so the broker retries it.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from sqlalchemy import JSON, Column, String, Table, select

from shared.core import db, events, storage
from shared.core.errors import ApiError
from shared.core.settings import settings
from shared.waste import ai, images, jobs, rules

# The event types that connect the stages; each is declared as a Trigger filter next to the
# function that consumes it.
UPLOADED = "kr.growbin.waste.uploaded"
ANALYZED = "kr.growbin.waste.analyzed"
CLASSIFIED = "kr.growbin.waste.classified"
ANSWERED = "kr.growbin.waste.answered"

ALTERNATIVES = 3

vision_cache = Table(
    "vision_cache",
    db.metadata,
    Column("image_sha256", String(64), primary_key=True),
    Column("model", String(100), primary_key=True),
    Column("description", JSON, nullable=False),
    Column("created_at", db.UtcDateTime, nullable=False),
)


def submit(job: dict[str, Any]) -> None:
    """Queue an uploaded job: the image must be there as declared. Submitting again changes
    nothing: the uploaded event has one id per job, so one analysis runs."""
    if job["status"] == "failed" and job["queued_at"] is None:
        raise ApiError(409, "UPLOAD_EXPIRED", "this upload expired; start a new analysis")
    if job["status"] != "awaiting_upload":
        return
    jobs.check_uploaded(job, storage.head(job["image_key"]))
    events.emit(
        events.make(
            UPLOADED,
            {"job_id": job["id"]},
            subject=job["id"],
            event_id=jobs.upload_event_id(job["id"]),
        )
    )
    jobs.advance(job["id"], "queued")


def _live_job(job_id: str) -> dict[str, Any] | None:
    with db.engine().connect() as conn:
        row = conn.execute(select(jobs.jobs).where(jobs.jobs.c.id == job_id)).first()
    if row is None or row.status == "failed":
        return None
    return dict(row._mapping)


# ---- analyze ------------------------------------------------------------------------------


def _cached_description(sha256: str, model: str) -> dict[str, Any] | None:
    with db.engine().connect() as conn:
        row = conn.execute(
            select(vision_cache.c.description).where(
                vision_cache.c.image_sha256 == sha256, vision_cache.c.model == model
            )
        ).first()
    return row.description if row else None


def _remember_description(sha256: str, model: str, description: dict[str, Any]) -> None:
    with db.transaction() as conn:
        db.upsert(
            conn,
            vision_cache,
            {
                "image_sha256": sha256,
                "model": model,
                "description": description,
                "created_at": db.now(),
            },
            keys=["image_sha256", "model"],
        )


def analyze(data: dict[str, Any]) -> dict[str, Any] | None:
    """What the item is: from the vision model (cached by the stored image's hash, before any
    conversion), or the user's hint."""
    job = _live_job(data["job_id"])
    if job is None:
        return None
    jobs.advance(job["id"], "analyze")
    if ai.configured():
        image = storage.read(job["image_key"])
        sha256 = hashlib.sha256(image).hexdigest()
        model = settings().openai_model
        description = _cached_description(sha256, model)
        source = "cache"
        if description is None:
            try:
                sent, content_type = images.for_vision(image)
                description = ai.describe(sent, content_type, job["hint"])
            except images.UnreadableImage as exc:
                jobs.fail(job["id"], "IMAGE_UNREADABLE", f"the photo could not be read: {exc}")
                return None
            except ai.ModelError as exc:
                jobs.fail(job["id"], exc.code, exc.message)
                return None
            _remember_description(sha256, model, description)
            source = "model"
        jobs.record_vision(job["id"], sha256, source)
    elif job["hint"]:
        description = {
            "name": job["hint"],
            "material": None,
            "category": None,
            "tags": [],
            "confidence": None,
        }
        source = "hint"
        jobs.record_vision(job["id"], None, source)
    else:
        jobs.fail(
            job["id"],
            "VISION_UNAVAILABLE",
            "no vision model is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for "
            'an OpenAI-compatible server), or send a hint such as "페트병" with analyze',
        )
        return None
    return {"job_id": job["id"], "description": description, "source": source}


# ---- classify -----------------------------------------------------------------------------


def classify(data: dict[str, Any]) -> dict[str, Any] | None:
    """Ground the description in the official dictionary: a real guide id, never an invention."""
    job = _live_job(data["job_id"])
    if job is None:
        return None
    jobs.advance(job["id"], "classify")
    description = data["description"]
    queries = [description["name"], job["hint"] or ""]
    matches: list[dict[str, Any]] = []
    for query in filter(None, queries):
        matches = rules.search(query, limit=ALTERNATIVES + 1)
        if matches:
            break
    if not matches:
        jobs.fail(
            job["id"],
            "ITEM_NOT_RECOGNIZED",
            f"'{description['name']}' matches nothing in the official item dictionary; "
            "try again with a hint such as the item's name",
        )
        return None
    best, *others = matches
    confidence = best["score"]
    if description.get("confidence") is not None:
        confidence = round(confidence * max(0.0, min(1.0, description["confidence"])), 3)
    return {
        "job_id": job["id"],
        "guide_id": best["guide_id"],
        "confidence": confidence,
        "alternatives": [
            {"name": m["name"], "guide_id": m["guide_id"], "confidence": m["score"]} for m in others
        ],
        "situation_tags": description.get("tags", []),
        "detected_name": description["name"],
    }


# ---- feedback -----------------------------------------------------------------------------


def _template(name: str, category: dict[str, str], steps: list[str]) -> str:
    first = steps[0] if steps else "지자체 안내에 따라 배출해요."
    return f"{name}은(는) '{category['middle']}'(으)로 분리배출해요. {first}"


def feedback(data: dict[str, Any]) -> dict[str, Any] | None:
    """The answer: the guide's official steps and cautions, phrased for the user."""
    job = _live_job(data["job_id"])
    if job is None:
        return None
    jobs.advance(job["id"], "feedback")
    guide = rules.guide(data["guide_id"])
    category = rules.category(guide)
    steps, cautions = guide["dischargeMethods"], guide["notes"]
    text = _template(guide["name"], category, steps)
    if ai.configured():
        # On a model failure the template says the same, less warmly: the answer must not wait.
        with contextlib.suppress(ai.ModelError):
            text = ai.phrase(guide["name"], steps, cautions) or text
    return {
        "job_id": job["id"],
        "status": "completed",
        "item": {"name": guide["name"], "guide_id": guide["id"]},
        "category": category,
        "confidence": data["confidence"],
        "situation_tags": data["situation_tags"],
        "disposal_steps": steps,
        "cautions": cautions,
        "feedback": text,
        "alternatives": data["alternatives"],
        "source": rules.source(guide),
    }


# ---- save ---------------------------------------------------------------------------------


def save(data: dict[str, Any]) -> None:
    """The database is the record; the cache holds it 7 days; history and stats see it."""
    job = _live_job(data["job_id"])
    if job is None:
        return
    jobs.advance(job["id"], "save")
    jobs.save_result(job["id"], data)


# What each stage was doing, in the words the app shows: the error itself (hosts, buckets,
# keys, stack details) stays with the operators, in the dead letter and the logs.
STAGE_STEPS = {
    UPLOADED: "reading the photo",
    ANALYZED: "identifying the item",
    CLASSIFIED: "writing the disposal guide",
    ANSWERED: "saving the result",
}


def dead_lettered(cloud_event: Any, error: str) -> None:
    """A stage gave up after its retries: the job fails now, with the step, not at the sweep.
    The stages declare this as their `on_dead_letter`."""
    event_type, data = cloud_event["type"], cloud_event.data
    if event_type in STAGE_STEPS and isinstance(data, dict) and data.get("job_id"):
        jobs.fail(
            str(data["job_id"]),
            "PROCESSING_FAILED",
            f"the analysis failed while {STAGE_STEPS[event_type]}, after retries; try again",
        )

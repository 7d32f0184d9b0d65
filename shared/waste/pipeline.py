"""The analysis pipeline's four stages, as plain functions over its messages (messages.py).

    Uploaded -> analyze -> Analyzed -> classify -> Classified -> feedback -> Answered -> save

Each stage takes the previous stage's message and returns the next one, or None when the job
has ended (failed, deleted). Stages are safe to run twice: progress only moves forward,
the vision answer is cached by image hash, and the result is upserted. A failure the stage
understands (the model is rate limited, the image unreadable, nothing in the dictionary
matches) fails the job with its code; anything else raises, so the broker retries it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from typing import Any

from sqlalchemy import JSON, Column, String, Table, select

from shared.core import db, storage
from shared.core.errors import ApiError
from shared.core.settings import settings
from shared.waste import ai, images, jobs, messages, rules
from shared.waste.messages import Analyzed, Answered, Classified, Uploaded

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
    messages.emit(Uploaded(job["id"]), cause=job["id"])
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


def analyze(uploaded: Uploaded) -> Analyzed | None:
    """What the item is: from the vision model (cached by the stored image's hash, before any
    conversion), or the user's hint."""
    job = _live_job(uploaded.job_id)
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
    return Analyzed(job["id"], description, source)


# ---- classify -----------------------------------------------------------------------------


def classify(analyzed: Analyzed) -> Classified | None:
    """Ground the description in the official dictionary: a real guide id, never an invention."""
    job = _live_job(analyzed.job_id)
    if job is None:
        return None
    jobs.advance(job["id"], "classify")
    description = analyzed.description
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
    return Classified(
        job_id=job["id"],
        guide_id=best["guide_id"],
        confidence=confidence,
        alternatives=[
            {"name": m["name"], "guide_id": m["guide_id"], "confidence": m["score"]} for m in others
        ],
        situation_tags=description.get("tags", []),
        detected_name=description["name"],
    )


# ---- feedback -----------------------------------------------------------------------------


def _template(name: str, category: dict[str, str], steps: list[str]) -> str:
    first = steps[0] if steps else "지자체 안내에 따라 배출해요."
    return f"{name}은(는) '{category['middle']}'(으)로 분리배출해요. {first}"


def feedback(classified: Classified) -> Answered | None:
    """The answer: the guide's official steps and cautions, phrased for the user."""
    job = _live_job(classified.job_id)
    if job is None:
        return None
    jobs.advance(job["id"], "feedback")
    guide = rules.guide(classified.guide_id)
    category = rules.category(guide)
    steps, cautions = guide["dischargeMethods"], guide["notes"]
    text = _template(guide["name"], category, steps)
    if ai.configured():
        # On a model failure the template says the same, less warmly: the answer must not wait.
        with contextlib.suppress(ai.ModelError):
            text = ai.phrase(guide["name"], steps, cautions) or text
    return Answered(
        job_id=job["id"],
        item={"name": guide["name"], "guide_id": guide["id"]},
        category=category,
        confidence=classified.confidence,
        situation_tags=classified.situation_tags,
        disposal_steps=steps,
        cautions=cautions,
        feedback=text,
        alternatives=classified.alternatives,
        source=rules.source(guide),
    )


# ---- save ---------------------------------------------------------------------------------


def save(answered: Answered) -> None:
    """The database is the record; the cache holds it 7 days; history and stats see it."""
    job = _live_job(answered.job_id)
    if job is None:
        return
    jobs.advance(job["id"], "save")
    jobs.save_result(job["id"], dataclasses.asdict(answered))


# What each stage was doing, in the words the app shows: the error itself (hosts, buckets,
# keys, stack details) stays with the operators, in the dead letter and the logs.
STAGE_STEPS = {
    Uploaded.TYPE: "reading the photo",
    Analyzed.TYPE: "identifying the item",
    Classified.TYPE: "writing the disposal guide",
    Answered.TYPE: "saving the result",
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

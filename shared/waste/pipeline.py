"""The analysis pipeline's four stages, as plain functions over its messages (messages.py).

    Uploaded -> analyze -> Analyzed -> classify -> Classified -> feedback -> Answered -> save

Each stage takes the previous stage's message (and the delivery that brought it, which the
stage deduplicates in the transaction that moves its job) and returns the next one, or None
when the job has ended (failed, deleted). Stages are safe to run twice: progress only moves
forward, the vision answer is cached by image hash, and the result is upserted. A failure the
stage understands (the model is rate limited, the image unreadable, nothing in the dictionary
matches) fails the job with its code; anything else raises, so the broker retries it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table, bindparam, select

from shared.core import db, storage, telemetry
from shared.core.errors import ApiError, log_event
from shared.core.idempotency import Delivery
from shared.core.settings import settings
from shared.waste import ai, answers, budget, corrections, images, jobs, messages, rules
from shared.waste.messages import Analyzed, Answered, Classified, Uploaded

ALTERNATIVES = 3
CANDIDATES = 5  # what the model chooses from, and the user when unsure

# The model's choice among a job's candidates, asked once per job and question: a classify
# step redelivered after a later failure (the database down while it emitted) reads the
# answer it paid for instead of asking again.
model_choices = Table(
    "model_choices",
    db.metadata,
    Column("job_id", String(36), ForeignKey(jobs.jobs.c.id, ondelete="CASCADE"), primary_key=True),
    Column("question", String(64), primary_key=True),  # sha256 of the description and candidates
    Column("guide_id", String(40)),  # None: the model said none of them fits
    Column("tokens", Integer, nullable=False),
    Column("created_at", db.UtcDateTime, nullable=False),
)

vision_cache = Table(
    "vision_cache",
    db.metadata,
    Column("image_sha256", String(64), primary_key=True),
    Column("model", String(100), primary_key=True),
    Column("description", JSON, nullable=False),
    Column("created_at", db.UtcDateTime, nullable=False),
)


def check_answerable(hint: str | None) -> None:
    """Refuse an analysis nothing could answer before it costs an upload: with no vision model
    configured, only a hint is read. 422 HINT_REQUIRED tells the app to ask for the item's name
    (the analyze stage still fails a job whose model went away after it was created)."""
    if not ai.configured() and not (hint or "").strip():
        raise ApiError(
            422,
            "HINT_REQUIRED",
            'no vision model is configured here: send a hint such as "페트병" with the photo',
            {"fields": {"hint": "required while no vision model is configured"}},
        )


def check_budget(hint: str | None) -> None:
    """Refuse an analysis that needs the model while the deployment's model budget is spent:
    503 MODEL_BUDGET_EXHAUSTED, Retry-After when the window frees up. With a hint it is
    accepted and answered from the hint alone."""
    if not ai.configured() or (hint or "").strip():
        return
    spent = budget.exhausted()
    if spent is not None:
        raise ApiError(
            503,
            budget.CODE,
            f"the model budget per {spent.window} is spent; try again later, or send a hint "
            'such as "페트병" to be answered without the model',
            {"window": spent.window},
            headers={"Retry-After": str(spent.retry_after)},
        )


def submit(job: dict[str, Any]) -> None:
    """Queue an uploaded job: the image must be there, a whole image of the declared type
    within the pixel bound (else 415 or 422 IMAGE_UNREADABLE, and the job stays awaiting its
    upload: a new upload through the same form, then upload-complete again). Submitting again
    changes nothing: the uploaded event has one id per job, so one analysis runs."""
    if job["status"] == "failed" and job["queued_at"] is None:
        raise ApiError(409, "UPLOAD_EXPIRED", "this upload expired; start a new analysis")
    if job["status"] != "awaiting_upload":
        return
    upload = jobs.image_keys(job["image_key"])[0]  # the form's object, even on a retry
    jobs.check_uploaded(job, storage.head(upload))
    image = storage.read(upload)
    try:
        images.check(image, job["content_type"])
    except images.NotDeclaredType as exc:
        message = f"the upload is not the declared type: {exc}"
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", message) from None
    except images.UnreadableImage as exc:
        message = f"the upload is not a usable image: {exc}"
        raise ApiError(422, "IMAGE_UNREADABLE", message) from None
    # The bytes just checked become the job's image under a key no upload form can write.
    analysed = jobs.analysed_key(upload)
    storage.put(analysed, image, job["content_type"])
    jobs.keep_analysed(job["id"], analysed)
    telemetry.annotate(job_id=job["id"])
    messages.emit(Uploaded(job["id"]), cause=job["id"])
    telemetry.count(telemetry.ANALYSES_STARTED)
    # The event is out: the analysis runs, and its first stage moves the job on. Failing to
    # record "queued" here (Redis or the database gone this instant) must not tell the app
    # that nothing happened: a 503 from upload-complete means the event was not sent.
    try:
        jobs.advance(job["id"], "queued")
    except Exception as exc:
        log_event("warning", "queued_not_recorded", job_id=job["id"], error=repr(exc))


# ---- analyze ------------------------------------------------------------------------------


# Asked by every analysis: one statement, its values bound at execution.
_CACHED_DESCRIPTION = select(vision_cache.c.description).where(
    vision_cache.c.image_sha256 == bindparam("sha256"), vision_cache.c.model == bindparam("model")
)


def _cached_description(sha256: str, model: str) -> dict[str, Any] | None:
    with db.reading() as conn:
        row = conn.execute(_CACHED_DESCRIPTION, {"sha256": sha256, "model": model}).first()
    return row.description if row else None


def _remember_description(conn: Any, sha256: str, model: str, description: dict[str, Any]) -> None:
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


def analyze(uploaded: Uploaded, delivery: Delivery | None = None) -> Analyzed | None:
    """What the item is: from the vision model (cached by the stored image's hash, before any
    conversion), or the user's hint (no model configured, or its budget spent: without a hint
    the job then fails with MODEL_BUDGET_EXHAUSTED). The hash is kept either way: a user's
    correction of this photo is found by it."""
    job = jobs.enter(uploaded.job_id, "analyze", delivery)
    if job is None:
        return None
    if not ai.configured() and not job["hint"]:
        jobs.fail(
            job["id"],
            "VISION_UNAVAILABLE",
            "no vision model is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for "
            'an OpenAI-compatible server), or send a hint such as "페트병" with analyze',
        )
        return None
    image = storage.read(job["image_key"])
    sha256 = hashlib.sha256(image).hexdigest()
    if not ai.configured():
        jobs.record_vision(job["id"], sha256, "hint")
        return Analyzed(job["id"], _hint_description(job["hint"]), "hint")
    model = settings().openai_model
    description = _cached_description(sha256, model)
    source, tokens = "cache", 0
    if description is None:
        try:
            sent, content_type = images.for_vision(image)
            answer = ai.describe(sent, content_type, job["hint"])
        except images.UnreadableImage as exc:
            jobs.fail(job["id"], "IMAGE_UNREADABLE", f"the photo could not be read: {exc}")
            return None
        except ai.ModelError as exc:
            if exc.code == budget.CODE and job["hint"]:  # no model to spare: the hint answers
                jobs.record_vision(job["id"], sha256, "hint")
                return Analyzed(job["id"], _hint_description(job["hint"]), "hint")
            jobs.fail(job["id"], exc.code, exc.message)
            return None
        description = answer.value
        source, tokens = "model", answer.tokens
    if source == "model":
        # Remembered in a commit of its own, before anything else can fail (the job's write
        # below included): a redelivery reads it, never pays for the same photo again.
        with db.transaction() as conn:
            _remember_description(conn, sha256, model, description)
    jobs.record_vision(job["id"], sha256, source, tokens)
    return Analyzed(job["id"], description, source)


def _hint_description(hint: str) -> dict[str, Any]:
    return {"name": hint, "material": None, "category": None, "tags": [], "confidence": None}


# ---- classify -----------------------------------------------------------------------------

# The vision prompt's condition tags that change how an item goes out, as the words people
# (and the dictionary) use for them: search reads "깨진 맥주병" as broken glass.
STATE_WORDS = {
    "깨짐": "깨진",
    "유리병_깨짐": "깨진",
    "깨진_조명기기": "깨진",
    "파손": "깨진",
    "음식물_오염": "음식물 묻은",
    "음식물_잔여물_많음": "음식물 묻은",
    "음식물과_섞임": "음식물 묻은",
    "오염된_배달용기": "음식물 묻은",
    "기름기_오염": "기름 묻은",
    "기름기_심함": "기름 묻은",
    "오염_심함": "오염된",
}


def _queries(description: dict[str, Any], hint: str | None) -> list[str]:
    """What to search for, most telling first: the state words the tags imply with the name,
    then the hint alone."""
    states = dict.fromkeys(STATE_WORDS[t] for t in description.get("tags", []) if t in STATE_WORDS)
    named = " ".join([*states, description["name"]])
    return [q for q in dict.fromkeys([named, hint or ""]) if q]


def classify(analyzed: Analyzed, delivery: Delivery | None = None) -> Classified | None:
    """Ground the description in the official dictionary: a real guide id, never an invention.
    A user's own correction of this photo wins; with a model, it picks among the dictionary's
    candidates; an answer nobody vouches for asks the user to confirm it. The correction and
    the model's stored choices are read in the transaction that moves the job."""
    with jobs.entering(analyzed.job_id, "classify", delivery) as (conn, job):
        if job is not None:
            chosen = corrections.remembered(job["user_id"], job["image_sha256"], conn)
            asked = {q: guide for q, guide in conn.execute(_ASKED, {"job_id": job["id"]})}
    if job is None:
        return None
    description = analyzed.description
    situation_tags = description.get("tags", [])
    if chosen and rules.guide(chosen):
        return Classified(
            job["id"], chosen, 1.0, description["name"], [], situation_tags, chosen_by="user"
        )
    matches: list[dict[str, Any]] = []
    for query in _queries(description, job["hint"]):
        matches = rules.search(query, limit=CANDIDATES)
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
    best, sure, chooser = matches[0], rules.confident(matches), "search"
    if analyzed.source != "hint":
        best, sure, chooser = _model_choice(job["id"], description, matches, best, sure, asked)
    confidence = best["confidence"]
    if description.get("confidence") is not None:  # the model's doubt about what it saw
        confidence = round(confidence * max(0.0, min(1.0, description["confidence"])), 3)
    others = [m for m in matches if m["guide_id"] != best["guide_id"]]
    return Classified(
        job_id=job["id"],
        guide_id=best["guide_id"],
        confidence=confidence,
        detected_name=description["name"],
        alternatives=[
            {"name": m["name"], "guide_id": m["guide_id"], "confidence": m["confidence"]}
            for m in others[:ALTERNATIVES]
        ],
        situation_tags=situation_tags,
        needs_confirmation=not sure,
        candidates=[]
        if sure
        else [{"guide_id": m["guide_id"], "confidence": m["confidence"]} for m in [best, *others]],
        chosen_by=chooser,
    )


# The choices stored for a job, by question: none but on a redelivery.
_ASKED = select(model_choices.c.question, model_choices.c.guide_id).where(
    model_choices.c.job_id == bindparam("job_id")
)


def _model_choice(
    job_id: str,
    description: dict[str, Any],
    matches: list[dict[str, Any]],
    best: dict[str, Any],
    sure: bool,
    asked: dict[str, str | None],
) -> tuple[dict[str, Any], bool, str]:
    """The model picks one of the dictionary's candidates for what it saw, or says none fits
    (then the user confirms). A failing model leaves the search's own answer and confidence.
    An answer is stored with the job (`model_choices`) before anything else can fail, so a
    redelivery does not ask again: `asked` is what is stored, by question. Returns the
    guide's match, whether it is sure, and who chose it."""
    offered = [answers.candidate(rules.guide(m["guide_id"])) for m in matches]
    shown = [description, [m["guide_id"] for m in matches]]
    question = hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()
    if question in asked:
        chosen = asked[question]
    else:
        try:
            answer = ai.choose(description, offered)
        except ai.ModelError:  # not remembered: the next try may get an answer
            return best, sure, "search"
        chosen = answer.value
        with db.transaction() as conn:  # the choice and its cost, in one commit
            db.upsert(
                conn,
                model_choices,
                {
                    "job_id": job_id,
                    "question": question,
                    "guide_id": chosen,
                    "tokens": answer.tokens,
                    "created_at": db.now(),
                },
                keys=["job_id", "question"],
            )
            jobs.add_tokens(job_id, answer.tokens, conn)
    picked = next((m for m in matches if m["guide_id"] == chosen), None)
    return (picked, True, "model") if picked else (best, False, "search")


# ---- feedback -----------------------------------------------------------------------------


def feedback(classified: Classified, delivery: Delivery | None = None) -> Answered | None:
    """The answer: the guide's official steps and cautions, phrased for the user; a question
    with the candidates when the match needs the user's confirmation."""
    job = jobs.enter(classified.job_id, "feedback", delivery)
    if job is None:
        return None
    guide = rules.guide(classified.guide_id)
    parts = answers.for_guide(guide)
    if classified.chosen_by:  # letters from before chosen_by was recorded carry none
        parts["source"] = {**parts["source"], "chosen_by": classified.chosen_by}
    steps, cautions = parts["disposal_steps"], parts["cautions"]
    if classified.needs_confirmation:
        text = answers.question(classified.detected_name or guide["name"])
    else:
        text = answers.sentence(guide["name"], parts["category"], steps)
        if ai.configured() and job["vision_source"] != "hint":
            # A job read from its hint makes no model call (the budget was spent). On a
            # model failure the template says the same, less warmly: the answer must
            # not wait.
            with contextlib.suppress(ai.ModelError):
                phrased = ai.phrase(guide["name"], steps, cautions)
                jobs.add_tokens(job["id"], phrased.tokens)
                text = phrased.value or text
    candidates = [
        answers.candidate(found, c["confidence"])
        for c in classified.candidates
        if (found := rules.guide(c["guide_id"]))
    ]
    return Answered(
        job_id=job["id"],
        **parts,
        confidence=classified.confidence,
        situation_tags=classified.situation_tags,
        feedback=text,
        alternatives=classified.alternatives,
        detected_name=classified.detected_name,
        needs_confirmation=classified.needs_confirmation,
        candidates=candidates,
    )


# ---- save ---------------------------------------------------------------------------------


def save(answered: Answered, delivery: Delivery | None = None) -> None:
    """The database is the record; the cache holds it 7 days; history and stats see it."""
    jobs.save_result(answered.job_id, dataclasses.asdict(answered), delivery)


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

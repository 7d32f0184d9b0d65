"""The analysis pipeline's messages: one frozen dataclass per event type, built and emitted here.

    Uploaded -> image_analyze -> Analyzed -> classification_identify -> Classified
      -> feedback_generate -> Answered -> result_save

An event's data is its message's fields as JSON (`asdict`); `parse` reads them back, ignoring
fields it does not know, so an event recorded by an older release (a dead letter) still
replays. Every id is derived the same way: from what caused the message (the job for
`Uploaded`, else the event the stage handled) and the stage that produced it. A redelivered
stage, or a second upload-complete, emits the same id, and the consumer's deduplication holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cloudevents.http import CloudEvent

from shared.core import events
from shared.core.idempotency import derived_id


@dataclass(frozen=True)
class Uploaded:
    """The image is stored as declared: analyze it."""

    TYPE: ClassVar[str] = "kr.growbin.waste.uploaded"
    STAGE: ClassVar[str] = "upload"
    job_id: str


@dataclass(frozen=True)
class Analyzed:
    """What the item looks like: `description` has name, material, category, tags, confidence;
    `source` is model, cache or hint."""

    TYPE: ClassVar[str] = "kr.growbin.waste.analyzed"
    STAGE: ClassVar[str] = "analyze"
    job_id: str
    description: dict[str, Any]
    source: str


@dataclass(frozen=True)
class Classified:
    """The official guide the description matches, with the runners-up. When the match is
    not confident, `needs_confirmation` and the `candidates` (guide id and confidence, best
    first) the user chooses from. `chosen_by`: "model" (it picked among the candidates),
    "search", or "user" (their earlier correction of this very photo)."""

    TYPE: ClassVar[str] = "kr.growbin.waste.classified"
    STAGE: ClassVar[str] = "classify"
    job_id: str
    guide_id: str
    confidence: float
    detected_name: str
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    situation_tags: list[str] = field(default_factory=list)
    needs_confirmation: bool = False
    candidates: list[dict[str, Any]] = field(default_factory=list)
    chosen_by: str | None = None


@dataclass(frozen=True)
class Answered:
    """The finished answer: saved as it is, it is the result body the app reads."""

    TYPE: ClassVar[str] = "kr.growbin.waste.answered"
    STAGE: ClassVar[str] = "feedback"
    job_id: str
    item: dict[str, str]
    category: dict[str, str]
    confidence: float
    disposal_steps: list[str]
    cautions: list[str]
    feedback: str
    source: dict[str, Any]
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    situation_tags: list[str] = field(default_factory=list)
    status: str = "completed"
    detected_name: str | None = None
    needs_confirmation: bool = False
    candidates: list[dict[str, Any]] = field(default_factory=list)


Message = Uploaded | Analyzed | Classified | Answered
TYPES: dict[str, type[Message]] = {m.TYPE: m for m in (Uploaded, Analyzed, Classified, Answered)}


def parse(cloud_event: CloudEvent) -> Message:
    """The message an event carries. Unknown fields are dropped; a missing one raises, so the
    broker retries and then dead-letters what no release could have sent."""
    kind = TYPES[cloud_event["type"]]
    known = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in (cloud_event.data or {}).items() if k in known})


def event(message: Message, cause: str) -> CloudEvent:
    """The CloudEvent for `message`; `cause` is the job id for `Uploaded`, else the id of the
    event the stage handled."""
    return events.make(
        message.TYPE,
        dataclasses.asdict(message),
        subject=message.job_id,
        event_id=derived_id(cause, message.STAGE),
    )


def emit(message: Message, cause: str) -> None:
    events.emit(event(message, cause))

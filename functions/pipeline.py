"""Pipeline functions: the four AI stages, each a Trigger on the previous stage's event type.

    waste.uploaded -> image_analyze -> waste.analyzed -> classification_identify
      -> waste.classified -> feedback_generate -> waste.answered -> result_save

A stage emits the next event itself (functions-framework discards return values), with an id
derived from the event it handled, so a redelivered stage re-emits the same event and the next
stage's deduplication absorbs it.
"""

from __future__ import annotations

from shared.core import events
from shared.core.idempotency import derived_id
from shared.core.registry import MODEL_BOUND, MODEL_RESOURCES, event
from shared.waste import pipeline


def _next(cloud_event, stage: str, event_type: str, data: dict | None) -> None:
    if data is not None:
        events.emit(
            events.make(
                event_type,
                data,
                subject=data["job_id"],
                event_id=derived_id(cloud_event["id"], stage),
            )
        )


@event(
    pipeline.UPLOADED,
    emits=(pipeline.ANALYZED,),
    scaling=MODEL_BOUND,
    resources=MODEL_RESOURCES,
    uses=("db", "cache", "storage", "openai"),
    timeout_seconds=90,
    on_dead_letter=pipeline.dead_lettered,
)
def image_analyze(cloud_event):
    """Describe the uploaded item with the vision model (or the user's hint)."""
    _next(cloud_event, "analyze", pipeline.ANALYZED, pipeline.analyze(cloud_event.data))


@event(pipeline.ANALYZED, emits=(pipeline.CLASSIFIED,), on_dead_letter=pipeline.dead_lettered)
def classification_identify(cloud_event):
    """Ground the description in the Ministry of Environment's item dictionary."""
    _next(cloud_event, "classify", pipeline.CLASSIFIED, pipeline.classify(cloud_event.data))


@event(
    pipeline.CLASSIFIED,
    emits=(pipeline.ANSWERED,),
    scaling=MODEL_BOUND,
    resources=MODEL_RESOURCES,
    uses=("db", "cache", "openai"),
    timeout_seconds=90,
    on_dead_letter=pipeline.dead_lettered,
)
def feedback_generate(cloud_event):
    """Phrase the guide's official steps for the user (a model if configured, else a template)."""
    _next(cloud_event, "feedback", pipeline.ANSWERED, pipeline.feedback(cloud_event.data))


@event(pipeline.ANSWERED, on_dead_letter=pipeline.dead_lettered)
def result_save(cloud_event):
    """Persist the result, cache it, complete the job."""
    pipeline.save(cloud_event.data)

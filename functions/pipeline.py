"""Pipeline functions: the four AI stages, each a Trigger on the previous stage's event type.

    waste.uploaded -> image_analyze -> waste.analyzed -> classification_identify
      -> waste.classified -> feedback_generate -> waste.answered -> result_save

A stage emits the next message itself (functions-framework discards return values), with an id
derived from the event it handled, so a redelivered stage re-emits the same event and the next
stage's deduplication absorbs it. Each stage deduplicates in the transaction that moves its
job (`jobs.enter`), not in a check and a record of its own. A stage whose retries are spent
fails its job (`pipeline.dead_lettered`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from shared.core.idempotency import Delivery
from shared.core.registry import MODEL_BOUND, MODEL_RESOURCES, event
from shared.waste import messages, pipeline
from shared.waste.messages import Analyzed, Answered, Classified, Uploaded


def _run(cloud_event, stage: Callable[[Any, Delivery], messages.Message | None], name: str) -> None:
    produced = stage(messages.parse(cloud_event), Delivery(cloud_event["id"], name))
    if produced is not None:
        messages.emit(produced, cause=cloud_event["id"])


# The three stages that call the model wait on it alike: its pool size, memory and timeout.
model_stage = functools.partial(
    event,
    scaling=MODEL_BOUND,
    resources=MODEL_RESOURCES,
    timeout_seconds=90,
    on_dead_letter=pipeline.dead_lettered,
    deduplicates=True,
)


@model_stage(Uploaded.TYPE, emits=(Analyzed.TYPE,), uses=("db", "cache", "storage", "openai"))
def image_analyze(cloud_event):
    """Describe the uploaded item with the vision model (or the user's hint)."""
    _run(cloud_event, pipeline.analyze, "image_analyze")


@model_stage(Analyzed.TYPE, emits=(Classified.TYPE,), uses=("db", "cache", "openai"))
def classification_identify(cloud_event):
    """Ground the description in the Ministry of Environment's item dictionary.

    The model picks among the dictionary's candidates: a model stage like the two around it."""
    _run(cloud_event, pipeline.classify, "classification_identify")


@model_stage(Classified.TYPE, emits=(Answered.TYPE,), uses=("db", "cache", "openai"))
def feedback_generate(cloud_event):
    """Phrase the guide's official steps for the user (a model if configured, else a template)."""
    _run(cloud_event, pipeline.feedback, "feedback_generate")


@event(Answered.TYPE, on_dead_letter=pipeline.dead_lettered, deduplicates=True)
def result_save(cloud_event):
    """Persist the result, cache it, complete the job."""
    pipeline.save(messages.parse(cloud_event), Delivery(cloud_event["id"], "result_save"))

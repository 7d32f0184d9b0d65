"""Dead letters: events a Trigger gave up on after its retries, kept to be read and replayed.

Locally the broker records them here directly. On the cluster every Trigger's deadLetterSink is
the `dead_letter_sink` Service at `/<trigger>`, which records them into the same table, so
`growbin dead-letters` lists them from anywhere that reaches the database. Once recorded, the
function whose Trigger gave up reacts as it declared (`@event(on_dead_letter=...)`): the
platform knows no domain.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import functions_framework
from cloudevents.conversion import to_json
from cloudevents.http import CloudEvent, from_json
from sqlalchemy import JSON, Column, Integer, String, Table, Text, select, update

from shared.core import db, telemetry
from shared.core.registry import REGISTRY, Function

dead_letters = Table(
    "dead_letters",
    db.metadata,
    Column("id", String(64), primary_key=True),
    Column("trigger", String(100), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("event", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_at", db.UtcDateTime, nullable=False),
    Column("replayed_at", db.UtcDateTime),
)


def record(
    trigger: str, event: CloudEvent, attempts: int, error: str, letter_id: str | None = None
) -> str:
    """Keep a dead letter; the same `letter_id` again (a letter redelivered) changes nothing."""
    letter_id = letter_id or uuid.uuid4().hex
    with db.transaction() as conn:
        db.upsert(
            conn,
            dead_letters,
            {
                "id": letter_id,
                "trigger": trigger,
                "event_id": event["id"],
                "event_type": event["type"],
                "event": json.loads(to_json(event)),
                "attempts": attempts,
                "error": error[:4000],
                "failed_at": db.now(),
            },
            keys=["id"],
        )
    telemetry.count(telemetry.DEAD_LETTERS, trigger=trigger, type=event["type"])
    function = _declared(trigger)
    if function is not None and function.on_dead_letter is not None:
        function.on_dead_letter(event, error)
    return letter_id


def _declared(trigger: str) -> Function | None:
    """The function a Trigger delivers to. The cluster's sink Service loads the declarations
    only when a letter arrives: dead letters are rare, cold starts are not."""
    if trigger not in REGISTRY:
        from functions import load_all

        load_all()
    return REGISTRY.get(trigger)


# What Knative adds to an event it dead-letters: why the last delivery failed.
ERROR_EXTENSIONS = ("knativeerrorcode", "knativeerrordata", "knativeerrordest")


@functions_framework.cloud_event
def dead_letter_sink(cloud_event: CloudEvent) -> None:
    """Record an event a Trigger gave up on, sent to `/<trigger>?attempts=<n>`.

    A redelivered dead letter changes nothing: one open letter per Trigger and event id.
    """
    from flask import request

    trigger = request.path.strip("/") or "unknown"
    attempts = request.args.get("attempts", "0")
    attributes = cloud_event.get_attributes()
    error = " ".join(f"{k}={attributes[k]}" for k in ERROR_EXTENSIONS if k in attributes)
    original = CloudEvent(
        {k: v for k, v in attributes.items() if k not in ERROR_EXTENSIONS}, cloud_event.data
    )
    with db.engine().connect() as conn:
        open_letter = conn.execute(
            select(dead_letters.c.id).where(
                dead_letters.c.trigger == trigger,
                dead_letters.c.event_id == original["id"],
                dead_letters.c.replayed_at.is_(None),
            )
        ).first()
    if open_letter is None:
        record(trigger, original, int(attempts) if attempts.isdigit() else 0, error or "failed")


def listing(include_replayed: bool = False) -> list[dict[str, Any]]:
    query = select(dead_letters).order_by(dead_letters.c.failed_at)
    if not include_replayed:
        query = query.where(dead_letters.c.replayed_at.is_(None))
    with db.engine().connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def read(letter_id: str) -> tuple[dict[str, Any], CloudEvent]:
    """A dead letter and its event, ready to send again; KeyError when there is none."""
    with db.engine().connect() as conn:
        row = conn.execute(select(dead_letters).where(dead_letters.c.id == letter_id)).first()
    if row is None:
        raise KeyError(letter_id)
    letter = dict(row._mapping)
    return letter, from_json(json.dumps(letter["event"]))


def mark_replayed(letter_id: str) -> None:
    with db.transaction() as conn:
        conn.execute(
            update(dead_letters).where(dead_letters.c.id == letter_id).values(replayed_at=db.now())
        )


def take(letter_id: str) -> tuple[dict[str, Any], CloudEvent]:
    """Mark a dead letter replayed and return it with its event, ready to send again."""
    letter, event = read(letter_id)
    mark_replayed(letter_id)
    return letter, event

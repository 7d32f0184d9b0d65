"""At-least-once delivery made harmless: remember which consumer has handled which CloudEvent.

A consumer's effects are themselves idempotent (upserts, monotonic progress, deterministic ids
for the events it emits), so the record is written after success: a crash between the effects
and the record means a redelivery redoes the same effects, never different ones.

A consumer may deduplicate in its own transactions instead (the analysis stages: the check and
the record ride in the transaction that moves the job). It is handed its `Delivery` and raises
`Duplicate` for a delivery it has handled; the registry logs and counts it as one.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Column, String, Table, bindparam, select
from sqlalchemy.engine import Connection

from shared.core import db

processed_events = Table(
    "processed_events",
    db.metadata,
    Column("event_id", String(200), primary_key=True),
    Column("consumer", String(100), primary_key=True),
    Column("processed_at", db.UtcDateTime, nullable=False, index=True),
)


# Every delivery to every consumer asks: one statement, its values bound at execution.
_SEEN = select(processed_events.c.event_id).where(
    processed_events.c.event_id == bindparam("event_id"),
    processed_events.c.consumer == bindparam("consumer"),
)


# The same check as an EXISTS column, for a consumer that asks it in a statement of its own.
SEEN = _SEEN.exists().label("seen")


class Delivery(NamedTuple):
    """Which event a consumer is handling: what its record is keyed on."""

    event_id: str
    consumer: str


class Duplicate(Exception):
    """Raised by a consumer that deduplicates itself: it has handled this delivery already."""


def seen(event_id: str, consumer: str) -> bool:
    with db.reading() as conn:
        row = conn.execute(_SEEN, {"event_id": event_id, "consumer": consumer}).first()
    return row is not None


def remember(event_id: str, consumer: str, conn: Connection | None = None) -> None:
    """Mark the event handled. A consumer whose effect is not idempotent passes the connection of
    the transaction that writes it: effect and mark commit together, and a crash between them
    cannot make a redelivery apply the effect twice."""
    if conn is None:
        with db.transaction() as conn:
            remember(event_id, consumer, conn)
        return
    db.upsert(
        conn,
        processed_events,
        {"event_id": event_id, "consumer": consumer, "processed_at": db.now()},
        keys=["event_id", "consumer"],
    )


def derived_id(event_id: str, stage: str) -> str:
    """The id of the event a stage emits for `event_id`: the same on every redelivery."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"growbin:{stage}:{event_id}"))

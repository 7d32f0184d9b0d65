"""Emitting CloudEvents: to K_SINK on the cluster (the Broker, injected by a SinkBinding), to the
local broker when running under `growbin dev`.

A `@cloud_event` function's return value is discarded by functions-framework, so a stage that
produces the next event emits it here. Emitted ids are derived from the input event's id
(`idempotency.derived_id`), so a redelivered stage re-emits the same event, not a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloudevents.http import CloudEvent

from shared.core.settings import settings

SOURCE = "/growbin"
_local_sink: Callable[[CloudEvent], None] | None = None


def use_local_sink(sink: Callable[[CloudEvent], None] | None) -> None:
    """The local broker plugs itself in here; the cluster uses K_SINK instead."""
    global _local_sink
    _local_sink = sink


def make(
    event_type: str,
    data: Any,
    *,
    source: str = SOURCE,
    event_id: str | None = None,
    subject: str | None = None,
    **extensions: str,
) -> CloudEvent:
    attributes = {"type": event_type, "source": source, **extensions}
    if event_id:
        attributes["id"] = event_id
    if subject:
        attributes["subject"] = subject
    return CloudEvent(attributes, data)


def emit(event: CloudEvent) -> None:
    sink = settings().k_sink
    if sink:
        import requests
        from cloudevents.conversion import to_binary

        headers, body = to_binary(event)
        response = requests.post(sink, headers=headers, data=body, timeout=10)
        response.raise_for_status()  # the broker did not take it: fail, so we are retried
        return
    if _local_sink is None:
        raise RuntimeError("no event sink: set K_SINK, or run the function under `growbin dev`")
    _local_sink(event)

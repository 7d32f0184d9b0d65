"""Emitting CloudEvents: to K_SINK on the cluster (the Broker's address, set in the emitters'
manifests), to the local broker when running under `growbin dev`.

A `@cloud_event` function's return value is discarded by functions-framework, so a stage that
produces the next event emits it here, to the Broker at K_SINK (decided once per process), or
else to the broker the local runtime connected. Emitted ids are derived from the input event's id
(`idempotency.derived_id`), so a redelivered stage re-emits the same event, not a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from cloudevents.http import CloudEvent

from shared.core import telemetry
from shared.core.errors import unavailable
from shared.core.settings import settings

SOURCE = "/growbin"
# (connect, answer) seconds for the Broker's ingress: a request waiting on an emit (upload-complete)
# gets its 503 within a few seconds of an outage, not after the client has given up.
SEND_TIMEOUT = (2.0, 4.0)

# Where events go: the local broker's `publish`, or `HttpSink`.
Sink = Callable[[CloudEvent], object]
_local: Sink | None = None


class HttpSink:
    """The Broker's ingress over HTTP, binary mode, as Knative expects."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, event: CloudEvent) -> None:
        import requests
        from cloudevents.conversion import to_binary

        headers, body = to_binary(event)
        # The trace context also as W3C headers: the Broker's ingress continues the trace from
        # them (eventing-rabbitmq carries it in the message and hands it to the subscriber
        # as the delivery's traceparent header).
        headers.update({k: event[k] for k in telemetry.TRACE_FIELDS if event.get(k)})
        try:
            response = requests.post(self.url, headers=headers, data=body, timeout=SEND_TIMEOUT)
        except (requests.ConnectionError, requests.Timeout):
            raise unavailable("the event broker is unavailable, try again shortly") from None
        if response.status_code >= 500:  # the ingress is up, RabbitMQ behind it is not
            raise unavailable("the event broker is unavailable, try again shortly")
        response.raise_for_status()  # the broker did not take it: fail, so we are retried


def connect(sink: Sink | None) -> None:
    """The local runtime plugs its broker in here at start (None at stop); K_SINK, when set,
    still wins, as on the cluster."""
    global _local
    _local = sink


@cache
def cluster_sink() -> HttpSink | None:
    """The Broker at K_SINK, decided once per process; None when K_SINK is not set."""
    url = settings().k_sink
    return HttpSink(url) if url else None


def sink() -> Sink:
    chosen = cluster_sink() or _local
    if chosen is None:
        raise RuntimeError("no event sink: set K_SINK, or run the function under `growbin dev`")
    return chosen


def make(
    event_type: str,
    data: Any,
    *,
    source: str = SOURCE,
    event_id: str | None = None,
    subject: str | None = None,
    **extensions: str,
) -> CloudEvent:
    # Binary mode carries the body's type in Content-Type: without it a subscriber (and the
    # SDK) cannot tell JSON from bytes. Every growbin event's data is JSON. The trace the
    # event belongs to travels in the distributed-tracing extension (traceparent, tracestate).
    attributes = {
        "type": event_type,
        "source": source,
        "datacontenttype": "application/json",
        **telemetry.carrier(),
        **extensions,
    }
    if event_id:
        attributes["id"] = event_id
    if subject:
        attributes["subject"] = subject
    return CloudEvent(attributes, data)


def emit(event: CloudEvent) -> None:
    sink()(event)

"""Traces and metrics over OTLP (http/protobuf), only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Pods scale to zero, so they push rather than wait to be scraped. With no endpoint every call
here returns at once and the OpenTelemetry packages are never imported: the API alone costs a
cold start some 70 ms, the SDK and exporter about 200 ms (README, Observability).

One analysis is one trace: the HTTP wrapper (registry.http) opens a server span, continuing a
caller's W3C `traceparent` header; `carrier()` gives the current context as the CloudEvents
distributed-tracing extension attributes (`traceparent`, `tracestate`), which events.make sets
on every event; the event wrapper (registry.event) opens each handler's span under the context
the event carries. The domain names what a span is about with `annotate` and counts with
`count` / `record`, over the metrics declared once in METRICS; the dashboard renderer reads the
Prometheus names from the same declarations.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from shared.core.settings import settings

# The CloudEvents distributed-tracing extension: the W3C Trace Context fields, same names.
TRACE_FIELDS = ("traceparent", "tracestate")
SCOPE = "growbin"
# Domain attributes on spans carry this prefix (growbin.job_id, growbin.stage, ...).
PREFIX = "growbin."
# What Prometheus appends for a UCUM unit (OTLP -> Prometheus translation); units in braces
# are annotations and add nothing.
_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}


class Metric(NamedTuple):
    """One instrument: its OTLP name, kind (counter or histogram), UCUM unit, and meaning."""

    name: str
    kind: str
    unit: str
    what: str
    attributes: tuple[str, ...] = ()

    @property
    def prometheus(self) -> str:
        """The series name the OTLP -> Prometheus translation gives it: dots become
        underscores, the unit's word is appended (not a `{...}` annotation), and a counter
        ends in `_total`; a histogram is queried as `<name>_bucket`, `_sum` and `_count`."""
        name = self.name.replace(".", "_")
        suffix = _UNIT_SUFFIX.get(self.unit, "")
        if suffix and not name.endswith(suffix):
            name = f"{name}_{suffix}"
        return f"{name}_total" if self.kind == "counter" else name

    @property
    def series(self) -> tuple[str, ...]:
        """Every Prometheus series name a query may use for this metric."""
        if self.kind == "histogram":
            return tuple(f"{self.prometheus}_{part}" for part in ("bucket", "sum", "count"))
        return (self.prometheus,)


ANALYSES_STARTED = Metric(
    "growbin.analyses.started", "counter", "{analysis}", "analyses whose photo was queued"
)
ANALYSES_COMPLETED = Metric(
    "growbin.analyses.completed",
    "counter",
    "{analysis}",
    "analyses answered; needs_confirmation says the user is asked to confirm",
    ("needs_confirmation",),
)
ANALYSES_FAILED = Metric(
    "growbin.analyses.failed", "counter", "{analysis}", "analyses failed, by code", ("code",)
)
EVENT_DURATION = Metric(
    "growbin.event.duration",
    "histogram",
    "s",
    "time an event function took per delivery (the pipeline stages among them)",
    ("function", "outcome"),
)
MODEL_CALLS = Metric(
    "growbin.model.calls", "counter", "{call}", "model calls, by outcome", ("model", "outcome")
)
MODEL_TOKENS = Metric(
    "growbin.model.tokens",
    "counter",
    "{token}",
    "tokens the model was sent (in) and answered (out)",
    ("model", "direction"),
)
MODEL_COST = Metric(
    "growbin.model.cost.usd",
    "counter",
    "{USD}",
    "estimated model cost from MODEL_PRICES",
    ("model",),
)
VISION_ANSWERS = Metric(
    "growbin.vision.answers",
    "counter",
    "{answer}",
    "what an analysis saw the photo as: model, cache (a vision-cache hit) or hint",
    ("source",),
)
CORRECTIONS = Metric(
    "growbin.corrections", "counter", "{correction}", "answers users corrected or confirmed"
)
DEAD_LETTERS = Metric(
    "growbin.dead_letters",
    "counter",
    "{event}",
    "events whose retries were spent",
    ("trigger", "type"),
)
RATE_LIMITED = Metric(
    "growbin.rate_limited", "counter", "{request}", "requests refused 429", ("function",)
)
BUDGET_REFUSALS = Metric(
    "growbin.model.budget.refusals",
    "counter",
    "{refusal}",
    "analyses or model calls refused because the model budget was spent",
    ("window",),
)
METRICS = (
    ANALYSES_STARTED,
    ANALYSES_COMPLETED,
    ANALYSES_FAILED,
    EVENT_DURATION,
    MODEL_CALLS,
    MODEL_TOKENS,
    MODEL_COST,
    VISION_ANSWERS,
    CORRECTIONS,
    DEAD_LETTERS,
    RATE_LIMITED,
    BUDGET_REFUSALS,
)


def enabled() -> bool:
    return settings().otlp_endpoint is not None


class _Sdk(NamedTuple):
    tracer: Any
    instruments: dict[str, Any]
    tracer_provider: Any
    meter_provider: Any


def service_name() -> str:
    """OTEL_SERVICE_NAME, else the Knative Service (K_SERVICE, which Knative sets), else growbin."""
    return settings().otel_service_name or os.environ.get("K_SERVICE") or "growbin"


_made: _Sdk | None = None
_making = threading.Lock()


def _sdk() -> _Sdk:
    """The providers and instruments, made once, on first use in a process that exports (after
    gunicorn forked its worker), by one thread while any others wait."""
    global _made
    if _made is None:
        with _making:
            if _made is None:
                _made = _make()
    return _made


def _make() -> _Sdk:
    """The providers and instruments. The exporters read OTEL_EXPORTER_OTLP_ENDPOINT (and
    _HEADERS, _TIMEOUT) themselves and post to its /v1/traces and /v1/metrics. Spans leave in
    batches, metrics every OTEL_METRIC_EXPORT_INTERVAL ms; both are flushed at process exit."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name()})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meter_provider.get_meter(SCOPE)
    instruments = {
        m.name: (meter.create_counter if m.kind == "counter" else meter.create_histogram)(
            m.name, unit=m.unit, description=m.what
        )
        for m in METRICS
    }
    return _Sdk(tracer_provider.get_tracer(SCOPE), instruments, tracer_provider, meter_provider)


def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


@contextmanager
def span(
    name: str,
    kind: str = "internal",
    parent: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A span around the block, current inside it (None when not exporting). `parent`: W3C
    trace context fields (an HTTP request's headers, an event's extension attributes) to
    continue; else the current span's. An exception leaving the block marks it an error."""
    if not enabled():
        yield None
        return
    from opentelemetry.trace import SpanKind

    context = _propagator().extract(parent) if parent is not None else None
    with _sdk().tracer.start_as_current_span(
        name, context=context, kind=SpanKind[kind.upper()], attributes=dict(attributes or {})
    ) as current:
        yield current


def carrier() -> dict[str, str]:
    """The current trace context as `traceparent` (and `tracestate`), for an event's extension
    attributes or a request's headers; empty when not exporting or outside any span."""
    if not enabled():
        return {}
    fields: dict[str, str] = {}
    _propagator().inject(fields)
    return fields


def annotate(**attributes: Any) -> None:
    """Say what the current span is about (job_id, stage, model, failure_code): growbin.*
    attributes. Nothing when not exporting or outside any span."""
    if not enabled():
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(PREFIX + key, value)


def count(metric: Metric, value: float = 1, **attributes: Any) -> None:
    """Add to a counter; nothing when not exporting."""
    if enabled() and value:
        _sdk().instruments[metric.name].add(value, _labels(attributes))


def record(metric: Metric, value: float, **attributes: Any) -> None:
    """Record a histogram value; nothing when not exporting."""
    if enabled():
        _sdk().instruments[metric.name].record(value, _labels(attributes))


def _labels(attributes: Mapping[str, Any]) -> dict[str, str | bool | int | float]:
    return {
        k: v if isinstance(v, str | bool | int | float) else str(v) for k, v in attributes.items()
    }


def log_ids() -> dict[str, str]:
    """The current span's trace_id and span_id (hex, as trace backends show them) for a log
    line; empty when not exporting or outside any span."""
    if not enabled():
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def flush() -> None:
    """Send what is buffered now (spans, metrics): for tests and one-shot commands."""
    if _made is not None:
        _made.tracer_provider.force_flush()
        _made.meter_provider.force_flush()


def shutdown() -> None:
    """Flush and drop the providers (the next use makes new ones): tests that change the
    endpoint call it."""
    global _made
    with _making:
        if _made is not None:
            _made.tracer_provider.shutdown()
            _made.meter_provider.shutdown()
            _made = None


def error_status() -> Any:
    """The span status of a failed request (a 5xx answer that raised nothing)."""
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR)

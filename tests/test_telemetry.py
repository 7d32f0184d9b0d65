"""Observability: one analysis is one trace over OTLP, its metrics carry their values, log lines
carry the trace, the dashboard queries only series something emits, and with no endpoint
OpenTelemetry is not even imported.

The collector here is a local HTTP server that decodes what the real OTLP/HTTP exporter posts
(ExportTraceServiceRequest, ExportMetricsServiceRequest, from opentelemetry-proto).
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import subprocess
import sys
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import error_code, login, reset_clients
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_waste import fake_model as fake_model  # a fixture, shared
from test_waste import run

from shared.core import events, telemetry
from shared.core.errors import log_event


def _value(any_value) -> Any:
    return getattr(any_value, any_value.WhichOneof("value"))


class Collector:
    """What the exporter sent: spans by id, and each metric's latest points by attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.points: dict[str, dict[tuple, Any]] = defaultdict(dict)
        self.resources: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with collector.lock:
                    if self.path == "/v1/traces":
                        collector._spans(ExportTraceServiceRequest.FromString(body))
                    elif self.path == "/v1/metrics":
                        collector._metrics(ExportMetricsServiceRequest.FromString(body))
                self.send_response(200 if self.path in ("/v1/traces", "/v1/metrics") else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _spans(self, request) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            self.resources.append(resource)
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(),
                            "kind": span.kind,
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "status": span.status.code,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                        }
                    )

    def _metrics(self, request) -> None:
        for resource_metrics in request.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        labels = tuple(sorted((a.key, _value(a.value)) for a in point.attributes))
                        if kind == "histogram":
                            value = (point.count, point.sum)
                        else:
                            value = point.as_double if point.HasField("as_double") else point.as_int
                        self.points[metric.name][labels] = value  # cumulative: the latest wins

    def value(self, metric: telemetry.Metric, **labels: Any) -> Any:
        """A metric's latest value at exactly these attributes (None if never sent)."""
        telemetry.flush()
        with self.lock:
            key = tuple(sorted(labels.items()))
            return self.points.get(metric.name, {}).get(key)

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return sorted((s for s in self.spans if s["trace_id"] == trace_id), key=_start)


def _start(span: dict[str, Any]) -> int:
    return span["start"]


@pytest.fixture
def collector(env):
    collector = Collector()
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    env.setenv("OTEL_SERVICE_NAME", "growbin-test")
    reset_clients()
    yield collector
    telemetry.shutdown()  # flushed while the collector still listens
    collector.server.shutdown()


STAGES = ("image_analyze", "classification_identify", "feedback_generate", "result_save")
UPLOAD_COMPLETE = "POST /api/v1/waste/upload-complete/{job_id}"


def test_one_analysis_is_one_trace_with_its_metrics(system, collector, fake_model):
    client = system.app.test_client()
    headers = login(client)
    job_id, result = run(client, system, headers)
    assert result.status_code == 200
    telemetry.flush()

    http = [s for s in collector.spans if s["name"] == UPLOAD_COMPLETE]
    assert len(http) == 1
    upload = http[0]
    assert upload["attributes"]["growbin.job_id"] == job_id
    assert upload["attributes"]["http.response.status_code"] == 202
    trace = collector.trace(upload["trace_id"])
    by_name = {s["name"]: s for s in trace}
    assert set(STAGES) <= set(by_name), [s["name"] for s in trace]
    ids = {s["span_id"] for s in trace}
    for span in trace:  # one tree: every span but the HTTP call has its parent in the trace
        assert span is upload or span["parent_id"] in ids, span["name"]
    stage_of = {
        "image_analyze": "analyze",
        "classification_identify": "classify",
        "feedback_generate": "feedback",
        "result_save": "save",
    }
    for name, stage in stage_of.items():
        attributes = by_name[name]["attributes"]
        assert attributes["growbin.job_id"] == job_id
        assert attributes["growbin.stage"] == stage
        assert attributes["cloudevents.event_type"].startswith("kr.growbin.waste.")
    # Each stage continues from the span that emitted its event: a chain, in order.
    chain = [upload, *(by_name[n] for n in STAGES)]
    for before, after in itertools.pairwise(chain):
        assert after["start"] >= before["start"]
    assert by_name["image_analyze"]["attributes"]["growbin.model"] == "gpt-4o"
    model_calls = [s for s in trace if s["name"].startswith("model ")]
    assert {s["name"] for s in model_calls} >= {"model describe"}
    assert all(s["attributes"]["growbin.tokens_in"] == 120 for s in model_calls)
    assert {r["service.name"] for r in collector.resources} == {"growbin-test"}

    calls = len(fake_model.requests)
    assert calls == len(model_calls) >= 2
    assert collector.value(telemetry.ANALYSES_STARTED) == 1
    assert collector.value(telemetry.ANALYSES_COMPLETED, needs_confirmation=False) == 1
    assert collector.value(telemetry.VISION_ANSWERS, source="model") == 1
    assert collector.value(telemetry.MODEL_CALLS, model="gpt-4o", outcome="ok") == calls
    tokens = telemetry.MODEL_TOKENS
    assert collector.value(tokens, model="gpt-4o", direction="in") == 120 * calls
    assert collector.value(tokens, model="gpt-4o", direction="out") == 40 * calls
    cost = collector.value(telemetry.MODEL_COST, model="gpt-4o")
    assert cost == pytest.approx(calls * (120 * 2.50 + 40 * 10.00) / 1_000_000)
    for name in STAGES:
        count, seconds = collector.value(telemetry.EVENT_DURATION, function=name, outcome="ok")
        assert count == 1 and 0 < seconds < 30

    # The same photo again: a vision-cache hit, and a trace of its own.
    second, _ = run(client, system, headers)
    assert collector.value(telemetry.VISION_ANSWERS, source="cache") == 1
    traces = {s["trace_id"] for s in collector.spans if s["name"] == UPLOAD_COMPLETE}
    assert len(traces) == 2 and second != job_id


def test_a_replayed_analysis_is_counted_once(system, collector, fake_model):
    """Every event of an analysis delivered again, under a fresh id too: nothing changes, and
    the completion, the vision answer and the failure counters say one analysis."""
    published = []
    original = system.broker.publish
    system.broker.publish = lambda e: published.append(e) or original(e)
    events.connect(system.broker.publish)
    client = system.app.test_client()
    headers = login(client)
    run(client, system, headers)
    for event in list(published):
        system.broker.publish(event)
        system.broker.publish(events.make(event["type"], event.data, subject=event["subject"]))
    assert system.broker.wait_idle(30)
    telemetry.flush()
    assert collector.value(telemetry.ANALYSES_COMPLETED, needs_confirmation=False) == 1
    assert collector.value(telemetry.VISION_ANSWERS, source="model") == 1


def test_a_failed_job_names_its_code_on_the_span_and_in_the_metric(system, collector, fake_model):
    fake_model.script.extend([("status", 429)] * 5)  # the client's retries too
    client = system.app.test_client()
    headers = login(client)
    job_id, _ = run(client, system, headers)
    status = client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()
    assert status["status"] == "failed" and status["error"]["code"] == "MODEL_RATE_LIMITED"
    telemetry.flush()
    analyze = [s for s in collector.spans if s["name"] == "image_analyze"]
    assert analyze[0]["attributes"]["growbin.failure_code"] == "MODEL_RATE_LIMITED"
    assert analyze[0]["attributes"]["growbin.job_id"] == job_id
    assert collector.value(telemetry.ANALYSES_FAILED, code="MODEL_RATE_LIMITED") == 1
    outcome = "MODEL_RATE_LIMITED"
    assert collector.value(telemetry.MODEL_CALLS, model="gpt-4o", outcome=outcome) == 1


def test_corrections_rate_limits_budget_and_dead_letters_are_counted(
    system, collector, fake_model, env
):
    from eventing import dead_letters
    from shared.core import events
    from shared.waste import budget

    client = system.app.test_client()
    headers = login(client)
    job_id, result = run(client, system, headers)
    other = result.get_json()["alternatives"][0]["guide_id"]
    confirmed = client.post(
        f"/api/v1/waste/result/{job_id}/confirm", json={"guide_id": other}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    assert collector.value(telemetry.CORRECTIONS) == 1

    env.setenv("MODEL_TOKENS_PER_MINUTE", "100")
    reset_clients()
    budget.spend(100)
    refused = client.post(
        "/api/v1/waste/analyze",
        json={"content_type": "image/jpeg", "content_length": 100},
        headers=headers,
    )
    assert refused.status_code == 503 and error_code(refused) == "MODEL_BUDGET_EXHAUSTED"
    assert collector.value(telemetry.BUDGET_REFUSALS, window="minute") == 1

    env.delenv("MODEL_TOKENS_PER_MINUTE")
    reset_clients()
    body = {"content_type": "image/jpeg", "content_length": 100, "hint": "페트병"}
    answered = [client.post("/api/v1/waste/analyze", json=body, headers=headers) for _ in range(31)]
    assert [r.status_code for r in answered] == [201] * 30 + [429]  # 30 an hour
    assert collector.value(telemetry.RATE_LIMITED, function="waste_analyze") == 1

    event = events.make("kr.growbin.test.lost", {"n": 1}, event_id="lost-1")
    dead_letters.record("image_analyze", event, 3, "boom")
    trigger, kind = "image_analyze", "kr.growbin.test.lost"
    assert collector.value(telemetry.DEAD_LETTERS, trigger=trigger, type=kind) == 1


@pytest.mark.services
def test_the_trace_crosses_the_real_rabbitmq(rabbitmq, collector, fake_model):
    """Over RabbitMQ each stage's event travels as an AMQP message, its traceparent a header:
    the stages still join the upload's trace."""
    from eventing.rabbitmq import RabbitBroker
    from knative import local

    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    rabbitmq.track(system.broker)
    try:
        assert isinstance(system.broker, RabbitBroker)
        client = system.app.test_client()
        job_id, result = run(client, system, login(client))
        assert result.status_code == 200
    finally:
        system.stop()
    telemetry.flush()
    upload = next(s for s in collector.spans if s["name"] == UPLOAD_COMPLETE)
    trace = {s["name"]: s for s in collector.trace(upload["trace_id"])}
    assert set(STAGES) <= set(trace)
    assert all(trace[name]["attributes"]["growbin.job_id"] == job_id for name in STAGES)


def test_events_sent_over_http_carry_the_context_as_w3c_headers_too(collector, env):
    """The Broker's ingress continues a trace from the W3C headers; the extension attributes
    ride along in binary mode as ce-traceparent."""
    from shared.core import events

    seen: list[dict[str, str]] = []

    class Ingress(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(dict(self.headers.items()))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    ingress = ThreadingHTTPServer(("127.0.0.1", 0), Ingress)
    threading.Thread(target=ingress.serve_forever, daemon=True).start()
    env.setenv("K_SINK", f"http://127.0.0.1:{ingress.server_address[1]}")
    reset_clients()
    try:
        with telemetry.span("emitter") as current:
            events.emit(events.make("kr.growbin.test.traced", {"n": 1}))
            trace_id = f"{current.get_span_context().trace_id:032x}"
    finally:
        ingress.shutdown()
    headers = {k.lower(): v for k, v in seen[0].items()}
    assert headers["traceparent"] == headers["ce-traceparent"]
    assert headers["traceparent"].split("-")[1] == trace_id


def test_an_event_without_the_extension_continues_its_deliverys_traceparent(collector):
    """eventing-rabbitmq hands the context to the subscriber as the delivery's W3C header."""
    from cloudevents.http import CloudEvent
    from flask import Flask

    from functions.pipeline import image_analyze
    from shared.core import db

    db.migrate()
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    parent = f"00-{trace_id}-b7ad6b7169203331-01"
    event = CloudEvent(
        {"type": "kr.growbin.waste.uploaded", "source": "/test", "id": "delivered-1"},
        {"job_id": "no-such-job"},
    )
    with Flask("ingress").test_request_context(headers={"traceparent": parent}):
        image_analyze(event)
    telemetry.flush()
    [span] = [s for s in collector.spans if s["name"] == "image_analyze"]
    assert span["trace_id"] == trace_id and span["parent_id"] == "b7ad6b7169203331"


def test_log_lines_inside_a_span_carry_its_ids(collector, caplog):
    caplog.set_level("INFO", logger="growbin")
    log_event("info", "outside")
    with telemetry.span("work") as current:
        log_event("info", "inside")
        context = current.get_span_context()
    outside, inside = (json.loads(r.getMessage()) for r in caplog.records)
    assert "trace_id" not in outside and "span_id" not in outside
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"


def test_without_an_endpoint_opentelemetry_is_never_imported():
    """A function that does not export pays nothing for telemetry at its cold start."""
    code = (
        "import sys\n"
        "import functions.waste, functions.pipeline, functions.auth, functions.users\n"
        "from shared.core import events, telemetry\n"
        "from shared.core.errors import log_event\n"
        "with telemetry.span('x') as s: assert s is None\n"
        "events.make('t', {}); log_event('info', 'x'); telemetry.count(telemetry.CORRECTIONS)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=False
    )
    assert done.returncode == 0, done.stderr


# ---- the dashboard queries only what is emitted ---------------------------------------------

# Series the dashboard reads that growbin does not emit, and who does: Knative Serving's
# queue-proxy (its documented request metrics) and RabbitMQ's own Prometheus plugin.
EXTERNAL_SERIES = {
    "revision_request_count": "Knative queue-proxy",
    "revision_request_latencies_bucket": "Knative queue-proxy",
    "rabbitmq_queue_messages": "RabbitMQ rabbitmq_prometheus (per-object)",
}
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "or", "vector", "le", "increase"}


def _queried_series(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers not inside {...} or (by ...),
    not label names, not functions."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_groups = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_groups)
    words = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges)
    return {w for w in words if w not in PROMQL_WORDS}


def test_every_series_a_dashboard_queries_is_emitted():
    from knative.render.dashboard import dashboard
    from shared.core.registry import REGISTRY

    board = dashboard(list(REGISTRY.values()))
    emitted = {series for m in telemetry.METRICS for series in m.series} | set(EXTERNAL_SERIES)
    queried = {
        name
        for panel in board["panels"]
        for target in panel["targets"]
        for name in _queried_series(target["expr"])
    }
    assert queried, "no query found"
    assert queried <= emitted, sorted(queried - emitted)
    ours = {s for m in telemetry.METRICS for s in m.series}
    assert queried & ours >= {
        telemetry.ANALYSES_STARTED.prometheus,
        telemetry.ANALYSES_FAILED.prometheus,
        telemetry.MODEL_COST.prometheus,
        f"{telemetry.EVENT_DURATION.prometheus}_bucket",
    }


def test_prometheus_names_follow_the_otlp_translation():
    assert telemetry.ANALYSES_STARTED.prometheus == "growbin_analyses_started_total"
    assert telemetry.EVENT_DURATION.prometheus == "growbin_event_duration_seconds"
    assert telemetry.MODEL_COST.prometheus == "growbin_model_cost_usd_total"
    assert _queried_series('sum by (code) (rate(growbin_x_total{a="b"}[5m]))') == {
        "growbin_x_total"
    }

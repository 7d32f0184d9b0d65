"""The Grafana dashboard, as a ConfigMap Grafana's sidecar picks up by its label.

Request rate, latency and errors per function from Knative's revision metrics, the analysis
job's stages (the event functions no cron fires), RabbitMQ's queue depths and the dead letters;
then what the functions push over OTLP (shared/core/telemetry.py): analyses, stage latency,
model calls, tokens and cost, vision-cache hits, confirmations and corrections, rate limits.
Our series' names come from telemetry.METRICS, the same declarations the code counts with.
"""

from __future__ import annotations

import json
from typing import Any

from knative.render.eventing import dead_letter_sink
from knative.render.metadata import meta
from knative.render.routing import monitoring_namespace
from knative.render.values import Values
from shared.core import telemetry
from shared.core.deployment import NAMESPACE
from shared.core.registry import Function
from shared.core.telemetry import Metric


def _panel(
    title: str,
    expr: str,
    unit: str,
    y: int,
    x: int = 0,
    legend: str = "",
    more: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """A timeseries panel; `more` adds (expr, legend) queries B, C, ... Legends by label are
    "__auto" (Grafana names a series by its labels): `{{label}}` would be read by Helm."""
    queries = [(expr, legend), *more]
    return {
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": e, "legendFormat": lg}
            for i, (e, lg) in enumerate(queries)
        ],
    }


def _rate(metric: Metric, by: str = "", labels: str = "", window: str = "5m") -> str:
    """sum [by (...)] (rate(<metric's Prometheus series>{labels}[window]))."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric.prometheus}{{{labels}}}[{window}]))"


def _growbin_panels(stage_names: str, y: int) -> list[dict[str, Any]]:
    """What the functions push over OTLP (shared/core/telemetry.py), by their Prometheus names."""
    latency = (
        "histogram_quantile(0.95, sum by (function, le) "
        f'(rate({telemetry.EVENT_DURATION.prometheus}_bucket{{function=~"{stage_names}"}}[5m])))'
    )
    cost = f"sum by (model) (increase({telemetry.MODEL_COST.prometheus}[1h]))"
    return [
        _panel(
            "Analyses: started, completed, failed by code",
            _rate(telemetry.ANALYSES_STARTED),
            "short",
            y,
            legend="started",
            more=(
                (_rate(telemetry.ANALYSES_COMPLETED), "completed"),
                (_rate(telemetry.ANALYSES_FAILED, "code"), "__auto"),
            ),
        ),
        _panel("Stage latency p95", latency, "s", y, 12, "__auto"),
        _panel(
            "Model calls by outcome",
            _rate(telemetry.MODEL_CALLS, "model, outcome"),
            "short",
            y + 8,
            legend="__auto",
            more=((_rate(telemetry.BUDGET_REFUSALS, "window"), "__auto"),),
        ),
        _panel(
            "Model tokens per second, in and out",
            _rate(telemetry.MODEL_TOKENS, "model, direction"),
            "short",
            y + 8,
            12,
            "__auto",
        ),
        _panel("Estimated model cost per hour (MODEL_PRICES)", cost, "currencyUSD", y + 16),
        _panel(
            "Vision answers by source (cache = a vision-cache hit)",
            _rate(telemetry.VISION_ANSWERS, "source"),
            "short",
            y + 16,
            12,
            "__auto",
        ),
        _panel(
            "Answers needing confirmation, and user corrections",
            _rate(telemetry.ANALYSES_COMPLETED, labels='needs_confirmation="true"'),
            "short",
            y + 24,
            legend="needs confirmation",
            more=((_rate(telemetry.CORRECTIONS), "corrections"),),
        ),
        _panel(
            "Rate-limited requests (429) by function",
            _rate(telemetry.RATE_LIMITED, "function"),
            "short",
            y + 24,
            12,
            "__auto",
        ),
    ]


def dashboard(functions: list[Function]) -> dict[str, Any]:
    """Request rate and latency per function, the AI job's stages, queues and dead letters."""
    ns = f'namespace_name="{NAMESPACE}"'
    stages = "|".join(f.service for f in functions if f.kind == "event" and not f.schedule)
    stage_filter = f'{ns}, service_name=~"{stages}"' if stages else f'{ns}, service_name=""'
    sink = dead_letter_sink().service
    panels = [
        _panel(
            "Request rate by function",
            f"sum by (service_name) (rate(revision_request_count{{{ns}}}[5m]))",
            "reqps",
            0,
            legend="__auto",
        ),
        _panel(
            "Latency p95 by function",
            "histogram_quantile(0.95, sum by (service_name, le) "
            f"(rate(revision_request_latencies_bucket{{{ns}}}[5m])))",
            "ms",
            0,
            12,
            "__auto",
        ),
        _panel(
            "Errors (5xx) by function",
            "sum by (service_name) "
            f'(rate(revision_request_count{{{ns}, response_code_class="5xx"}}[5m]))',
            "reqps",
            8,
            legend="__auto",
        ),
        _panel(
            "Job stages: events handled per stage",
            f"sum by (service_name) (rate(revision_request_count{{{stage_filter}}}[5m]))",
            "reqps",
            8,
            12,
            "__auto",
        ),
        _panel(
            "Queue depth by Trigger queue",
            "sum by (queue) "
            f'(rabbitmq_queue_messages{{namespace="{NAMESPACE}", queue!~".*dlq.*"}})',
            "short",
            16,
            legend="__auto",
        ),
        _panel(
            "Dead letters: sent to the sink, and waiting in dead-letter queues",
            f'sum(rate(revision_request_count{{{ns}, service_name="{sink}"}}[5m])) or vector(0)',
            "reqps",
            16,
            12,
            "to the sink",
        ),
    ]
    panels[-1]["targets"] += [
        {
            "refId": "B",
            "expr": f'sum(rabbitmq_queue_messages{{namespace="{NAMESPACE}", queue=~".*dlq.*"}})',
            "legendFormat": "in dead-letter queues",
        },
        {
            "refId": "C",
            "expr": _rate(telemetry.DEAD_LETTERS, "type"),
            "legendFormat": "__auto",
        },
    ]
    # The duration histogram's `function` label is the function's name, not its Service's.
    panels += _growbin_panels(stages.replace("-", "_"), 24)
    for number, panel in enumerate(panels, 1):
        panel["id"] = number
    return {
        "uid": "growbin",
        "title": "growbin",
        "tags": ["growbin", "knative"],
        "timezone": "Asia/Seoul",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def dashboard_config_map(functions: list[Function], values: Values) -> dict[str, Any]:
    """The dashboard as JSON in a ConfigMap labelled for Grafana's dashboard sidecar, in
    Grafana's own namespace: the sidecar searches only there unless told otherwise."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(
            "growbin-dashboard",
            namespace=monitoring_namespace(values),
            own_labels={"grafana_dashboard": "1"},
        ),
        "data": {"growbin.json": json.dumps(dashboard(functions), indent=2, ensure_ascii=False)},
    }

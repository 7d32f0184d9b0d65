"""The Grafana dashboard, as a ConfigMap Grafana's sidecar picks up by its label.

Request rate, latency and errors per function from Knative's revision metrics, the analysis
job's stages (the event functions no cron fires), RabbitMQ's queue depths and the dead letters.
"""

from __future__ import annotations

import json
from typing import Any

from knative.render.eventing import dead_letter_sink
from knative.render.metadata import meta
from knative.render.routing import monitoring_namespace
from knative.render.values import Values
from shared.core.deployment import NAMESPACE
from shared.core.registry import Function


def _panel(
    title: str, expr: str, unit: str, y: int, x: int = 0, legend: str = ""
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
    }


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
    panels[-1]["targets"].append(
        {
            "refId": "B",
            "expr": f'sum(rabbitmq_queue_messages{{namespace="{NAMESPACE}", queue=~".*dlq.*"}})',
            "legendFormat": "in dead-letter queues",
        }
    )
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

"""From the internet to a function: the ALB Ingress, the Gateway, an HTTPRoute per route.

The ALB forwards the API's path map, and nothing else, to the `growbin-edge` Gateway;
an HTTPRoute per HTTP function matches path and method and rewrites the host to the function's
cluster-local Knative Service, which Knative's local gateway then serves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from knative.render.metadata import meta
from knative.render.services import ALB_IDLE_TIMEOUT, FUNCTION_LABEL
from knative.render.values import Value, Values
from shared.core.deployment import ALB_PATHS, NAMESPACE
from shared.core.registry import Function

GATEWAY = "growbin-edge"


def knative_gateway_namespace(values: Values) -> Value:
    """Where Knative's cluster-local gateway runs: routes lead there, its policies admit it."""
    return values.ref("gateway.knativeGateway.namespace", "istio-system")


def monitoring_namespace(values: Values) -> Value:
    """Where Prometheus and Grafana run: they scrape the pods, Grafana loads the dashboard."""
    return values.ref("monitoring.namespace", "monitoring")


def _host(values: Values) -> Value:
    return values.ref("host", "api.growbin.kr")


def _route_match(function: Function) -> dict[str, Any]:
    """Exact for a fixed path; the literal prefix for a templated one (Core support)."""
    literal = function.path.split("{", 1)[0]
    if literal == function.path:
        path = {"type": "Exact", "value": function.path}
    else:
        path = {"type": "PathPrefix", "value": literal.rstrip("/")}
    return {"path": path, "method": function.method}


def _template_regex(template: str) -> str:
    """A templated path as a regular expression of the whole path, as the functions match it
    (registry: a parameter is one segment, a trailing slash is allowed)."""
    parts = re.split(r"\{\w+\}", template)
    return "[^/]+".join(re.escape(part) for part in parts) + "/?"


def route_matches(functions: Iterable[Function]) -> dict[str, dict[str, Any]]:
    """Each HTTP function's match. Where templated routes of one method share their literal
    prefix (`status/{job_id}` and `status/{job_id}/events`), a prefix cannot tell them apart:
    those match their whole template as a RegularExpression instead (Istio: RE2, matching the
    whole path), neither overlapping the other, so no precedence rule decides between them.
    Any other collision is an error: give one of the functions a distinct literal path."""
    functions = list(functions)
    matches = {f.name: _route_match(f) for f in functions}
    sharing: dict[str, list[Function]] = {}
    for function in functions:
        sharing.setdefault(json.dumps(matches[function.name], sort_keys=True), []).append(function)
    for group in sharing.values():
        if len(group) == 1:
            continue
        exact = any(matches[f.name]["path"]["type"] == "Exact" for f in group)
        if exact or len({_template_regex(f.path) for f in group}) < len(group):
            names = " and ".join(f.name for f in group)
            raise ValueError(f"{names} would share the route {matches[group[0].name]}")
        for function in group:
            regex = {"type": "RegularExpression", "value": _template_regex(function.path)}
            matches[function.name] = {"path": regex, "method": function.method}
    return matches


def _http_route(metadata: dict[str, Any], rule: dict[str, Any], values: Values) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": {"parentRefs": [{"name": GATEWAY}], "hostnames": [_host(values)], "rules": [rule]},
    }


def function_route(function: Function, match: dict[str, Any], values: Values) -> dict[str, Any]:
    """ALB path + method -> the function's Knative host, through the cluster-local gateway."""
    return _http_route(
        meta(function.service, own_labels={FUNCTION_LABEL: function.name}),
        {
            "matches": [match],
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {"hostname": f"{function.service}.{NAMESPACE}.svc.cluster.local"},
                }
            ],
            "backendRefs": [
                {
                    "name": values.ref("gateway.knativeGateway.name", "knative-local-gateway"),
                    "namespace": knative_gateway_namespace(values),
                    "port": 80,
                }
            ],
        },
        values,
    )


def _alb_ingress(values: Values) -> dict[str, Any]:
    """The internet-facing ALB: TLS ends here, every path of the map goes to the Gateway."""
    alb_paths = [p.rstrip("/") for p in ALB_PATHS]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(
            "growbin-alb",
            annotations={
                "alb.ingress.kubernetes.io/scheme": "internet-facing",
                "alb.ingress.kubernetes.io/target-type": "ip",
                # The gateway pods answer on the listener only for the routes' host and paths:
                # the ALB checks Istio's readiness endpoint on its status port instead of `/`.
                "alb.ingress.kubernetes.io/healthcheck-port": "15021",
                "alb.ingress.kubernetes.io/healthcheck-path": "/healthz/ready",
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
                # Progress streams idle between heartbeats: knative/render/services.py
                "alb.ingress.kubernetes.io/load-balancer-attributes": (
                    f"idle_timeout.timeout_seconds={ALB_IDLE_TIMEOUT}"
                ),
                "alb.ingress.kubernetes.io/certificate-arn": values.ref(
                    "alb.certificateArn",
                    "arn:aws:acm:ap-northeast-2:000000000000:certificate/growbin",
                ),
            },
        ),
        "spec": {
            "ingressClassName": "alb",
            "rules": [
                {
                    "host": _host(values),
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": values.ref("gateway.service", f"{GATEWAY}-istio"),
                                        "port": {"number": 80},
                                    }
                                },
                            }
                            for path in alb_paths
                        ]
                    },
                }
            ],
        },
    }


def _gateway(values: Values) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        # The ALB is the load balancer: Istio's Service for the Gateway stays ClusterIP, else
        # it would provision a second, public one.
        "metadata": meta(GATEWAY, annotations={"networking.istio.io/service-type": "ClusterIP"}),
        "spec": {
            "gatewayClassName": values.ref("gateway.className", "istio"),
            "listeners": [
                {
                    "name": "http",
                    "protocol": "HTTP",
                    "port": 80,
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        },
    }


def _reference_grant(name: str, namespace: Value) -> dict[str, Any]:
    """Lets the routes send to Services in `namespace`, which must allow it itself."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": meta(f"growbin-routes-to-{name}", namespace=namespace),
        "spec": {
            "from": [
                {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": NAMESPACE}
            ],
            "to": [{"group": "", "kind": "Service"}],
        },
    }


def routing_objects(functions: list[Function], values: Values) -> list[dict[str, Any]]:
    """The ALB's path map into the Gateway, and the Gateway's routes to Services and tools."""
    http = [f for f in functions if f.kind == "http"]
    matches = route_matches(http)
    for function in http:
        if not function.path.startswith(ALB_PATHS):
            raise ValueError(f"{function.name}: {function.path} is outside the ALB path map")
    return [
        _alb_ingress(values),
        _gateway(values),
        *(function_route(f, matches[f.name], values) for f in http),
        _reference_grant("knative", knative_gateway_namespace(values)),
    ]

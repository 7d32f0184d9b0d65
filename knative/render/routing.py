"""From the internet to a function: the ALB Ingress, the Gateway, an HTTPRoute per route.

The ALB forwards the API's path map, and nothing else, to the `growbin-edge` Gateway;
an HTTPRoute per HTTP function matches path and method and rewrites the host to the function's
cluster-local Knative Service, which Knative's local gateway then serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from knative.render.metadata import meta
from knative.render.services import FUNCTION_LABEL
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


def _check_unambiguous(functions: Iterable[Function]) -> None:
    seen: dict[str, str] = {}
    for function in functions:
        match = _route_match(function)
        key = json.dumps(match, sort_keys=True)
        if key in seen:
            raise ValueError(
                f"{function.name} and {seen[key]} would share the route {key}: "
                "give one of them a distinct literal path prefix"
            )
        seen[key] = function.name


def _http_route(metadata: dict[str, Any], rule: dict[str, Any], values: Values) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": {"parentRefs": [{"name": GATEWAY}], "hostnames": [_host(values)], "rules": [rule]},
    }


def function_route(function: Function, values: Values) -> dict[str, Any]:
    """ALB path + method -> the function's Knative host, through the cluster-local gateway."""
    return _http_route(
        meta(function.service, own_labels={FUNCTION_LABEL: function.name}),
        {
            "matches": [_route_match(function)],
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
    _check_unambiguous(http)
    for function in http:
        if not function.path.startswith(ALB_PATHS):
            raise ValueError(f"{function.name}: {function.path} is outside the ALB path map")
    return [
        _alb_ingress(values),
        _gateway(values),
        *(function_route(f, values) for f in http),
        _reference_grant("knative", knative_gateway_namespace(values)),
    ]

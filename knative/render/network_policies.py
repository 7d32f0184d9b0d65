"""Who may talk to whom: default deny, then exactly the traffic each declaration `uses`.

Every pod gets DNS; a function is reached only through Knative and reaches only what its
`uses` names (the database, the cache, the Broker, public HTTPS hosts); the Broker's and
RabbitMQ's own pods get what eventing-rabbitmq needs between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from knative.render.eventing import RABBITMQ
from knative.render.metadata import meta
from knative.render.routing import GATEWAY, knative_gateway_namespace, monitoring_namespace
from knative.render.services import BROKER, EMITS_LABEL, FUNCTION_LABEL
from knative.render.values import Value, Values
from shared.core.registry import Function

PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
# The public hosts each `uses` reaches over HTTPS, named on the function's egress policy.
EXTERNAL_HOSTS = {
    "storage": ["s3.ap-northeast-2.amazonaws.com"],
    "openai": ["api.openai.com"],
    "kakao": ["dapi.kakao.com"],
    "oauth": [
        "kauth.kakao.com",
        "kapi.kakao.com",
        "nid.naver.com",
        "openapi.naver.com",
        "oauth2.googleapis.com",
        "www.googleapis.com",
    ],
}
BROKER_INGRESS_ROLE = {"eventing.knative.dev/brokerRole": "ingress"}
# Istio labels the pods it provisions for a Gateway API Gateway with the Gateway's name.
GATEWAY_POD_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_PORTS = (80, 15021)  # the listener, Istio's health status (the ALB's health check)
DISPATCHER_ROLES = ("dispatcher", "dispatcher-dlq")  # eventing-rabbitmq's brokerRole labels
BROKER_INGRESS_PORT = 8080  # where the Broker takes events in


def _netpol(name: str, selector: dict[str, Any], **rules: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": selector, "policyTypes": []}
    for kind in ("ingress", "egress"):
        if kind in rules:
            spec["policyTypes"].append(kind.capitalize())
            spec[kind] = rules[kind]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, annotations=rules.get("annotations")),
        "spec": spec,
    }


def _namespace(name: Any) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _cidr(value: Value, port: Value) -> dict[str, Any]:
    return {"to": [{"ipBlock": {"cidr": value}}], "ports": [{"protocol": "TCP", "port": port}]}


def _egress_for(uses: Iterable[str], values: Values) -> list[dict[str, Any]]:
    """Exactly the egress a set of `uses` needs (DNS is allowed for every pod separately)."""
    uses = set(uses)
    rules = []
    if "db" in uses:
        rules.append(
            _cidr(
                values.ref("network.postgres.cidr", "10.0.0.0/16"),
                values.ref("network.postgres.port", 5432),
            )
        )
    if "cache" in uses:
        rules.append(
            _cidr(
                values.ref("network.redis.cidr", "10.0.0.0/16"),
                values.ref("network.redis.port", 6379),
            )
        )
    if "broker" in uses:
        rules.append(
            {
                "to": [
                    {
                        "podSelector": {
                            "matchLabels": {
                                "eventing.knative.dev/broker": BROKER,
                                **BROKER_INGRESS_ROLE,
                            }
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": BROKER_INGRESS_PORT}],
            }
        )
    if uses & set(EXTERNAL_HOSTS):
        # Public HTTPS hosts (S3, OpenAI, Kakao, OAuth providers) have no fixed addresses:
        # allow 443 to public addresses only, never to the VPC or the instance metadata.
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}],
                "ports": [{"protocol": "TCP", "port": 443}],
            }
        )
    return rules


def network_policies(functions: list[Function], values: Values) -> list[dict[str, Any]]:
    """Default deny; DNS for all; each function reaches only what its declaration `uses`."""
    knative_ns = values.ref("network.knativeServingNamespace", "knative-serving")
    gateway_ns = knative_gateway_namespace(values)
    eventing_ns = values.ref("network.knativeEventingNamespace", "knative-eventing")
    monitoring_ns = monitoring_namespace(values)
    istio_ns = values.ref("network.istioNamespace", "istio-system")
    broker_pods = {
        "matchExpressions": [{"key": "eventing.knative.dev/brokerRole", "operator": "Exists"}]
    }
    broker_ingress_pods = {"matchLabels": {**BROKER_INGRESS_ROLE}}
    rabbit_pods = {"matchLabels": {"app.kubernetes.io/name": RABBITMQ}}
    amqp = [{"protocol": "TCP", "port": 5672}]
    policies = [
        _netpol("default-deny", {}, ingress=[], egress=[]),
        _netpol(
            "allow-dns",
            {},
            egress=[
                {
                    "to": [
                        {
                            **_namespace("kube-system"),
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {
                    # NodeLocal DNSCache answers on a link-local address on every node
                    "to": [
                        {
                            "ipBlock": {
                                "cidr": values.ref("network.nodeLocalDns", "169.254.20.10/32")
                            }
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
            ],
        ),
        # The pods Istio provisions for the Gateway growbin-edge run here too: the ALB (target
        # type ip, from the VPC) reaches the listener and the health port; they take their
        # config from istiod and forward to Knative's cluster-local gateway.
        _netpol(
            "edge-gateway",
            {"matchLabels": {GATEWAY_POD_LABEL: GATEWAY}},
            ingress=[
                {
                    "from": [{"ipBlock": {"cidr": values.ref("network.vpcCidr", "10.0.0.0/16")}}],
                    "ports": [{"protocol": "TCP", "port": port} for port in GATEWAY_PORTS],
                }
            ],
            egress=[
                {
                    "to": [
                        {
                            **_namespace(istio_ns),
                            "podSelector": {"matchLabels": {"app": "istiod"}},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 15012}],
                },
                {
                    "to": [_namespace(gateway_ns)],
                    "ports": [
                        {
                            "protocol": "TCP",
                            "port": values.ref("gateway.knativeGateway.targetPort", 8081),
                        }
                    ],
                },
            ],
        ),
        # Requests reach a revision through Knative's gateway or its activator only.
        _netpol(
            "functions-ingress",
            {"matchExpressions": [{"key": FUNCTION_LABEL, "operator": "Exists"}]},
            ingress=[
                {
                    "from": [
                        _namespace(knative_ns),
                        _namespace(gateway_ns),
                        _namespace(monitoring_ns),
                    ]
                }
            ],
        ),
        # Traces and metrics are pushed (OTLP/HTTP) to a collector in the monitoring namespace,
        # when OTEL_EXPORTER_OTLP_ENDPOINT names one.
        _netpol(
            "functions-telemetry",
            {"matchExpressions": [{"key": FUNCTION_LABEL, "operator": "Exists"}]},
            egress=[
                {
                    "to": [_namespace(monitoring_ns)],
                    "ports": [{"protocol": "TCP", "port": values.ref("monitoring.otlpPort", 4318)}],
                }
            ],
        ),
    ]
    for function in functions:
        hosts = sorted({h for use in function.uses for h in EXTERNAL_HOSTS.get(use, ())})
        policies.append(
            _netpol(
                f"{function.service}-egress",
                {"matchLabels": {FUNCTION_LABEL: function.name}},
                egress=_egress_for(function.uses, values),
                annotations={
                    "growbin.kr/uses": ",".join(sorted(function.uses)) or "nothing",
                    **({"growbin.kr/egress-hosts": ",".join(hosts)} if hosts else {}),
                },
            )
        )
    policies += [
        _netpol(
            "migrate-egress",
            {"matchLabels": {"growbin.kr/job": "migrate"}},
            egress=_egress_for({"db"}, values),
        ),
        # eventing-rabbitmq's own pods: the Broker's ingress takes events from the functions
        # and PingSources; the Trigger dispatchers deliver them through Knative.
        _netpol(
            "broker-ingress",
            broker_ingress_pods,
            ingress=[
                {
                    "from": [
                        {"podSelector": {"matchLabels": {EMITS_LABEL: "true"}}},
                        {"podSelector": broker_pods},
                        _namespace(eventing_ns),
                    ],
                    "ports": [{"protocol": "TCP", "port": BROKER_INGRESS_PORT}],
                },
                {"from": [_namespace(monitoring_ns)], "ports": [{"protocol": "TCP", "port": 9090}]},
            ],
            egress=[{"to": [{"podSelector": rabbit_pods}], "ports": amqp}],
        ),
        _netpol(
            "broker-dispatchers",
            # the Trigger dispatchers and the Broker's own dead-letter dispatcher
            {
                "matchExpressions": [
                    {
                        "key": "eventing.knative.dev/brokerRole",
                        "operator": "In",
                        "values": list(DISPATCHER_ROLES),
                    }
                ]
            },
            egress=[
                {"to": [{"podSelector": rabbit_pods}], "ports": amqp},
                {"to": [_namespace(knative_ns), _namespace(gateway_ns)]},
                {
                    "to": [{"podSelector": broker_ingress_pods}],
                    "ports": [{"protocol": "TCP", "port": BROKER_INGRESS_PORT}],
                },
            ],
        ),
        _netpol(
            "rabbitmq",
            rabbit_pods,
            ingress=[
                {"from": [{"podSelector": broker_pods}], "ports": amqp},
                {"from": [{"podSelector": rabbit_pods}]},  # clustering between the 3 nodes
                {
                    # the operators declare exchanges, queues and bindings
                    "from": [_namespace(eventing_ns), _namespace("rabbitmq-system")],
                    "ports": [
                        {"protocol": "TCP", "port": 5672},
                        {"protocol": "TCP", "port": 15672},
                    ],
                },
                {
                    "from": [_namespace(monitoring_ns)],
                    "ports": [{"protocol": "TCP", "port": 15692}],
                },
            ],
            egress=[{"to": [{"podSelector": rabbit_pods}]}],
        ),
    ]
    return policies

"""Every deployment file, derived from the function declarations: `growbin render`.

From `shared.registry.REGISTRY` (plus the cluster's dead-letter sink) this writes the Knative
Services, routing and NetworkPolicies into knative/, the Broker, Triggers, SinkBinding and
PingSources into eventing/ (both kustomize-ready), the same objects as the Helm chart in
helm/growbin, and knative/openapi.json. Nothing here is written by hand twice: what an operator
may tune is a `Value`, which the plain manifests resolve to its default and the chart turns into
a bare `{{ .Values.path }}`, so the chart has no logic and renders faithfully without helm.

`write_all(check=True)` writes nothing and returns the files that differ from what would be
written; ARCHITECTURE.md ("Deployment") says why the objects look the way they do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eventing.broker import seconds
from eventing.cron import NAMESPACE
from knative.server import ALB_PATHS
from shared.registry import SEOUL, Function, Scaling

ROOT = Path(__file__).resolve().parent.parent
CHART = Path("helm/growbin")
VERSION = "0.1.0"
IMAGE = f"ghcr.io/growbin/growbin:{VERSION}"  # the default; values.yaml `image` overrides
REPO_URL = "https://github.com/growbin/growbin-backend.git"  # the ArgoCD Application's source

PART_OF = "growbin"
BROKER = "growbin"
RABBITMQ = "growbin-rabbitmq"
CONFIG = "growbin-config"
ACCOUNT = "growbin"
GATEWAY = "growbin-edge"
PORT = 8080  # Knative's default container port; functions-framework reads PORT
TIMEOUT_MARGIN = 10  # seconds a revision waits beyond the function's own timeout
MAX_REVISION_TIMEOUT = 600  # Knative's default max-revision-timeout-seconds
FUNCTION_LABEL = "growbin.kr/function"
EMITS_LABEL = "growbin.kr/emits"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")

# What each `uses` needs: Secrets as env (name, secret, key), and the hosts its egress reaches.
SECRET_ENV = {
    "db": [("DATABASE_URL", "growbin-database", "url")],
    "cache": [("REDIS_URL", "growbin-redis", "url")],
    "openai": [("OPENAI_API_KEY", "growbin-openai", "api-key")],
    "kakao": [("KAKAO_REST_API_KEY", "growbin-kakao", "rest-api-key")],
}
OAUTH_SECRET = "growbin-oauth"  # provider client ids and secrets, whatever keys auth reads
JWT_SECRET = "growbin-jwt"
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

# checkov findings that do not apply, each with the reason (rendered as checkov.io/skip).
FUNCTION_SKIPS = {
    "CKV_K8S_35": "functions-framework and the settings read 12-factor env vars; Secrets are "
    "referenced by name, never inlined, and the pod runs read-only as non-root",
    "CKV_K8S_43": "Knative resolves the tag to a digest when it creates each revision",
    "CKV_K8S_15": "the revision's image is a resolved digest; IfNotPresent spares scale-from-zero "
    "a registry round trip",
    "CKV_K8S_29": "Knative admits a pod-level securityContext only behind a feature flag; the "
    "container's securityContext sets non-root, read-only, no capabilities, seccomp",
}


@dataclass(frozen=True)
class Value:
    """A setting the operator may change: its dotted path in values.yaml and its default."""

    path: str
    default: Any
    text: bool = False  # always a YAML string (annotations), whatever the value's type


class Values:
    """values.yaml as it is built: `ref` records a default and returns the Value for it."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def ref(self, path: str, default: Any, text: bool = False) -> Value:
        node = self.tree
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if node.get(leaf, default) != default:
            raise ValueError(f"value {path} declared twice with different defaults")
        node[leaf] = default
        return Value(path, default, text)


# ---- the objects ---------------------------------------------------------------------------


def dead_letter_sink() -> Function:
    """The cluster's deadLetterSink: a Service every Trigger hands what it gave up on."""
    from eventing import dead_letters

    return Function(
        name="dead_letter_sink",
        module="eventing.dead_letters",
        kind="event",
        summary="Records the events Triggers gave up on, to be listed and replayed.",
        handler=dead_letters.dead_letter_sink,
        uses=frozenset({"db"}),
        scaling=Scaling(min=0, max=2, threads=8),
    )


def deployed(registry: dict[str, Function]) -> list[Function]:
    """The functions that run on the cluster: all but local-only ones, by name."""
    return sorted((f for f in registry.values() if not f.local_only), key=lambda f: f.name)


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/part-of": PART_OF, **extra.pop("labels", {})}
    return {"name": name, "namespace": NAMESPACE, "labels": labels, **extra}


def _skips(reasons: dict[str, str]) -> dict[str, str]:
    return {f"checkov.io/skip{i}": f"{k}={v}" for i, (k, v) in enumerate(reasons.items(), 1)}


def _secret_env(function: Function) -> list[dict[str, Any]]:
    env = []
    for use in sorted(function.uses):
        for name, secret, key in SECRET_ENV.get(use, ()):
            env.append(_from_secret(name, secret, key))
    if function.auth or function.module == "functions.auth":
        env.append(_from_secret("JWT_PUBLIC_KEYS", JWT_SECRET, "public-keys"))
    if function.module == "functions.auth":  # the token issuer, as README's table says
        env.append(_from_secret("JWT_PRIVATE_KEY", JWT_SECRET, "private-key"))
    return env


def _from_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def knative_service(function: Function, values: Values) -> dict[str, Any]:
    """One Knative Service: its target picked by env, autoscaling on concurrency."""
    scaling = function.scaling
    tune = f"functions.{function.name}"
    event = function.kind == "event"
    env = [
        {"name": "FUNCTION_TARGET", "value": function.name},
        {"name": "FUNCTION_SOURCE", "value": function.source},
        {"name": "FUNCTION_SIGNATURE_TYPE", "value": "cloudevent" if event else "http"},
        # gunicorn's defaults follow the node's CPUs, not the pod's: pin both, and keep
        # containerConcurrency = WORKERS x THREADS.
        {"name": "WORKERS", "value": str(scaling.workers)},
        {"name": "THREADS", "value": str(scaling.threads)},
        # HTTP functions answer 503 within DATABASE_TIMEOUT's default; queue and batch work
        # may wait on the database as long as the function may run.
        *([{"name": "DATABASE_TIMEOUT", "value": str(function.timeout_seconds)}] if event else []),
        *_secret_env(function),
    ]
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": CONFIG}}]
    if "oauth" in function.uses:
        env_from.append({"secretRef": {"name": OAUTH_SECRET}})
    # A cloud_event target answers GET with 405 and an HTTP target only its own route, so
    # readiness and liveness are TCP: the socket accepts while workers wait on a model.
    probe = {"tcpSocket": {"port": PORT}, "periodSeconds": 10, "failureThreshold": 3}
    # The SinkBinding selects Services by the emits label, the broker's NetworkPolicy pods.
    emits = {EMITS_LABEL: "true"} if "broker" in function.uses else {}
    pod_labels = {"app.kubernetes.io/part-of": PART_OF, FUNCTION_LABEL: function.name, **emits}
    labels = {FUNCTION_LABEL: function.name, **emits}
    labels["networking.knative.dev/visibility"] = "cluster-local"  # reached via the gateway
    timeout = function.timeout_seconds + TIMEOUT_MARGIN
    if timeout > MAX_REVISION_TIMEOUT:
        raise ValueError(f"{function.name}: timeout {timeout}s exceeds Knative's maximum")
    resources = function.resources
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": _meta(
            function.service,
            labels=labels,
            annotations={"growbin.kr/summary": function.summary, **_skips(FUNCTION_SKIPS)},
        ),
        "spec": {
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                        "autoscaling.knative.dev/metric": "concurrency",
                        "autoscaling.knative.dev/target": str(scaling.concurrency),
                        "autoscaling.knative.dev/target-utilization-percentage": str(
                            scaling.utilization
                        ),
                        "autoscaling.knative.dev/min-scale": values.ref(
                            f"{tune}.minScale", scaling.min, text=True
                        ),
                        "autoscaling.knative.dev/max-scale": values.ref(
                            f"{tune}.maxScale", scaling.max, text=True
                        ),
                    },
                },
                "spec": {
                    "serviceAccountName": ACCOUNT,
                    "automountServiceAccountToken": False,  # no function calls the API
                    "containerConcurrency": scaling.concurrency,
                    "timeoutSeconds": timeout,
                    "containers": [
                        {
                            "name": "function",
                            "image": values.ref("image", IMAGE),
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "http1", "containerPort": PORT}],
                            "env": env,
                            "envFrom": env_from,
                            "resources": {
                                "requests": {"cpu": resources.cpu, "memory": resources.memory},
                                "limits": {
                                    "cpu": resources.cpu_limit,
                                    "memory": resources.memory_limit,
                                },
                            },
                            "readinessProbe": probe,
                            "livenessProbe": dict(probe),
                            "securityContext": _security_context(),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            }
        },
    }


def config_objects(values: Values) -> list[dict[str, Any]]:
    """The settings every function reads (no secrets) and the identity they run as."""
    settings = {
        "GROWBIN_MODE": "cluster",
        "GROWBIN_PUBLIC_URL": values.ref("config.publicUrl", "https://api.growbin.kr"),
        "JWT_ISSUER": values.ref("config.jwtIssuer", "https://growbin.kr"),
        "JWT_AUDIENCE": values.ref("config.jwtAudience", "growbin-app"),
        "S3_BUCKET": values.ref("config.s3Bucket", "growbin-images"),
        "AWS_REGION": values.ref("config.awsRegion", "ap-northeast-2"),
        "OPENAI_MODEL": values.ref("config.openaiModel", "gpt-4o"),
        "OPENAI_TIMEOUT": values.ref("config.openaiTimeout", "20"),
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(CONFIG), "data": settings},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(
                ACCOUNT,
                # IRSA: S3 access comes from the role, not from keys in a Secret.
                annotations={
                    "eks.amazonaws.com/role-arn": values.ref(
                        "serviceAccount.roleArn", "arn:aws:iam::000000000000:role/growbin"
                    )
                },
            ),
            "automountServiceAccountToken": False,
        },
    ]


def migrate_job(values: Values) -> dict[str, Any]:
    """Alembic `upgrade heads` before new revisions roll out (Helm and ArgoCD hooks).

    It runs before the chart's other objects exist, so it needs only the image and the
    database Secret that operators create beforehand.
    """
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(
            "growbin-migrate",
            labels={"growbin.kr/job": "migrate"},
            annotations={
                "helm.sh/hook": "pre-install,pre-upgrade",
                "helm.sh/hook-weight": "-5",
                "helm.sh/hook-delete-policy": "before-hook-creation",
                "argocd.argoproj.io/hook": "PreSync",
                "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
                **_skips(
                    {
                        "CKV_K8S_35": "DATABASE_URL is read from env, as by every function",
                        "CKV_K8S_43": "the image is pinned by tag in values, as the Services' is",
                    }
                ),
            },
        ),
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/part-of": PART_OF, "growbin.kr/job": "migrate"}
                },
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "migrate",
                            "image": values.ref("image", IMAGE),
                            "imagePullPolicy": "Always",
                            "command": ["growbin", "migrate"],
                            "env": [
                                {"name": "GROWBIN_MODE", "value": "cluster"},
                                # a migration's statements may run long: not a request's 5 s
                                {"name": "DATABASE_TIMEOUT", "value": "600"},
                                _from_secret(*SECRET_ENV["db"][0]),
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "securityContext": _security_context(),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


# ---- eventing ------------------------------------------------------------------------------


def _service_ref(function: Function) -> dict[str, str]:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": function.service}


def _broker_ref() -> dict[str, str]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": BROKER}


def _dead_letters(trigger: str, retry: int) -> dict[str, Any]:
    # The sink learns which Trigger gave up, after how many tries, from the relative uri.
    return {"ref": _service_ref(dead_letter_sink()), "uri": f"/{trigger}?attempts={retry + 1}"}


def broker_objects(values: Values) -> list[dict[str, Any]]:
    """An HA RabbitMQ (quorum queues on 3 nodes) and the Broker on it."""
    return [
        {
            "apiVersion": "rabbitmq.com/v1beta1",
            "kind": "RabbitmqCluster",
            "metadata": _meta(RABBITMQ),
            "spec": {
                "replicas": values.ref("rabbitmq.replicas", 3),
                "persistence": {"storage": values.ref("rabbitmq.storage", "10Gi")},
                "resources": {
                    "requests": {"cpu": "500m", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "2Gi"},
                },
                "rabbitmq": {
                    # per-queue metrics feed the dashboard's queue depth and dead letters
                    "additionalConfig": "prometheus.return_per_object_metrics = true\n"
                },
            },
        },
        {
            "apiVersion": "eventing.knative.dev/v1alpha1",
            "kind": "RabbitmqBrokerConfig",
            "metadata": _meta(BROKER),
            "spec": {
                "queueType": "quorum",
                "rabbitmqClusterReference": {"name": RABBITMQ, "namespace": NAMESPACE},
            },
        },
        {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Broker",
            "metadata": _meta(
                BROKER, annotations={"eventing.knative.dev/broker.class": "RabbitMQBroker"}
            ),
            "spec": {
                "config": {
                    "apiVersion": "eventing.knative.dev/v1alpha1",
                    "kind": "RabbitmqBrokerConfig",
                    "name": BROKER,
                },
                "delivery": {
                    "retry": 3,
                    "backoffPolicy": "exponential",
                    "backoffDelay": "PT1S",
                    "deadLetterSink": _dead_letters("broker", 3),
                },
            },
        },
    ]


def trigger(function: Function) -> dict[str, Any]:
    """Exact `filter.attributes` only: eventing-rabbitmq ignores `spec.filters`."""
    delivery = function.delivery
    seconds(delivery.backoff_delay)  # a malformed duration fails the render, not the cluster
    seconds(delivery.timeout)
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": _meta(
            function.service,
            annotations={
                # the dispatcher's in-flight deliveries match what one pod serves at once
                "rabbitmq.eventing.knative.dev/parallelism": str(function.scaling.concurrency)
            },
        ),
        "spec": {
            "broker": BROKER,
            "filter": {"attributes": dict(function.filter)},
            "subscriber": {"ref": _service_ref(function)},
            "delivery": {
                "retry": delivery.retry,
                "backoffPolicy": delivery.backoff_policy,
                "backoffDelay": delivery.backoff_delay,
                "timeout": delivery.timeout,
                "deadLetterSink": _dead_letters(function.name, delivery.retry),
            },
        },
    }


def sink_binding() -> dict[str, Any]:
    """K_SINK (the Broker's address) for every Service labelled as emitting events."""
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "SinkBinding",
        "metadata": _meta("growbin-emitters"),
        "spec": {
            "subject": {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "selector": {"matchLabels": {EMITS_LABEL: "true"}},
            },
            "sink": {"ref": _broker_ref()},
        },
    }


def ping_source(function: Function) -> dict[str, Any]:
    """Cron into the Broker (durable, retried by the Trigger), never straight at a function."""
    task = function.filter["task"]
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": _meta(function.service),
        "spec": {
            "schedule": function.schedule,
            "timezone": SEOUL,
            "contentType": "application/json",
            "data": json.dumps({"task": task}),
            "ceOverrides": {"extensions": {"task": task}},
            "sink": {"ref": _broker_ref()},
        },
    }


# ---- routing -------------------------------------------------------------------------------


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


def _backend(values: Values) -> dict[str, Any]:
    return {
        "name": values.ref("gateway.knativeGateway.name", "knative-local-gateway"),
        "namespace": values.ref("gateway.knativeGateway.namespace", "istio-system"),
        "port": 80,
    }


def http_route(function: Function, values: Values) -> dict[str, Any]:
    """ALB path + method -> the function's Knative host, through the cluster-local gateway."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(function.service, labels={FUNCTION_LABEL: function.name}),
        "spec": {
            "parentRefs": [{"name": GATEWAY}],
            "hostnames": [values.ref("host", "api.growbin.kr")],
            "rules": [
                {
                    "matches": [_route_match(function)],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {
                                "hostname": f"{function.service}.{NAMESPACE}.svc.cluster.local"
                            },
                        }
                    ],
                    "backendRefs": [_backend(values)],
                }
            ],
        },
    }


def routing_objects(functions: list[Function], values: Values) -> list[dict[str, Any]]:
    """The ALB's path map into the Gateway, and the Gateway's routes to Services and tools."""
    http = [f for f in functions if f.kind == "http"]
    _check_unambiguous(http)
    for function in http:
        if not function.path.startswith(ALB_PATHS):
            raise ValueError(f"{function.name}: {function.path} is outside the ALB path map")
    tools = {
        "argocd": ("argocd-server", "argocd", 80),
        "grafana": ("grafana", "monitoring", 80),
    }
    alb_paths = [p.rstrip("/") for p in ALB_PATHS] + [f"/{tool}" for tool in tools]
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": _meta(
                "growbin-alb",
                annotations={
                    "alb.ingress.kubernetes.io/scheme": "internet-facing",
                    "alb.ingress.kubernetes.io/target-type": "ip",
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
                        "host": values.ref("host", "api.growbin.kr"),
                        "http": {
                            "paths": [
                                {
                                    "path": path,
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {
                                            "name": values.ref(
                                                "gateway.service", f"{GATEWAY}-istio"
                                            ),
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
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": _meta(GATEWAY),
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
        },
    ]
    objects += [http_route(f, values) for f in http]
    for tool, (service, namespace, port) in tools.items():
        objects.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": _meta(tool),
                "spec": {
                    "parentRefs": [{"name": GATEWAY}],
                    "hostnames": [values.ref("host", "api.growbin.kr")],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": f"/{tool}"}}],
                            "backendRefs": [
                                {
                                    "name": values.ref(f"{tool}.service", service),
                                    "namespace": values.ref(f"{tool}.namespace", namespace),
                                    "port": port,
                                }
                            ],
                        }
                    ],
                },
            }
        )
    # A route may send to a Service in another namespace only where that namespace allows it.
    grants = {
        "knative": values.ref("gateway.knativeGateway.namespace", "istio-system"),
        **{tool: values.ref(f"{tool}.namespace", ns) for tool, (_, ns, _) in tools.items()},
    }
    for name, namespace in grants.items():
        objects.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1beta1",
                "kind": "ReferenceGrant",
                "metadata": {
                    "name": f"growbin-routes-to-{name}",
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/part-of": PART_OF},
                },
                "spec": {
                    "from": [
                        {
                            "group": "gateway.networking.k8s.io",
                            "kind": "HTTPRoute",
                            "namespace": NAMESPACE,
                        }
                    ],
                    "to": [{"group": "", "kind": "Service"}],
                },
            }
        )
    return objects


# ---- network policies ----------------------------------------------------------------------


def _netpol(name: str, selector: dict[str, Any], **rules: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": selector, "policyTypes": []}
    for kind in ("ingress", "egress"):
        if kind in rules:
            spec["policyTypes"].append(kind.capitalize())
            spec[kind] = rules[kind]
    annotations = rules.get("annotations")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, **({"annotations": annotations} if annotations else {})),
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
                                "eventing.knative.dev/brokerRole": "ingress",
                            }
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 8080}],
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
    gateway_ns = values.ref("gateway.knativeGateway.namespace", "istio-system")
    eventing_ns = values.ref("network.knativeEventingNamespace", "knative-eventing")
    monitoring_ns = values.ref("grafana.namespace", "monitoring")
    broker_pods = {
        "matchExpressions": [{"key": "eventing.knative.dev/brokerRole", "operator": "Exists"}]
    }
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
                }
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
            {"matchLabels": {"eventing.knative.dev/brokerRole": "ingress"}},
            ingress=[
                {
                    "from": [
                        {"podSelector": {"matchLabels": {EMITS_LABEL: "true"}}},
                        {"podSelector": broker_pods},
                        _namespace(eventing_ns),
                    ],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                },
                {"from": [_namespace(monitoring_ns)], "ports": [{"protocol": "TCP", "port": 9090}]},
            ],
            egress=[{"to": [{"podSelector": rabbit_pods}], "ports": amqp}],
        ),
        _netpol(
            "broker-dispatchers",
            {"matchLabels": {"eventing.knative.dev/brokerRole": "dispatcher"}},
            egress=[
                {"to": [{"podSelector": rabbit_pods}], "ports": amqp},
                {"to": [_namespace(knative_ns), _namespace(gateway_ns)]},
                {
                    "to": [
                        {
                            "podSelector": {
                                "matchLabels": {"eventing.knative.dev/brokerRole": "ingress"}
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8080}],
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


# ---- dashboard -----------------------------------------------------------------------------


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
            f'sum(rate(revision_request_count{{{ns}, service_name="dead-letter-sink"}}[5m]))'
            " or vector(0)",
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


def dashboard_config_map(functions: list[Function]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("growbin-dashboard", labels={"grafana_dashboard": "1"}),
        "data": {"growbin.json": json.dumps(dashboard(functions), indent=2, ensure_ascii=False)},
    }


def argocd_application() -> dict[str, Any]:
    """ArgoCD syncs the chart with production values; PreSync runs the migration first."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "growbin", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": REPO_URL,
                "targetRevision": "main",
                "path": str(CHART),
                "helm": {"valueFiles": ["values-production.yaml"]},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": NAMESPACE},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
                "managedNamespaceMetadata": {"labels": {"bindings.knative.dev/include": "true"}},
            },
        },
    }


# ---- files ---------------------------------------------------------------------------------


@dataclass
class Manifest:
    """One YAML file of objects, kept in knative/ or eventing/ and mirrored in the chart."""

    path: str
    objects: list[dict[str, Any]]


def manifests(registry: dict[str, Function]) -> tuple[list[Manifest], Values]:
    values = Values()
    functions = deployed(registry)
    services = [*functions, dead_letter_sink()]
    events = [f for f in functions if f.kind == "event"]
    found = [
        Manifest("knative/config.yaml", config_objects(values)),
        *(
            Manifest(f"knative/services/{f.service}.yaml", [knative_service(f, values)])
            for f in services
        ),
        Manifest("knative/routing.yaml", routing_objects(functions, values)),
        Manifest("knative/network-policies.yaml", network_policies(services, values)),
        Manifest("knative/migrate-job.yaml", [migrate_job(values)]),
        Manifest("knative/dashboard.yaml", [dashboard_config_map(functions)]),
        Manifest("eventing/broker.yaml", broker_objects(values)),
        Manifest("eventing/triggers.yaml", [trigger(f) for f in events]),
        Manifest("eventing/sinkbinding.yaml", [sink_binding()]),
        Manifest("eventing/pingsources.yaml", [ping_source(f) for f in events if f.schedule]),
    ]
    return found, values


def _resolve(node: Any) -> Any:
    if isinstance(node, Value):
        return str(node.default) if node.text else node.default
    if isinstance(node, dict):
        return {k: _resolve(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v) for v in node]
    return node


def _dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, allow_unicode=True, width=100)


HEADER = "# Written by `growbin render` from the function declarations: do not edit.\n"


def plain_yaml(objects: list[dict[str, Any]]) -> str:
    return HEADER + _dump([_resolve(o) for o in objects])


def helm_yaml(objects: list[dict[str, Any]]) -> str:
    """The same objects with every Value as a bare `{{ .Values.path }}` substitution."""
    found: list[Value] = []

    def mark(node: Any) -> Any:
        if isinstance(node, Value):
            found.append(node)
            return f"growbin-value-{len(found) - 1}-marker"
        if isinstance(node, dict):
            return {k: mark(v) for k, v in node.items()}
        if isinstance(node, list):
            return [mark(v) for v in node]
        return node

    text = _dump([mark(o) for o in objects])
    if "{{" in text:  # helm would take it for a template action
        raise ValueError("a manifest contains '{{': helm would try to evaluate it")
    for index, value in enumerate(found):
        template = "{{ .Values." + value.path + " }}"
        if value.text or isinstance(value.default, str):
            template = f'"{template}"'
        text = text.replace(f"growbin-value-{index}-marker", template)
    return HEADER + text


def _schema(node: Any) -> dict[str, Any]:
    if isinstance(node, dict):
        return {
            "type": "object",
            "additionalProperties": False,
            "required": sorted(node),
            "properties": {k: _schema(v) for k, v in sorted(node.items())},
        }
    if isinstance(node, bool):
        return {"type": "boolean"}
    if isinstance(node, int):
        return {"type": "integer", "minimum": 0}
    # Substituted inside double quotes: a quote or backslash would break the YAML.
    return {"type": "string", "minLength": 1, "pattern": '^[^"\\\\]*$'}


def kustomization(paths: list[str], extra: Iterable[str] = ()) -> str:
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [*paths, *extra],
    }
    return HEADER + yaml.safe_dump(body, sort_keys=False)


def files(registry: dict[str, Function]) -> dict[str, str | None]:
    """Every derived file by path from the project root: its content, or None where a file
    must not be (a manifest with no objects today, e.g. no cron functions)."""
    from knative.openapi import document

    manifests_, values = manifests(registry)
    out: dict[str, str | None] = {}
    for manifest in manifests_:
        chart_path = str(CHART / "templates" / manifest.path)
        out[manifest.path] = plain_yaml(manifest.objects) if manifest.objects else None
        out[chart_path] = helm_yaml(manifest.objects) if manifest.objects else None
    found = [m for m in manifests_ if m.objects]
    for directory, extra in (("knative", ["../eventing"]), ("eventing", [])):
        mine = sorted(
            m.path.removeprefix(f"{directory}/") for m in found if m.path.startswith(directory)
        )
        out[f"{directory}/kustomization.yaml"] = kustomization(mine, extra)
    out["knative/argocd/application.yaml"] = plain_yaml([argocd_application()])
    out["knative/openapi.json"] = (
        json.dumps(document(registry), indent=2, ensure_ascii=False) + "\n"
    )
    out[str(CHART / "Chart.yaml")] = HEADER + yaml.safe_dump(
        {
            "apiVersion": "v2",
            "name": "growbin",
            "description": "growbin backend: waste sorting for Korea as Knative functions",
            "type": "application",
            "version": VERSION,
            "appVersion": VERSION,
        },
        sort_keys=False,
    )
    out[str(CHART / "values.yaml")] = HEADER + yaml.safe_dump(values.tree, sort_keys=True)
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", **_schema(values.tree)}
    out[str(CHART / "values.schema.json")] = json.dumps(schema, indent=2) + "\n"
    return out


# Directories whose every file is derived: a file there that would not be written is stale.
OWNED = ("knative/services", str(CHART / "templates"))


def write_all(check: bool = False) -> list[str]:
    """Write the derived files (or, with `check`, only compare); returns the ones that differ."""
    from functions import load_all

    return sync(files(load_all()), ROOT, check)


def sync(wanted: dict[str, str | None], root: Path, check: bool) -> list[str]:
    """Make the files under `root` what `wanted` says, unless `check`; return what differed."""
    wanted = dict(wanted)
    for directory in OWNED:  # files of functions that are gone
        for path in sorted((root / directory).rglob("*")):
            wanted.setdefault(str(path.relative_to(root)), None)
    differ = []
    for relative, content in sorted(wanted.items()):
        path = root / relative
        if content is None:
            if path.is_file():
                differ.append(relative)
                if not check:
                    path.unlink()
        elif not path.is_file() or path.read_text(encoding="utf-8") != content:
            differ.append(relative)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
    return differ

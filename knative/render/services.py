"""The workloads: a Knative Service per function, what they run with, the migration Job.

One image runs every function: each Service picks its target by env, autoscales on
concurrency, reads the shared settings from a ConfigMap and only the Secrets its declaration
`uses`, and runs read-only as non-root. The Alembic Job runs before new revisions roll out.
"""

from __future__ import annotations

from typing import Any

from knative.render.metadata import VERSION, labels, meta
from knative.render.values import Value, Values
from shared.core.deployment import NAMESPACE
from shared.core.registry import Function
from shared.core.settings import VARIABLES

IMAGE = f"ghcr.io/growbin/growbin:{VERSION}"  # the default; values.yaml `image` overrides
KNATIVE_SERVICE = {"apiVersion": "serving.knative.dev/v1", "kind": "Service"}
CONFIG = "growbin-config"
ACCOUNT = "growbin"
PORT = 8080  # Knative's default container port; functions-framework reads PORT
TIMEOUT_MARGIN = 10  # seconds a revision waits beyond the function's own timeout
MAX_REVISION_TIMEOUT = 600  # Knative's default max-revision-timeout-seconds
# Streams (a `text/event-stream` response) stay open for their function's timeout, quiet but
# for a heartbeat comment: the ALB and Knative must both let a connection idle longer than
# the heartbeat (twice over: one late heartbeat must not close it), and the first bytes leave
# at once (the stream's retry field), so Knative need not wait long for them.
STREAM_MEDIA = "text/event-stream"
ALB_IDLE_TIMEOUT = 60  # seconds: AWS's default, rendered on the ALB so that it is a decision
STREAM_RESPONSE_START = 10  # seconds
HEARTBEAT = next(v for v in VARIABLES if v.name == "EVENTS_HEARTBEAT_SECONDS")
FUNCTION_LABEL = "growbin.kr/function"  # routes and NetworkPolicies select a function by it
EMITS_LABEL = "growbin.kr/emits"  # the Broker ingress's NetworkPolicy admits pods by it
BROKER = "growbin"
# The Broker's address as eventing-rabbitmq makes it (the `<broker>-broker-ingress` Service,
# port 80, no path). Emitters get it as K_SINK in their own manifest, not from a SinkBinding,
# whose mutation of the Services GitOps self-heal would revert on every sync.
BROKER_ADDRESS = f"http://{BROKER}-broker-ingress.{NAMESPACE}.svc.cluster.local"

JWT_SECRET = "growbin-jwt"
# The Secrets each `uses` needs, as env (name, secret, key).
SECRET_ENV = {
    "db": [("DATABASE_URL", "growbin-database", "url")],
    "cache": [("REDIS_URL", "growbin-redis", "url")],
    "openai": [("OPENAI_API_KEY", "growbin-openai", "api-key")],
    "kakao": [("KAKAO_REST_API_KEY", "growbin-kakao", "rest-api-key")],
    "signing": [("JWT_PRIVATE_KEY", JWT_SECRET, "private-key")],  # token issuers only
}
OAUTH_SECRET = "growbin-oauth"  # provider client ids and secrets, whatever keys auth reads

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


def _skips(reasons: dict[str, str]) -> dict[str, str]:
    return {f"checkov.io/skip{i}": f"{k}={v}" for i, (k, v) in enumerate(reasons.items(), 1)}


def _image(values: Values) -> Value:
    return values.ref("image", IMAGE)


def _secret_env(function: Function) -> list[dict[str, Any]]:
    env = []
    for use in sorted(function.uses):
        for name, secret, key in SECRET_ENV.get(use, ()):
            env.append(_from_secret(name, secret, key))
    if function.auth or function.module == "functions.auth":
        env.append(_from_secret("JWT_PUBLIC_KEYS", JWT_SECRET, "public-keys"))
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


def streams(function: Function) -> bool:
    """Whether the function answers with a stream (its 200 is `text/event-stream`)."""
    return any(
        (schema or {}).get("x-media-type") == STREAM_MEDIA for schema in function.responses.values()
    )


def _stream_timeouts(function: Function) -> dict[str, int]:
    """A stream's revision: Knative's idle timeout is the ALB's, twice the heartbeat or more."""
    if not streams(function):
        return {}
    if 2 * float(HEARTBEAT.default) > ALB_IDLE_TIMEOUT:
        raise ValueError(f"{HEARTBEAT.name} must be at most half the ALB idle timeout")
    return {
        "responseStartTimeoutSeconds": STREAM_RESPONSE_START,
        "idleTimeoutSeconds": ALB_IDLE_TIMEOUT,
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
        *([{"name": "K_SINK", "value": BROKER_ADDRESS}] if "broker" in function.uses else []),
        *([{"name": HEARTBEAT.name, "value": HEARTBEAT.default}] if streams(function) else []),
        *_secret_env(function),
    ]
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": CONFIG}}]
    if "oauth" in function.uses:
        env_from.append({"secretRef": {"name": OAUTH_SECRET}})
    # A cloud_event target answers GET with 405 and an HTTP target only its own route, so
    # readiness and liveness are TCP: the socket accepts while workers wait on a model.
    # Readiness leaves periodSeconds unset: only then does Knative probe aggressively at
    # startup, so a scale-from-zero is ready when the process is, not a period later.
    readiness = {"tcpSocket": {"port": PORT}, "failureThreshold": 3}
    liveness = {"tcpSocket": {"port": PORT}, "periodSeconds": 10, "failureThreshold": 3}
    # The Broker ingress's NetworkPolicy admits the emitters' pods by this label.
    emits = {EMITS_LABEL: "true"} if "broker" in function.uses else {}
    own_labels = {FUNCTION_LABEL: function.name, **emits}
    timeout = function.timeout_seconds + TIMEOUT_MARGIN
    if timeout > MAX_REVISION_TIMEOUT:
        raise ValueError(f"{function.name}: timeout {timeout}s exceeds Knative's maximum")
    resources = function.resources
    return {
        **KNATIVE_SERVICE,
        "metadata": meta(
            function.service,
            own_labels={
                **own_labels,
                "networking.knative.dev/visibility": "cluster-local",  # reached via the gateway
            },
            annotations={"growbin.kr/summary": function.summary, **_skips(FUNCTION_SKIPS)},
        ),
        "spec": {
            "template": {
                "metadata": {
                    "labels": labels(own_labels),
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
                    **_stream_timeouts(function),
                    "containers": [
                        {
                            "name": "function",
                            "image": _image(values),
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
                            "readinessProbe": readiness,
                            "livenessProbe": liveness,
                            "securityContext": _security_context(),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            }
        },
    }


_DEFAULTS = {variable.name: variable.default for variable in VARIABLES}


def config_objects(values: Values) -> list[dict[str, Any]]:
    """The settings every function reads (no secrets) and the identity they run as."""
    settings = {
        "GROWBIN_MODE": "cluster",
        "GROWBIN_PUBLIC_URL": values.ref("config.publicUrl", "https://api.growbin.kr"),
        "JWT_ISSUER": values.ref("config.jwtIssuer", "https://growbin.kr"),
        "JWT_AUDIENCE": values.ref("config.jwtAudience", "growbin-app"),
        "S3_BUCKET": values.ref("config.s3Bucket", "growbin-images"),
        # botocore reads AWS_DEFAULT_REGION, not AWS_REGION (which only other SDKs read)
        "AWS_DEFAULT_REGION": values.ref("config.awsRegion", "ap-northeast-2"),
        "OPENAI_MODEL": values.ref("config.openaiModel", "gpt-4o"),
        "OPENAI_TIMEOUT": values.ref("config.openaiTimeout", "20"),
        # The model budget, shared by every pod through Redis; 0: no limit.
        "MODEL_TOKENS_PER_MINUTE": values.ref("config.modelTokensPerMinute", "0"),
        "MODEL_TOKENS_PER_DAY": values.ref("config.modelTokensPerDay", "0"),
        "MODEL_PRICES": values.ref("config.modelPrices", _DEFAULTS["MODEL_PRICES"]),
        # Empty: nothing exported, OpenTelemetry not even imported (see Observability).
        "OTEL_EXPORTER_OTLP_ENDPOINT": values.ref("config.otlpEndpoint", ""),
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(CONFIG), "data": settings},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(
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
    own_labels = {"growbin.kr/job": "migrate"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(
            "growbin-migrate",
            own_labels=own_labels,
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
                "metadata": {"labels": labels(own_labels)},
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
                            "image": _image(values),
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

"""Events between the functions: the Broker on RabbitMQ, Triggers, cron, dead letters.

Every event goes through the one Broker, cron included, so each delivery is durable and
retried by its Trigger; what a Trigger gives up on goes to the dead-letter sink, a Service of
its own that records it for `growbin dead-letters`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from knative.render.metadata import meta
from knative.render.services import BROKER, KNATIVE_SERVICE
from knative.render.values import Values
from shared.core.deployment import NAMESPACE
from shared.core.registry import SEOUL, Function, Scaling, seconds

RABBITMQ = "growbin-rabbitmq"


def dead_letter_sink() -> Function:
    """The cluster's deadLetterSink: a Service every Trigger hands what it gave up on."""
    from eventing import dead_letters

    return Function(
        name="dead_letter_sink",
        module="eventing.dead_letters",
        kind="event",
        summary="Records the events Triggers gave up on, to be listed and replayed.",
        handler=dead_letters.dead_letter_sink,
        # the functions' on_dead_letter reactions fail jobs through jobs.fail, which writes
        # the job's cached status as well as its row
        uses=frozenset({"db", "cache"}),
        scaling=Scaling(min=0, max=2, threads=8),
    )


def _service_ref(function: Function) -> dict[str, str]:
    return {**KNATIVE_SERVICE, "name": function.service}


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
            "metadata": meta(RABBITMQ),
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
            "metadata": meta(BROKER),
            "spec": {
                "queueType": "quorum",
                "rabbitmqClusterReference": {"name": RABBITMQ, "namespace": NAMESPACE},
            },
        },
        {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Broker",
            "metadata": meta(
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


def trigger_name(function: Function) -> str:
    """The function's Service name and a digest of its filter: eventing-rabbitmq refuses any
    edit to `spec.filter`, so a changed filter names a new Trigger, which helm and ArgoCD
    create while they delete (prune) the old one, instead of an update the webhook rejects."""
    digest = hashlib.sha256(json.dumps(function.filter, sort_keys=True).encode()).hexdigest()
    name = f"{function.service}-{digest[:8]}"
    if len(name) > 63:  # the dispatcher labels its Deployment with the Trigger's name
        raise ValueError(f"{function.name}: Trigger name {name} is longer than 63 characters")
    return name


def trigger(function: Function) -> dict[str, Any]:
    """Exact `filter.attributes` only: eventing-rabbitmq ignores `spec.filters`."""
    delivery = function.delivery
    seconds(delivery.backoff_delay)  # a malformed duration fails the render, not the cluster
    seconds(delivery.timeout)
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": meta(
            trigger_name(function),
            annotations={
                # in-flight deliveries enough to fill every pod the function may scale to:
                # capped at one pod's concurrency, the load could never ask for a second pod
                "rabbitmq.eventing.knative.dev/parallelism": str(
                    function.scaling.concurrency * function.scaling.max
                )
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


def ping_source(function: Function) -> dict[str, Any]:
    """Cron into the Broker (durable, retried by the Trigger), never straight at a function."""
    task = function.filter["task"]
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": meta(function.service),
        "spec": {
            "schedule": function.schedule,
            "timezone": SEOUL,
            "contentType": "application/json",
            "data": json.dumps({"task": task}),
            "ceOverrides": {"extensions": {"task": task}},
            "sink": {"ref": _broker_ref()},
        },
    }

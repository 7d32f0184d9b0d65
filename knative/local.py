"""The whole system in one process: the embedded default behind `growbin dev` and the tests.

Every function module is loaded, the schema migrated (local mode), and the local broker and
cron wired to the same declarations the cluster's Triggers and PingSources come from. The broker
runs in-process, or over RabbitMQ when BROKER_URL is set (eventing/rabbitmq.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from eventing.broker import LocalBroker
from eventing.cron import Cron
from eventing.rabbitmq import RabbitBroker
from functions import load_all
from knative.server import create_app
from shared.core import datasets, db, events
from shared.core.errors import log_event
from shared.core.registry import Function
from shared.core.settings import settings


@dataclass
class Local:
    registry: dict[str, Function]
    broker: LocalBroker | RabbitBroker
    cron: Cron
    app: Flask

    def stop(self) -> None:
        self.cron.stop()
        self.broker.close()
        events.connect(None)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)  # else a line per socket event


def import_datasets(with_bins: bool = True) -> None:
    """The knowledge from the datasets folder, as `growbin import` loads it: a few ms once
    imported. Without the folder the system still runs, and the log says what it lacks."""
    from shared.ops import knowledge

    try:
        knowledge.run(with_bins=with_bins)
    except datasets.Missing as exc:
        log_event("warning", "datasets_missing", reason=str(exc), missing=knowledge.missing())


def start(*, time_scale: float = 1.0, with_cron: bool = True, with_bins: bool = True) -> Local:
    if settings().local:
        db.migrate()
        import_datasets(with_bins)
    registry = load_all()
    broker = (RabbitBroker if settings().broker_url else LocalBroker)(
        registry.values(), time_scale=time_scale
    )
    events.connect(broker.publish)
    cron = Cron(registry.values(), broker.publish)
    if with_cron:
        cron.start()
    return Local(registry, broker, cron, create_app(registry, broker))

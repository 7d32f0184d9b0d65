"""A dev-server process as the broker sees it: it consumes the fault tests' Trigger from RabbitMQ.

tests/test_rabbitmq_faults.py runs it as a subprocess, several at once (competing consumers),
with the test's BROKER_URL, BROKER_NAME and DATABASE_URL, and kills one mid-handler; the
restart test runs the same Trigger in-process. The handler writes what happened where the test
reads it: `rabbit_starts` (a delivery began, by which process) and `rabbit_effects` (the work
completed). The effect is an append, not idempotent by itself: it commits in one transaction
with the event's handled mark, so nothing done twice in effect means one effect row per event.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from sqlalchemy import text

from shared.core import db, idempotency
from shared.core.registry import REGISTRY, Delivery, Scaling, event

WORK_TYPE = "kr.growbin.test.fault"


@event(WORK_TYPE, scaling=Scaling(threads=4), delivery=Delivery(retry=1, backoff_delay="PT0.1S"))
def rabbit_fault_work(cloud_event) -> None:
    """Sleep as the event says, fail when it says, and block on its first delivery if asked."""
    data = cloud_event.data or {}
    event_id, pid = cloud_event["id"], os.getpid()
    with db.transaction() as conn:
        earlier = conn.execute(
            text("SELECT count(*) FROM rabbit_starts WHERE event_id = :id"), {"id": event_id}
        ).scalar()
        conn.execute(
            text("INSERT INTO rabbit_starts (event_id, pid) VALUES (:id, :pid)"),
            {"id": event_id, "pid": pid},
        )
    if data.get("block") and not earlier:
        time.sleep(60)  # the test kills this process here: delivered, never acked
    time.sleep(data.get("sleep", 0))
    if data.get("fail"):
        raise RuntimeError(f"poison event {event_id}")
    with db.transaction() as conn:  # the effect and the handled mark commit together
        conn.execute(
            text("INSERT INTO rabbit_effects (event_id, pid) VALUES (:id, :pid)"),
            {"id": event_id, "pid": pid},
        )
        idempotency.remember(event_id, "rabbit_fault_work", conn)


FUNCTIONS = [REGISTRY.pop("rabbit_fault_work")]  # the tests' own: kept out of the app's registry


def create_tables() -> None:
    with db.transaction() as conn:
        for table in ("rabbit_starts", "rabbit_effects"):
            conn.execute(
                text(f"CREATE TABLE {table} (event_id VARCHAR(64) NOT NULL, pid INTEGER NOT NULL)")
            )


def rows(table: str) -> list[tuple[str, int]]:
    with db.engine().connect() as conn:
        return [tuple(row) for row in conn.execute(text(f"SELECT event_id, pid FROM {table}"))]


def main() -> None:
    from eventing.rabbitmq import RabbitBroker

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    broker = RabbitBroker(FUNCTIONS, time_scale=0.1)  # BROKER_URL and BROKER_NAME from the test
    stop.wait()
    broker.close()


if __name__ == "__main__":
    main()

"""100 analyses through the real pipeline over RabbitMQ, PostgreSQL, Redis and S3, with
RabbitMQ's connections dropped and the RabbitMQ application restarted while they run.

Every job ends completed (or failed with a reason); none is lost, none is done twice in
effect (one result row, one stamp per stage). Run with -s to see the numbers.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest
from conftest import login
from sqlalchemy import func, select
from test_waste import start

from shared.core import db
from shared.waste import jobs

pytestmark = pytest.mark.services

JOBS = 100
PER_USER = 20  # under the per-user analyze rate limit


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="restarting RabbitMQ needs rabbitmqctl")
def test_analyses_survive_rabbitmq_restarts(services, rabbitmq):
    from knative import local

    system = local.start(time_scale=0.01, with_cron=False, with_bins=False)
    rabbitmq.track(system.broker)
    assert type(system.broker).__name__ == "RabbitBroker"
    client = system.app.test_client()
    prepared = []
    for n in range(JOBS):
        if n % PER_USER == 0:
            headers = login(client, f"fault-{n}")
        prepared.append((start(client, headers, hint="페트병")["job_id"], headers))

    retries = {"upload_complete": 0}

    def complete_all() -> None:
        for job_id, headers in prepared:
            while True:  # as the app would: a 503 is retried
                response = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
                if response.status_code == 202:
                    break
                assert response.status_code == 503, response.get_json()
                retries["upload_complete"] += 1
                time.sleep(0.2)
            time.sleep(0.01)

    def unfinished() -> int:
        with db.engine().connect() as conn:
            return conn.execute(
                select(func.count())
                .select_from(jobs.jobs)
                .where(jobs.jobs.c.status.notin_(("completed", "failed")))
            ).scalar()

    completing = threading.Thread(target=complete_all)
    completing.start()
    in_flight = []
    try:
        time.sleep(0.4)
        in_flight.append(unfinished())
        _rabbitmqctl("close_all_connections", "growbin pipeline fault test")
        time.sleep(0.5)
        in_flight.append(unfinished())
        _rabbitmqctl("stop_app")
        time.sleep(1.0)
    finally:
        _rabbitmqctl("start_app")  # whatever happened, leave RabbitMQ running
    completing.join(120)
    deadline = time.monotonic() + 120
    while unfinished() and time.monotonic() < deadline:
        time.sleep(0.2)

    with db.engine().connect() as conn:
        statuses = dict(
            conn.execute(
                select(jobs.jobs.c.status, func.count()).group_by(jobs.jobs.c.status)
            ).all()
        )
        reasons = dict(
            conn.execute(
                select(jobs.jobs.c.error_code, func.count())
                .where(jobs.jobs.c.status == "failed")
                .group_by(jobs.jobs.c.error_code)
            ).all()
        )
        results = conn.execute(select(func.count()).select_from(jobs.results)).scalar()
        stamps = conn.execute(
            select(jobs.job_stages.c.stage, func.count()).group_by(jobs.job_stages.c.stage)
        ).all()
    system.stop()
    print(
        f"\npipeline over RabbitMQ: {JOBS} jobs, in flight at the faults {in_flight}, "
        f"2 restarts, upload-complete retried {retries['upload_complete']}x; "
        f"statuses {statuses}, failure reasons {reasons}, results {results}"
    )
    assert sum(statuses.values()) == JOBS
    assert statuses.get("completed", 0) + statuses.get("failed", 0) == JOBS, "a job was lost"
    assert all(code for code in reasons), "a failure without a reason"
    assert results == statuses.get("completed", 0), "a result saved twice or not at all"
    assert all(count <= JOBS for _, count in stamps), "a stage stamped twice"
    assert statuses.get("completed", 0) >= JOBS - 5

"""Pipeline benchmark, local broker: latency with an instant model, throughput with a slow one.

1. upload-complete -> result available with a model that answers at once: one job at a time
   (p50), then N jobs at once (p50/p95), on the in-process broker and over RabbitMQ, each
   against that broker's own floor measured in the same run (four no-op hops); both on the
   embedded default, and with `--services` over RabbitMQ on PostgreSQL and Redis as well, as in
   the cluster.
2. Jobs per second that the AI stages complete when the model takes 3 s per call, against the
   ideal of concurrency / 3 s for one instance (the trigger's pool is the instance's threads).

The model is the tests' fake OpenAI server in a process of its own (`Model`).

Run: `python bench/pipeline.py [--jobs 40] [--single 20] [--slow-jobs 96] [--rabbitmq AMQP_URL
[--services]] [--json F]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import IMAGES  # noqa: E402  (tests/ is on the path from here on)

PHOTO = (IMAGES / "plastic" / "plastic1.jpg").read_bytes()


class Model:
    """The fake OpenAI model (tests/fake_openai.py) in a process of its own, as the real one is
    on another machine: its own work (reading a request with a photo in it, answering) is not
    the pipeline's and does not take the pipeline's interpreter lock. `delay` sets how long
    every answer waits."""

    def __init__(self) -> None:
        self._pipe, child = multiprocessing.Pipe()
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(target=_serve_model, args=(child,), daemon=True)
        self._process.start()
        self.base_url = self._pipe.recv()
        self._delay = 0.0

    @property
    def delay(self) -> float:
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self._pipe.send(seconds)
        self._delay = self._pipe.recv()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._process.terminate()
        self._process.join()


def _serve_model(pipe) -> None:
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as model:
        pipe.send(model.base_url)
        while True:
            model.delay = pipe.recv()
            model.requests.clear()  # kept for tests' checks; a benchmark only fills memory
            pipe.send(model.delay)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """PostgreSQL and Redis from DATABASE_URL and REDIS_URL, the database in a schema of this
    run's own (dropped afterwards): the settings `_system` takes as `settings`."""
    import sqlalchemy

    database = os.environ["DATABASE_URL"]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    try:
        separator = "&" if "?" in database else "?"
        yield {
            "DATABASE_URL": f"{database}{separator}options=-csearch_path%3D{schema}",
            "REDIS_URL": os.environ["REDIS_URL"],
        }
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _system(model_url: str, broker_url: str | None = None, settings: dict | None = None):
    os.environ.update(
        {
            "GROWBIN_DATA_DIR": tempfile.mkdtemp(prefix="growbin-bench-"),
            "GROWBIN_PUBLIC_URL": "http://localhost",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": model_url,
            "OPENAI_TIMEOUT": "30",
        }
    )
    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "S3_BUCKET"):
        os.environ.pop(name, None)
    os.environ.update(settings or {})  # the embedded default unless told otherwise
    if broker_url:  # the same system with the RabbitMQ-backed broker, under a name of its own
        os.environ.update({"BROKER_URL": broker_url, "BROKER_NAME": f"bench-{os.getpid()}"})
    from conftest import reset_clients

    from knative import local

    reset_clients()
    return local.start(with_cron=False, with_bins=False)


def _delete_rabbit_layout(broker) -> None:
    import pika

    channel = pika.BlockingConnection(pika.URLParameters(os.environ["BROKER_URL"])).channel()
    for queue in [*broker.layout.queues.values(), broker.layout.dlq]:
        channel.queue_delete(queue)
    for exchange in (broker.layout.exchange, broker.layout.dlx):
        channel.exchange_delete(exchange)
    channel.connection.close()


def _login(client, name: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/login/dev", json={"user": name}).get_json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def _prepare(client, count: int, per_user: int = 20) -> list[tuple[str, dict, str]]:
    """Jobs with their images uploaded (distinct bytes: no vision cache hits), spread over
    users so the per-user analyze rate limit does not bound the benchmark."""
    prepared = []
    for n in range(count):
        if n % per_user == 0:
            headers = _login(client, f"bench-{time.monotonic_ns()}")
            user = client.get("/api/v1/auth/me", headers=headers).get_json()["id"]
        data = PHOTO + os.urandom(8)  # a new image each time: no vision-cache hits
        created = client.post(
            "/api/v1/waste/analyze",
            headers=headers,
            json={"content_type": "image/jpeg", "content_length": len(data)},
        ).get_json()
        fields = dict(created["upload"]["fields"])
        fields["file"] = (io.BytesIO(data), "p.jpg", "image/jpeg")
        client.post("/_storage/upload", data=fields, content_type="multipart/form-data")
        prepared.append((created["job_id"], headers, user))
    return prepared


def _run(client, prepared: list[tuple[str, dict, str]]) -> tuple[list[float], float, float]:
    """Complete every upload at once, as that many app users would: one thread each posts its
    upload-complete when all are ready, then waits for the final view to be pushed, as the
    app's progress stream hears it (polling would take the interpreter from the stages it
    measures). Per-job latency, the batch's wall time and the process's CPU seconds over it:
    the stages share one interpreter here, so the batch cannot end before its CPU is spent.
    Every job must complete: a failed one would flatter the figures, so it stops the run."""
    from shared.core import streams
    from shared.waste import progress

    latency: dict[str, float] = {}
    failed: list[str] = []
    ready = threading.Barrier(len(prepared) + 1)

    def job(job_id: str, headers: dict, inbox: streams.Inbox) -> None:
        own = client.application.test_client()  # a client each: their cookies are their own
        try:
            ready.wait()
            start = time.perf_counter()
            own.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
            while True:
                view = inbox.get(120)
                if view is None or view is streams.RESYNC:
                    failed.append(f"job {job_id}: no final view within 120 s")
                    return
                if view["status"] in progress.FINAL:
                    latency[job_id] = time.perf_counter() - start
                    if view["status"] == "failed":
                        failed.append(f"job {job_id} failed: {view['error']}")
                    return
        finally:
            inbox.close()

    users = [
        threading.Thread(target=job, args=(job_id, headers, progress.PROGRESS.watch(job_id)))
        for job_id, headers, _ in prepared
    ]
    for user in users:
        user.start()
    ready.wait()
    cpu, begin = time.process_time(), time.perf_counter()
    for user in users:
        user.join()
    elapsed, cpu = time.perf_counter() - begin, time.process_time() - cpu
    if failed:
        raise SystemExit("; ".join(failed))
    return list(latency.values()), elapsed, cpu


def _broker_floor(rabbitmq: str | None = None, hops: int = 4, samples: int = 40) -> list[float]:
    """The broker's own cost, measured beside the pipeline: an event through `hops` no-op
    Triggers in a chain, on the in-process broker or over RabbitMQ (as the stages are)."""
    from eventing.broker import LocalBroker
    from eventing.rabbitmq import RabbitBroker
    from shared.core import events
    from shared.core.registry import Function, Scaling

    finished = threading.Event()

    def hop(n: int):
        def handler(event):
            if n + 1 < hops:
                broker.publish(events.make(f"bench.hop{n + 1}", {}))
            else:
                finished.set()

        return Function(
            name=f"hop{n}",
            module="functions.bench",
            kind="event",
            summary="",
            handler=handler,
            filter={"type": f"bench.hop{n}"},
            scaling=Scaling(threads=4),
        )

    functions = [hop(n) for n in range(hops)]
    if rabbitmq:
        broker = RabbitBroker(functions, rabbitmq, f"bench-floor-{os.getpid()}")
    else:
        broker = LocalBroker(functions)
    times = []
    try:
        for _ in range(samples):
            finished.clear()
            start = time.perf_counter()
            broker.publish(events.make("bench.hop0", {}))
            if not finished.wait(10):
                raise SystemExit("the broker floor's event did not arrive")
            times.append(time.perf_counter() - start)
    finally:
        broker.close()
        if rabbitmq:
            _delete_rabbit_layout(broker)
    return times


@contextlib.contextmanager
def warmed(
    model_url: str, rabbitmq: str | None = None, settings: dict | None = None
) -> Iterator[Any]:
    """A test client of a started system that has run one job (its first imports, connections
    and search index are behind it); stopped afterwards, its RabbitMQ layout deleted."""
    system = _system(model_url, rabbitmq, settings)
    try:
        client = system.app.test_client()
        _run(client, _prepare(client, 1))
        yield client
    finally:
        system.stop()
        if rabbitmq:
            _delete_rabbit_layout(system.broker)


def _latency(
    model_url: str,
    jobs: int,
    single: int,
    rabbitmq: str | None = None,
    settings: dict | None = None,
) -> dict:
    """One job at a time (`single` of them), then `jobs` at once, then the broker's floor."""
    with warmed(model_url, rabbitmq, settings) as client:
        alone = [_run(client, _prepare(client, 1)) for _ in range(single)]
        latencies, elapsed, cpu = _run(client, _prepare(client, jobs))
    floor = _broker_floor(rabbitmq)
    return {
        "jobs": jobs,
        "one_job_p50_ms": round(statistics.median(run[0][0] for run in alone) * 1000, 1),
        "one_job_cpu_ms": round(statistics.median(run[2] for run in alone) * 1000, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        # One interpreter runs every stage of every job here (and accepts the uploads one at a
        # time): the whole batch cannot end before its CPU is spent, however it is arranged.
        "batch_ms": round(elapsed * 1000, 1),
        "batch_cpu_ms": round(cpu * 1000, 1),
        "broker_floor_p50_ms": round(statistics.median(floor) * 1000, 2),
    }


# The latency runs in a report, as printed.
LATENCIES = (
    ("latency", "local broker"),
    ("latency_rabbitmq", "RabbitMQ"),
    ("latency_cluster", "RabbitMQ, PostgreSQL+Redis"),
)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--single", type=int, default=20, help="jobs run one at a time")
    parser.add_argument("--slow-jobs", type=int, default=96)
    parser.add_argument("--delay", type=float, default=3.0)
    parser.add_argument("--rabbitmq", metavar="AMQP_URL", help="also measure over RabbitMQ")
    parser.add_argument(
        "--services",
        action="store_true",
        help="and over RabbitMQ on PostgreSQL and Redis (DATABASE_URL, REDIS_URL) as well",
    )
    parser.add_argument("--json")
    args = parser.parse_args()

    from shared.core.registry import MODEL_BOUND

    report: dict = {}
    with contextlib.ExitStack() as stack:
        # Read before the first system clears them from the environment.
        cluster = stack.enter_context(services()) if args.rabbitmq and args.services else None
        model = stack.enter_context(Model())
        report["latency"] = _latency(model.base_url, args.jobs, args.single)
        if args.rabbitmq:  # the same with the RabbitMQ-backed broker
            report["latency_rabbitmq"] = _latency(
                model.base_url, args.jobs, args.single, args.rabbitmq
            )
        if cluster:  # and on the cluster's database and cache
            report["latency_cluster"] = _latency(
                model.base_url, args.jobs, args.single, args.rabbitmq, cluster
            )

        model.delay = args.delay
        system = _system(model.base_url)
        try:
            client = system.app.test_client()
            _, elapsed, _ = _run(client, _prepare(client, args.slow_jobs))
        finally:
            system.stop()
        ideal = MODEL_BOUND.concurrency / args.delay
        # Three stages wait on the model (vision, choice, phrasing); pipelined, each holds its
        # own pool, so the last job's model waits after the first are what the pipe adds.
        measured = args.slow_jobs / (elapsed - 2 * args.delay)
        report["throughput"] = {
            "jobs": args.slow_jobs,
            "model_delay_s": args.delay,
            "concurrency": MODEL_BOUND.concurrency,
            "elapsed_s": round(elapsed, 2),
            "jobs_per_s": round(measured, 2),
            "ideal_jobs_per_s": round(ideal, 2),
            "ratio": round(measured / ideal, 2),
        }

    for key, label in LATENCIES:
        if key in report:
            lat = report[key]
            print(
                f"{'pipeline, ' + label:36} one job p50 {lat['one_job_p50_ms']:6.1f} ms "
                f"(CPU {lat['one_job_cpu_ms']:.1f} ms)  {lat['jobs']} at once p50 "
                f"{lat['p50_ms']:7.1f} / p95 {lat['p95_ms']:7.1f} ms, "
                f"all in {lat['batch_ms']:.0f} ms "
                f"(CPU {lat['batch_cpu_ms']:.0f} ms)  (broker floor, 4 hops, p50 "
                f"{lat['broker_floor_p50_ms']} ms)"
            )
    thr = report["throughput"]
    print(
        f"{'AI throughput (model 3 s)':36} {thr['jobs_per_s']:6.2f} jobs/s  "
        f"ideal {thr['ideal_jobs_per_s']:.2f}  ratio {thr['ratio']:.2f} (target >= 0.90)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

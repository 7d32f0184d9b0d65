"""Pipeline benchmark, local broker: latency with an instant model, throughput with a slow one.

1. upload-complete -> result available, p50/p95 over N jobs with a model that answers at once,
   against the broker's own floor measured in the same run (four no-op hops).
2. Jobs per second that the AI stages complete when the model takes 3 s per call, against the
   ideal of concurrency / 3 s for one instance (the trigger's pool is the instance's threads).

Run: `python bench/pipeline.py [--jobs 40] [--slow-jobs 96] [--rabbitmq AMQP_URL] [--json F]`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import IMAGES  # noqa: E402  (tests/ is on the path from here on)

PHOTO = (IMAGES / "plastic" / "plastic1.jpg").read_bytes()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _system(model_url: str, broker_url: str | None = None):
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


def _run(client, prepared: list[tuple[str, dict, str]]) -> tuple[list[float], float]:
    """Complete every upload at once; per-job latency until the result is readable. Every job
    must complete: a failed one would flatter the figures, so it stops the benchmark."""
    from shared.waste import jobs

    started: dict[str, float] = {}
    done: dict[str, float] = {}
    begin = time.perf_counter()
    for job_id, headers, _ in prepared:
        started[job_id] = time.perf_counter()
        client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
    while len(done) < len(prepared):
        for job_id, _, user in prepared:
            if job_id in done:
                continue
            view = jobs.status(user, job_id)
            if view["status"] == "failed":
                raise SystemExit(f"job {job_id} failed: {view['error']}")
            if view["status"] == "completed":
                done[job_id] = time.perf_counter()
        time.sleep(0.002)
    elapsed = time.perf_counter() - begin
    return [done[j] - started[j] for j, _, _ in prepared], elapsed


def _broker_floor(system, hops: int = 4, samples: int = 40) -> list[float]:
    """The local broker's own cost: an event through `hops` no-op Triggers in a chain."""
    from eventing.broker import LocalBroker
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

    broker = LocalBroker([hop(n) for n in range(hops)])
    times = []
    try:
        for _ in range(samples):
            finished.clear()
            start = time.perf_counter()
            broker.publish(events.make("bench.hop0", {}))
            finished.wait(10)
            times.append(time.perf_counter() - start)
    finally:
        broker.close()
    return times


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--slow-jobs", type=int, default=96)
    parser.add_argument("--delay", type=float, default=3.0)
    parser.add_argument("--rabbitmq", metavar="AMQP_URL", help="also measure over RabbitMQ")
    parser.add_argument("--json")
    args = parser.parse_args()

    from fake_openai import FakeOpenAI

    from shared.core.registry import MODEL_BOUND

    report: dict = {}
    with FakeOpenAI() as model:
        system = _system(model.base_url)
        client = system.app.test_client()
        _run(client, _prepare(client, 1))  # warm up: first imports, first connections
        latencies, _ = _run(client, _prepare(client, args.jobs))
        floor = _broker_floor(system)
        report["latency"] = {
            "jobs": args.jobs,
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
            "broker_floor_p50_ms": round(statistics.median(floor) * 1000, 2),
        }

        model.delay = args.delay
        _, elapsed = _run(client, _prepare(client, args.slow_jobs))
        ideal = MODEL_BOUND.concurrency / args.delay
        # Two stages wait on the model (vision, phrasing); pipelined, each holds its own pool.
        measured = args.slow_jobs / (elapsed - args.delay)  # the last job's second model wait
        report["throughput"] = {
            "jobs": args.slow_jobs,
            "model_delay_s": args.delay,
            "concurrency": MODEL_BOUND.concurrency,
            "elapsed_s": round(elapsed, 2),
            "jobs_per_s": round(measured, 2),
            "ideal_jobs_per_s": round(ideal, 2),
            "ratio": round(measured / ideal, 2),
        }
        system.stop()

        if args.rabbitmq:  # the same latency with the RabbitMQ-backed broker
            system = _system(model.base_url, args.rabbitmq)
            model.delay = 0
            try:
                client = system.app.test_client()
                _run(client, _prepare(client, 1))
                latencies, _ = _run(client, _prepare(client, args.jobs))
                report["latency_rabbitmq"] = {
                    "jobs": args.jobs,
                    "p50_ms": round(statistics.median(latencies) * 1000, 1),
                    "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
                }
            finally:
                system.stop()
                _delete_rabbit_layout(system.broker)

    lat, thr = report["latency"], report["throughput"]
    if "latency_rabbitmq" in report:
        rabbit = report["latency_rabbitmq"]
        print(
            f"{'pipeline latency over RabbitMQ':40} p50 {rabbit['p50_ms']:8.1f} ms  "
            f"p95 {rabbit['p95_ms']:8.1f} ms"
        )
    print(
        f"{'pipeline latency (instant model)':40} p50 {lat['p50_ms']:8.1f} ms  "
        f"p95 {lat['p95_ms']:8.1f} ms  (broker floor p50 {lat['broker_floor_p50_ms']} ms)"
    )
    print(
        f"{'AI throughput (model 3 s)':40} {thr['jobs_per_s']:6.2f} jobs/s  "
        f"ideal {thr['ideal_jobs_per_s']:.2f}  ratio {thr['ratio']:.2f} (target >= 0.80)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

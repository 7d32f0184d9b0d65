"""Progress streams at scale: 1,000 open at once on one instance, beside 10 in the same run.

One server process, as the `waste_status_events` Knative Service runs it (functions-framework,
gunicorn gthread, WORKERS/THREADS from the declaration), on PostgreSQL (a schema of its own)
and the Redis at REDIS_URL. The clients are one asyncio loop here; every stream follows a job
of its own. For each count it reports:

- memory: the server's resident set (master and worker) idle, and with the streams open;
- Redis connections the server holds (its own sockets to Redis, read from /proc), and the
  server's subscriptions to the progress channel (PUBSUB NUMSUB);
- the delay from a stage change (the moment the jobs publish it) to the event arriving at its
  client, p50/p95, over every stage of every job (each job goes queued -> ... -> done, one
  stage change after another as fast as the database takes them);
- whether every stream got every event, in order, and ended after the final one.

Run: `python bench/stream.py [--streams 1000] [--baseline 10] [--json out.json]`
(needs DATABASE_URL and REDIS_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import serving  # noqa: E402

STAGES = ("queued", "analyze", "classify", "feedback", "save", "done")
IDS = [0, 10, 25, 50, 75, 90, 100]
REDIS_PORT_HEX = ":18EB"  # 6379
PUBLISHERS = 8  # threads moving jobs forward at once


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def rss_mib(pid: int) -> float:
    """The resident memory of the server now (master and workers)."""
    total = 0
    for p in serving._family(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


def redis_connections(pid: int) -> int:
    """Established TCP connections from the server's processes to Redis (port 6379)."""
    inodes: set[str] = set()
    for p in serving._family(pid):
        for fd in Path(f"/proc/{p}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(REDIS_PORT_HEX) and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


class Clients:
    """Streams read by one asyncio loop: each event's arrival time, by (job, id)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.arrived: dict[tuple[str, int], float] = {}
        self.ids: dict[str, list[int]] = {}
        self.opened = 0
        self.ended = 0

    async def follow(self, job_id: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 16)
        # HTTP/1.0: the body is the stream itself, ended by the server closing it.
        writer.write(
            f"GET /api/v1/waste/status/{job_id}/events HTTP/1.0\r\nHost: bench\r\n"
            f"Authorization: Bearer {self.token}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        self.opened += 1
        seen = self.ids.setdefault(job_id, [])
        try:
            while True:
                block = await reader.readuntil(b"\n\n")
                now = time.monotonic()
                for line in block.decode().split("\n"):
                    if line.startswith("id: "):
                        event_id = int(line[4:])
                        seen.append(event_id)
                        self.arrived[(job_id, event_id)] = now
        except asyncio.IncompleteReadError:
            self.ended += 1  # the server ended the stream
        finally:
            writer.close()


def _wrap_publish(published: dict[tuple[str, int], float]) -> None:
    """Stamp the moment each view is published (the stage change, as streams see it)."""
    from shared.waste import progress

    original = progress.publish

    def stamped(view: dict, via=None) -> None:
        published[(view["job_id"], progress.event_id(view))] = time.monotonic()
        original(view, via)

    progress.publish = stamped


def _advance_all(job_ids: list[str]) -> float:
    """Every job through every stage, as pipeline workers would move them (PUBLISHERS at a
    time, as fast as the database takes the steps); stage changes per second."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.waste import jobs

    began = time.monotonic()
    with ThreadPoolExecutor(PUBLISHERS) as pool:
        for stage in STAGES:
            list(pool.map(lambda job_id, stage=stage: jobs.advance(job_id, stage), job_ids))
    return len(job_ids) * len(STAGES) / (time.monotonic() - began)


def _subscribers() -> int:
    from shared.core import cache
    from shared.waste import progress

    channel = progress.PROGRESS.channel
    return dict(cache.client().pubsub_numsub(channel))[channel]


async def _measure(
    count: int, user_id: str, clients: Clients, server_pid: int, published: dict, others: int
) -> dict:
    """`others`: subscribers of the channel that are not the server (before it started)."""
    from shared.waste import jobs

    job_ids = [jobs.create(user_id, "image/jpeg", 1000, "pet")["id"] for _ in range(count)]
    rss_before = rss_mib(server_pid)
    tasks = []
    began = time.monotonic()
    for i in range(0, count, 50):  # open in waves, as clients arrive: not one SYN flood
        tasks += [asyncio.create_task(clients.follow(j)) for j in job_ids[i : i + 50]]
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 120
    while sum(bool(clients.ids.get(j)) for j in job_ids) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {clients.opened} of {count} streams opened")
        await asyncio.sleep(0.05)
    open_s = time.monotonic() - began
    await asyncio.sleep(1)  # settled: what the open streams hold
    held = {
        "rss_mib": rss_mib(server_pid),
        "redis_connections": redis_connections(server_pid),
        "server_subscriptions": _subscribers() - others,
    }
    rate = await asyncio.to_thread(_advance_all, job_ids)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    delays = [
        (clients.arrived[key] - published[key]) * 1000
        for key in published
        if key[0] in set(job_ids) and key in clients.arrived and key[1] > 0
    ]
    complete = sum(clients.ids[j] == IDS for j in job_ids)
    return {
        "streams": count,
        "opened_in_s": round(open_s, 2),
        "rss_idle_mib": rss_before,
        **held,
        "rss_per_stream_kib": round((held["rss_mib"] - rss_before) * 1024 / count, 1),
        "stage_changes_per_s": round(rate, 1),
        "events": len(delays),
        "p50_ms": round(_percentile(delays, 0.5), 2),
        "p95_ms": round(_percentile(delays, 0.95), 2),
        "max_ms": round(max(delays), 2),
        "streams_complete": complete,
        "streams_ended": sum(1 for j in job_ids if clients.ids[j][-1:] == [100]),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=10)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workers", type=int, help="instead of the declaration's (to compare)")
    parser.add_argument("--threads", type=int, help="instead of the declaration's (to compare)")
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("bench/stream.py measures on the real Redis: set DATABASE_URL and REDIS_URL")
    with serving.prepared(services=True) as ready:
        os.environ.update(ready.env)
        from functions import load_all
        from shared.auth import accounts
        from shared.core.settings import settings

        settings.cache_clear()
        declared = load_all()["waste_status_events"]
        user = accounts.find_or_create("dev", "bench", "bench")
        port = serving.free_port()
        others = _subscribers()
        workers = args.workers or declared.scaling.workers
        threads = args.threads or declared.scaling.threads
        server = serving.start(
            ROOT / declared.source, declared.name, ready.env, workers, threads, port
        )
        try:
            import requests

            serving.first_response(
                lambda: requests.get(
                    f"http://127.0.0.1:{port}/api/v1/waste/status/none/events",
                    headers={"Authorization": f"Bearer {ready.token}"},
                    timeout=5,
                )
            )
            published: dict[tuple[str, int], float] = {}
            _wrap_publish(published)
            clients = Clients(port, ready.token)
            results = {
                "server": {
                    "workers": workers,
                    "threads": threads,
                    "worker_class": "gthread (functions-framework's; gevent is not selectable)",
                }
            }
            for label, count in (("baseline", args.baseline), ("streams", args.streams)):
                results[label] = asyncio.run(
                    _measure(count, user["id"], clients, server.pid, published, others)
                )
                print(label, json.dumps(results[label]), flush=True)
        finally:
            serving.stop(server)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Profiles of the pipeline benchmark (bench/pipeline.py): where a job's CPU goes, and its trips.

  run     bench/pipeline.py's latency jobs alone, on one broker (and with `--services` on
          PostgreSQL and Redis, as `count`): `single` one at a time, then `jobs` at once,
          `--repeat` rounds, every upload made first; `--record` attaches py-spy (its own
          options, split on spaces) around those jobs only:
          `python bench/profile.py run --record "--gil --nonblocking --format raw -o local.txt"`
  shares  py-spy's raw (collapsed) stacks, plain or gzipped -> the share of samples by kind
          (library) and by stage, as markdown: `python bench/profile.py shares local.txt ...`
  count   one job's database transactions and statements, Redis commands and round trips, and
          broker publishes, by stage, and its thread CPU traced by stage and part (model
          client, search, database, Redis); on the embedded default, or on services
          (`--services`: DATABASE_URL and REDIS_URL from the environment, a schema of its own),
          and over RabbitMQ (`--rabbitmq AMQP_URL`). `--cpu-only` leaves the counting out.

docs/profiles/README.md says how the committed flame graphs were made and what they show.

A sample's kind is that of its innermost frame that belongs to a known kind (so the socket a
Redis call writes to counts as the cache, the json a response encodes as json); its stage is the
pipeline function on its stack (functions/pipeline.py), or the upload-complete request a job's
thread makes. Samples outside the timed jobs (start-up, the benchmark's own uploads, the broker
floor) are counted apart, by phase, and left out of both shares.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import gzip
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Kinds, tried from the innermost frame outwards: a frame's "func (file:line)" text contains one
# of the markers. The first kind that matches any frame (innermost first) is the sample's kind.
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("imports (first use)", ("<frozen importlib",)),
    ("json", ("(json/", "orjson", "simplejson")),
    ("logging", ("(logging/", "shared/core/telemetry.py", "shared/core/errors.py")),
    ("database", ("sqlalchemy/", "sqlite3/", "psycopg", "shared/core/db.py", "alembic/")),
    ("cache (shared/core/cache.py, redis)", ("core/cache.py", "(redis/", "core/redis_client.py")),
    ("search", ("shared/waste/search/",)),
    ("model client (openai, httpx)", ("(openai/", "(httpx", "(httpcore", "(h11/", "(anyio/")),
    (
        "broker delivery",
        (
            "eventing/",
            "pika/",
            "cloudevents/",
            "functions_framework/",
            "shared/core/events.py",
        ),
    ),
    ("Flask/Werkzeug, test client", ("flask/", "werkzeug/")),
    ("app code (shared/, functions/, knative/)", ("(shared/", "(functions/", "(knative/")),
)
OTHER_KIND = "other (stdlib, threads)"

STAGES = ("image_analyze", "classification_identify", "feedback_generate", "result_save")
UPLOAD_COMPLETE = "upload-complete (the job's request)"
PROGRESS = "progress stream (the job's thread waiting)"
BROKER_ONLY = "broker threads, no stage"
PARTIAL = "stack read in part (its outer frames missing)"
HARNESS = "benchmark harness (main thread: starts, joins the jobs' threads)"

# Phases outside the timed jobs, by a frame of the main thread's stack.
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("benchmark uploads (_prepare)", ("_prepare (bench/pipeline.py",)),
    ("broker floor", ("_broker_floor", "hop.<locals>.handler")),
    ("start-up, tear-down", ("_system (", "Model.", "_delete_rabbit_layout", "Local.stop")),
)


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def kind_of(frames: list[str]) -> str:
    """The kind of the innermost frame that has one (KINDS), else OTHER_KIND."""
    for frame in reversed(frames):
        for kind, markers in KINDS:
            if any(marker in frame for marker in markers):
                return kind
    return OTHER_KIND


def phase_of(frames: list[str]) -> str | None:
    """The phase outside the timed jobs a sample belongs to, or None for the jobs' own."""
    if not frames or not frames[0]:
        return "no Python frame"
    for phase, markers in PHASES:
        if any(marker in frame for frame in frames for marker in markers):
            return phase
    if frames[0].startswith("<module>"):
        if any(name in frame for frame in frames for name in ("_run (bench/", "run (bench/")):
            return None  # the main thread starting the jobs' threads and waiting for them
        return "start-up, tear-down"  # module-level imports, interpreter exit
    return None  # a thread's (or a stack read only in part: see stage_of)


def stage_of(frames: list[str]) -> str:
    """The pipeline stage on the stack, or what else a thread of the jobs was doing."""
    for frame in frames:
        name = frame.split(" (", 1)[0]
        if name in STAGES and "functions/pipeline.py" in frame:
            return name
    if frames[0].startswith("<module>"):
        return HARNESS
    if not frames[0].startswith("Thread._bootstrap"):
        return PARTIAL
    if any("_run.<locals>.job" in frame for frame in frames):
        posting = any("Client.post" in frame or "test_client" in frame for frame in frames)
        return UPLOAD_COMPLETE if posting else PROGRESS
    return BROKER_ONLY


def read_collapsed(path: Path) -> Iterator[tuple[list[str], int]]:
    """(frames, samples) per line of py-spy's raw output: `frame;frame;... count` (gzipped
    when the name ends in .gz)."""
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            yield _frames(stack), int(count)


def shares(paths: Iterable[Path]) -> str:
    """Markdown tables: samples by phase, then the jobs' samples by kind and by stage."""
    phases: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    by_stage_kind: collections.Counter[tuple[str, str]] = collections.Counter()
    for path in paths:
        for frames, count in read_collapsed(path):
            phase = phase_of(frames)
            phases[phase or "the timed jobs"] += count
            if phase is None:
                kind, stage = kind_of(frames), stage_of(frames)
                kinds[kind] += count
                stages[stage] += count
                by_stage_kind[stage, kind] += count
    total, jobs = sum(phases.values()), sum(kinds.values())
    out = [_table("phase", phases, total), "", _table("kind", kinds, jobs), ""]
    out.append(_table("stage", stages, jobs))
    out += ["", "Each stage's top kinds (share of the stage):", ""]
    for stage, samples in stages.most_common():
        top = sorted(
            ((n, k) for (s, k), n in by_stage_kind.items() if s == stage),
            reverse=True,
        )[:4]
        parts = ", ".join(f"{k} {100 * n / samples:.0f}%" for n, k in top)
        out.append(f"- {stage}: {parts}")
    return "\n".join(out)


def _table(what: str, counts: collections.Counter[str], total: int) -> str:
    rows = [f"| {what} | samples | share |", "| --- | ---: | ---: |"]
    rows += [
        f"| {name} | {n} | {100 * n / max(total, 1):.1f}% |" for name, n in counts.most_common()
    ]
    rows.append(f"| all | {total} | 100% |")
    return "\n".join(rows)


# -- run ----------------------------------------------------------------------------------------


def run(
    jobs: int,
    single: int,
    rabbitmq: str | None,
    record: list[str],
    repeat: int = 1,
    services: bool = False,
) -> None:
    """bench/pipeline.py's latency jobs, `repeat` times: `single` one at a time, then `jobs` at
    once, after a warm-up job and with every upload made first; `record` (py-spy's options,
    e.g. `--gil --format raw -o F`) records this process over the jobs alone."""
    sys.path.insert(0, str(ROOT))
    from bench import pipeline as bench

    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(bench.services()) if services else None
        model = stack.enter_context(bench.Model())
        client = stack.enter_context(bench.warmed(model.base_url, rabbitmq, settings))
        rounds = [
            (bench._prepare(client, single), bench._prepare(client, jobs)) for _ in range(repeat)
        ]
        with _recording(record):
            for alone, batch in rounds:
                cpu = time.process_time()
                for job in alone:
                    bench._run(client, [job])
                one_cpu = (time.process_time() - cpu) / max(single, 1)
                latencies, elapsed, batch_cpu = bench._run(client, batch)
                print(
                    f"{single} jobs one at a time: CPU {one_cpu * 1000:.1f} ms each; "
                    f"{jobs} at once: {elapsed * 1000:.0f} ms, CPU {batch_cpu * 1000:.0f} ms "
                    f"({batch_cpu / jobs * 1000:.1f} ms a job), "
                    f"p50 {statistics.median(latencies) * 1000:.0f} ms"
                )


@contextlib.contextmanager
def _recording(options: list[str]) -> Iterator[None]:
    """py-spy recording this process while the block runs (nothing when `options` is empty)."""
    if not options:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(os.getpid()), *options]
    process = subprocess.Popen(command)
    time.sleep(1)  # attached (it says nothing a pipe could wait for)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its file on ^C
        process.wait(60)


# -- count --------------------------------------------------------------------------------------


class Tally:
    """Counts by (what, stage), the stage found on the calling thread's stack."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.counting = False
        self._lock = threading.Lock()
        self._inside = threading.local()  # the labels being timed on this thread

    def timed(self, owner: Any, name: str, label: str) -> None:
        """Add the thread CPU time of `owner.name`'s calls to `cpu ms: label` (the outermost
        call only, when one timed under the same label calls another)."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            inside = self._inside.__dict__.setdefault("labels", set())
            if not self.counting or label in inside:
                return original(*args, **kwargs)
            inside.add(label)
            start = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                inside.discard(label)
                self.add(f"cpu ms: {label}", (time.thread_time() - start) * 1000)

        setattr(owner, name, timed)

    def add(self, what: str, n: int = 1) -> None:
        if not self.counting:
            return
        stage = _current_stage()
        with self._lock:
            self.counts[what, stage] += n

    def table(self, per: int = 1) -> str:
        """A row per thing counted, a column per stage: the count per job (over `per` jobs)."""
        known = [*STAGES, UPLOAD_COMPLETE]
        columns = known + sorted({stage for _, stage in self.counts} - set(known))
        whats = sorted({what for what, _ in self.counts})
        rows = [
            "| | " + " | ".join(columns) + " | all |",
            "| --- |" + " ---: |" * (len(columns) + 1),
        ]
        for what in whats:
            values = [self.counts[what, c] / per for c in columns]
            cells = " | ".join(f"{v:.3g}" for v in [*values, sum(values)])
            rows.append(f"| {what} | {cells} |")
        return "\n".join(rows)


def _current_stage() -> str:
    """The stage whose code is on the calling thread's stack, else what the thread is."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name in STAGES and code.co_filename.endswith("functions/pipeline.py"):
            return code.co_name
        if code.co_name == "waste_upload_complete":
            return UPLOAD_COMPLETE
        frame = frame.f_back
    name = threading.current_thread().name
    if name.startswith("amqp"):
        return "RabbitMQ's threads (pika)"
    if name.endswith("(job)"):
        return "the job's thread (its progress stream)"
    return "other: " + re.sub(r"[-_]?\d+", "", name)


def _wrap(owner: type, name: str, count: Callable[..., None]) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        count(*args, **kwargs)
        return original(*args, **kwargs)

    setattr(owner, name, counted)


def _instrument(tally: Tally) -> None:
    """Count, from outside the code: the database's transactions and statements (SQLAlchemy's
    engine events), Redis's commands and writes (redis-py's connection), broker publishes and
    pika's publishes and acks."""
    import pika.adapters.blocking_connection as pika_blocking
    import redis.connection
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from eventing.broker import LocalBroker
    from eventing.rabbitmq import RabbitBroker

    def autocommit(conn: Any) -> bool:
        return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"

    @event.listens_for(Engine, "begin")
    def _begin(conn: Any) -> None:
        tally.add("db: BEGIN (autocommit reads)" if autocommit(conn) else "db: transactions")

    @event.listens_for(Engine, "commit")
    def _commit(conn: Any) -> None:
        if not autocommit(conn):
            tally.add("db: COMMIT")

    @event.listens_for(Engine, "rollback")
    def _rollback(conn: Any) -> None:
        if not autocommit(conn):
            tally.add("db: ROLLBACK")

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        tally.add(f"db: statements ({verb})")

    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    # The ping a checkout sends when in doubt (shared/core/db.py).
    _wrap(PGDialect_psycopg, "do_ping", lambda *_a: tally.add("db: pings (SELECT 1)"))

    @event.listens_for(Pool, "checkout")
    def _checkout(*_args: Any) -> None:
        tally.add("db: pool checkouts")

    def command(_conn: Any, *args: Any, **_kw: Any) -> None:
        tally.add(f"redis: {str(args[0]).upper()}")

    def commands(_conn: Any, cmds: Any) -> None:
        for args in cmds:
            tally.add(f"redis: {str(args[0]).upper()}")

    connection = redis.connection.AbstractConnection
    _wrap(connection, "send_command", command)
    _wrap(connection, "pack_commands", commands)
    _wrap(connection, "send_packed_command", lambda *_a, **_k: tally.add("redis: writes"))
    for broker in (LocalBroker, RabbitBroker):
        _wrap(broker, "publish", lambda *_a, **_k: tally.add("broker: publish"))
    channel = pika_blocking.BlockingChannel
    for method in ("basic_publish", "basic_ack", "basic_nack"):
        _wrap(
            channel, method, functools.partial(lambda m, *_a, **_k: tally.add(f"pika: {m}"), method)
        )


def _time(tally: Tally) -> None:
    """Thread CPU time, traced (no sampling): each stage's own work (what its function in
    functions/pipeline.py calls, and upload-complete's `_complete`), and within it the model
    client, the search, the database (SQLAlchemy's connect, execute, commit and close) and
    Redis (redis-py's commands and pipelines)."""
    import openai._base_client
    import redis.client
    from sqlalchemy.engine import Connection, Engine

    import functions.waste
    from eventing.broker import LocalBroker
    from eventing.rabbitmq import RabbitBroker
    from shared.waste import messages, pipeline, rules

    for name in ("analyze", "classify", "feedback", "save"):
        tally.timed(pipeline, name, "stage's work (handler)")
    tally.timed(messages, "emit", "stage's work (handler)")
    tally.timed(functions.waste, "_complete", "stage's work (handler)")
    tally.timed(openai._base_client.SyncAPIClient, "request", "model client")
    tally.timed(rules, "search", "search")
    tally.timed(rules, "confident", "search")
    tally.timed(Engine, "connect", "database")
    for name in ("execute", "close", "_begin_impl", "_commit_impl", "_rollback_impl"):
        tally.timed(Connection, name, "database")
    tally.timed(redis.client.Redis, "execute_command", "redis")
    tally.timed(redis.client.Pipeline, "execute", "redis")
    for broker in (LocalBroker, RabbitBroker):
        tally.timed(broker, "publish", "broker publish")


def count(services: bool, rabbitmq: str | None, jobs: int, cpu_only: bool = False) -> str:
    """One job's trips and traced CPU: a warm-up job, then `jobs` jobs one at a time, each
    counted from its upload-complete until its final view (and a moment after, for the last
    acks); with the process's CPU per job over the same windows."""
    sys.path.insert(0, str(ROOT))
    from bench import pipeline as bench

    tally = Tally()
    if not cpu_only:  # the counting listeners' own CPU would be the database's
        _instrument(tally)
    _time(tally)
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(bench.services()) if services else None
        model = stack.enter_context(bench.Model())
        client = stack.enter_context(bench.warmed(model.base_url, rabbitmq, settings))
        time.sleep(0.5)
        cpu = 0.0
        for _ in range(jobs):
            prepared = bench._prepare(client, 1)
            tally.counting = True
            start = time.process_time()
            bench._run(client, prepared)
            time.sleep(0.3)  # the last acks and settles after the final view
            cpu += time.process_time() - start
            tally.counting = False
    return tally.table(per=jobs) + f"\n\nProcess CPU per job: {cpu / jobs * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="the latency part of bench/pipeline.py")
    run_parser.add_argument("--jobs", type=int, default=40)
    run_parser.add_argument("--single", type=int, default=20)
    run_parser.add_argument("--rabbitmq", metavar="AMQP_URL")
    run_parser.add_argument("--services", action="store_true", help="PostgreSQL and Redis")
    run_parser.add_argument("--repeat", type=int, default=1, help="rounds, in one recording")
    run_parser.add_argument(
        "--record", default="", help="py-spy record's options, one string: '--gil -o F.svg'"
    )
    shares_parser = commands.add_parser("shares", help="shares of a py-spy raw recording")
    shares_parser.add_argument("paths", nargs="+", type=Path)
    count_parser = commands.add_parser("count", help="one job's round trips and transactions")
    count_parser.add_argument("--services", action="store_true")
    count_parser.add_argument("--rabbitmq", metavar="AMQP_URL")
    count_parser.add_argument("--jobs", type=int, default=5)
    count_parser.add_argument("--cpu-only", action="store_true", help="traced CPU, no counts")
    args = parser.parse_args()
    if args.command == "run":
        run(args.jobs, args.single, args.rabbitmq, args.record.split(), args.repeat, args.services)
    elif args.command == "shares":
        print(shares(args.paths))
    else:
        print(count(args.services, args.rabbitmq, args.jobs, args.cpu_only))


if __name__ == "__main__":
    main()

"""Start function targets the way their Knative Services do, for the benchmarks.

Each target runs as `functions-framework --source <file> --target <name>` under gunicorn with
the WORKERS/THREADS its declaration sets, against a data directory prepared once: migrated,
with a signed-in user and a job, so protected functions answer for real. On the embedded default
(SQLite, in-process cache) or, with `services=True`, on the PostgreSQL (a schema of its own) and
Redis that DATABASE_URL and REDIS_URL name, as in a cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORK = str(Path(sys.executable).parent / "functions-framework")
HELLO = ROOT / "bench" / "hello.py"
COLD_EVENT_ID = "bench-cold-start"


@dataclass
class Prepared:
    env: dict[str, str]
    token: str
    job_id: str


@contextmanager
def prepared(services: bool = False) -> Iterator[Prepared]:
    """`_prepare`d on the embedded default, or on DATABASE_URL (a schema of its own, dropped
    afterwards) and REDIS_URL with `services`."""
    if not services:
        yield _prepare(None)
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = os.environ["DATABASE_URL"]
    _psql(url, f"CREATE SCHEMA {schema}")
    try:
        separator = "&" if "?" in url else "?"
        yield _prepare(f"{url}{separator}options=-csearch_path%3D{schema}")
    finally:
        _psql(url, f"DROP SCHEMA {schema} CASCADE")


def _psql(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def _prepare(database_url: str | None) -> Prepared:
    """A fresh data dir with the schema, a session and one job; on the embedded default unless
    `database_url` is given (REDIS_URL is then kept from the environment)."""
    data = tempfile.mkdtemp(prefix="growbin-bench-")
    dropped = ["DATABASE_URL", "BROKER_URL", "S3_BUCKET", "K_SINK", "OPENAI_API_KEY"]
    if database_url is None:
        dropped.append("REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"GROWBIN_DATA_DIR": data, "GROWBIN_MODE": "local", "PYTHONPATH": str(ROOT)})
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    script = (
        "from shared.auth import accounts, sessions; from shared.core import db; "
        "from shared.waste import jobs; db.migrate(); "
        "u = accounts.find_or_create('dev', 'bench', 'bench'); "
        "print(sessions.start(u)['access_token']); "
        "print(jobs.create(u['id'], 'image/jpeg', 1000, 'pet')['id']); "
        # Each event function has handled COLD_EVENT_ID already, so sending it measures starting
        # up and answering, not the task (a first ping would run a whole import).
        "from functions import load_all; from shared.core import idempotency; "
        "[idempotency.remember(COLD, n) for n, f in load_all().items() if f.kind == 'event']"
    ).replace("COLD", repr(COLD_EVENT_ID))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return Prepared(env=env, token=out[-2], job_id=out[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(
    source: Path,
    target: str,
    env: dict[str, str],
    workers: int,
    threads: int,
    port: int,
    stderr: int | Any = subprocess.DEVNULL,
) -> subprocess.Popen:
    env = {**env, "WORKERS": str(workers), "THREADS": str(threads)}
    return subprocess.Popen(
        [
            FRAMEWORK,
            "--source",
            str(source),
            "--target",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,  # its own process group: `stop` ends master and workers at once
    )


def first_response(send, deadline_s: float = 30.0) -> float:
    """Seconds until `send()` gets an answer below 500 (the process is serving)."""
    begin = time.perf_counter()
    while time.perf_counter() - begin < deadline_s:
        try:
            if send().status_code < 500:
                return time.perf_counter() - begin
        except requests.ConnectionError:
            pass
        time.sleep(0.005)
    raise TimeoutError("no answer")


def _family(pid: int) -> list[int]:
    """A process and its children (the gunicorn master and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid] + ([int(p) for p in children.read_text().split()] if children.exists() else [])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its children have used: unlike wall time, it
    hardly grows when other work shares the machine."""
    ticks = 0
    for p in _family(pid):
        stat = Path(f"/proc/{p}/stat")
        if stat.exists():
            fields = stat.read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of a process and its children (the gunicorn workers)."""
    total = 0
    for p in _family(pid):
        status = Path(f"/proc/{p}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


def stop(process: subprocess.Popen) -> None:
    """End the server and its workers now: a graceful gunicorn shutdown takes as long as a
    start, doubling every benchmark that starts servers, and nothing here needs it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)

"""Start function targets the way their Knative Services do, for the benchmarks.

Each target runs as `functions-framework --source <file> --target <name>` under gunicorn with
the WORKERS/THREADS its declaration sets, against a data directory prepared once: migrated,
with a signed-in user and a job, so protected functions answer for real.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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


def prepare() -> Prepared:
    """A fresh local-mode data dir with the schema, a session and one job."""
    data = tempfile.mkdtemp(prefix="growbin-bench-")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "BROKER_URL", "S3_BUCKET", "K_SINK", "OPENAI_API_KEY")
    }
    env.update({"GROWBIN_DATA_DIR": data, "GROWBIN_MODE": "local", "PYTHONPATH": str(ROOT)})
    script = (
        "from shared import accounts, db, jobs, sessions; db.migrate(); "
        "u = accounts.find_or_create('dev', 'bench', 'bench'); "
        "print(sessions.start(u)['access_token']); "
        "print(jobs.create(u['id'], 'image/jpeg', 1000, 'pet')['id']); "
        # Each event function has handled COLD_EVENT_ID already, so sending it measures starting
        # up and answering, not the task (a first ping would run a whole import).
        "from functions import load_all; from shared import idempotency; "
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
    source: Path, target: str, env: dict[str, str], workers: int, threads: int, port: int
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
        stderr=subprocess.DEVNULL,
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


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of a process and its children (the gunicorn workers)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        status = Path(f"/proc/{p}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()

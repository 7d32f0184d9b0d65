"""Cold start of every function target against a bare functions-framework hello world.

Time from process start to the first answer below 500, under each target's production server
settings (gunicorn, its declared WORKERS x THREADS), median of --runs starts, and the peak
memory of the serving processes. Target: within 1.5x of the hello world for every target.

Each target is also measured against its library floor, started in the same run: the hello world
made to import first every module that is not ours (third-party and standard library) which the
target loads before its first answer, read from an extra start under `python -X importtime`.
target / floor is what our own code costs (importing it, building the app, the first request's
work: connecting, compiling statements); floor / hello is what the libraries cost. Both are
taken in CPU time, which a busy machine disturbs far less than wall time.

The targets run on the embedded default (SQLite, in-process cache) and, when DATABASE_URL and
REDIS_URL are set, again on PostgreSQL and Redis, as they run in a cluster. Besides, the hello
world importing each heavy library the project chose (LIBRARY_GROUPS), alone and together.

Run: `python bench/coldstart.py [--runs 3] [--only NAME] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import serving

OURS = {"shared", "functions", "eventing", "knative", "bench"}
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \| (\s*)(\S+)$")


@dataclass(frozen=True)
class Start:
    """One target as its Service starts it: source file, target name, gunicorn settings."""

    source: Path
    target: str
    workers: int = 1
    threads: int = 16

    def run(self, env: dict[str, str], port: int, **options) -> subprocess.Popen:
        return serving.start(
            self.source, self.target, env, self.workers, self.threads, port, **options
        )


def _sender(function, port: int, prepared: serving.Prepared) -> Callable[[], requests.Response]:
    base = f"http://127.0.0.1:{port}"
    if function is None:
        return lambda: requests.get(base + "/", timeout=5)
    if function.kind == "http":
        path = re.sub(r"\{job_id\}", prepared.job_id, function.path)
        path = re.sub(r"\{\w+\}", "x", path)
        headers = {"Authorization": f"Bearer {prepared.token}"}
        return lambda: requests.request(
            function.method,
            base + path,
            headers=headers,
            json={} if function.method != "GET" else None,
            timeout=5,
        )
    from cloudevents.conversion import to_binary

    from shared.core.events import make

    attributes = {k: v for k, v in function.filter.items() if k != "type"}
    event = make(
        function.filter["type"],
        _cold_data(function.filter["type"]),
        event_id=serving.COLD_EVENT_ID,
        **attributes,
    )
    headers, body = to_binary(event)
    return lambda: requests.post(base + "/", headers=headers, data=body, timeout=30)


def _cold_data(event_type: str) -> dict[str, Any]:
    """The cold event's data: a job that does not exist, as a whole message where the type is
    one of the pipeline's (a stage refuses a message missing a field, so that the broker
    retries and dead-letters it: a 500 that would never end the wait for a first answer)."""
    from shared.waste import messages

    data: dict[str, Any] = {"job_id": "bench-none"}
    kind = messages.TYPES.get(event_type)
    for f in dataclasses.fields(kind) if kind else ():
        if f.name in data or f.default is not MISSING or f.default_factory is not MISSING:
            continue
        kind_of = str(f.type)
        data[f.name] = {"str": "", "float": 0.0}.get(
            kind_of, {} if kind_of.startswith("dict") else []
        )
    return data


def measure(starts: list[tuple[Start, Any]], prepared: serving.Prepared, runs: int) -> list[dict]:
    """Cold starts of each (start, function it is), one of each per round for `runs` rounds, so
    a load that comes and goes on the machine falls on all of them alike."""
    samples: list[tuple[list[float], list[float], list[float]]] = [([], [], []) for _ in starts]
    for _ in range(runs):
        for (start, function), (times, cpu, memory) in zip(starts, samples, strict=True):
            port = serving.free_port()
            send = _sender(function, port, prepared)  # built before the clock starts
            process = start.run(prepared.env, port)
            try:
                times.append(serving.first_response(send))
                cpu.append(serving.cpu_seconds(process.pid))
                memory.append(serving.peak_rss_mib(process.pid))
            finally:
                serving.stop(process)
    return [
        {
            "cold_start_s": round(statistics.median(times), 3),
            "cpu_s": round(statistics.median(cpu), 3),
            "peak_rss_mib": max(memory),
        }
        for times, cpu, memory in samples
    ]


def loaded_modules(start: Start, function, prepared: serving.Prepared) -> list[str]:
    """The modules a start imports before its first answer, in the order they finished."""
    port = serving.free_port()
    send = _sender(function, port, prepared)
    with tempfile.TemporaryFile("w+") as log:
        process = start.run({**prepared.env, "PYTHONPROFILEIMPORTTIME": "1"}, port, stderr=log)
        try:
            serving.first_response(send)
        finally:
            serving.stop(process)
        log.seek(0)
        names = [m.group(2) for line in log if (m := IMPORT_LINE.match(line.rstrip("\n")))]
    return list(dict.fromkeys(names))


def _library(module: str) -> bool:
    """Not ours, and installed: importtime also lists optional imports that failed."""
    top = module.split(".")[0]
    return top not in OURS and importlib.util.find_spec(top) is not None


def floor_source(modules: list[str], directory: Path) -> Path:
    """The hello world, importing `modules` first: what the libraries alone cost to start."""
    path = directory / f"floor_{len(list(directory.iterdir()))}.py"
    path.write_text(
        '"""Library floor: the bare hello world after importing what a target imports."""\n\n'
        "import importlib\n\nimport functions_framework\n\n"
        f"for _name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(_name)\n"
        "    except Exception:  # a module that only imports inside its package's own import\n"
        "        pass\n\n\n"
        "@functions_framework.http\n"
        "def hello(request):\n"
        '    return "ok"\n'
    )
    return path


# The libraries the project chose that weigh on a start, alone and together: what the floor is
# made of, and what it would be without one of them.
TOKENS = ["jwt", "cryptography.hazmat.primitives.asymmetric.ec"]
LIBRARY_GROUPS = {
    "SQLAlchemy": ["sqlalchemy"],
    "PyJWT + cryptography": TOKENS,
    "psycopg + redis-py": ["psycopg", "redis"],
    "all but SQLAlchemy": ["psycopg", "redis", *TOKENS],
    "all of them": ["sqlalchemy", "psycopg", "redis", *TOKENS],
}


def library_costs(prepared: serving.Prepared, runs: int) -> dict:
    """Each group's hello world against the bare one, interleaved: x hello, wall and CPU."""
    hello = (Start(serving.HELLO, "hello"), None)
    with tempfile.TemporaryDirectory() as tmp:
        groups = [Start(floor_source(m, Path(tmp)), "hello") for m in LIBRARY_GROUPS.values()]
        base, *figures = measure([hello, *((group, None) for group in groups)], prepared, runs)
    return {
        name: {
            **f,
            "ratio": round(f["cold_start_s"] / base["cold_start_s"], 2),
            "cpu_ratio": round(f["cpu_s"] / base["cpu_s"], 2),
        }
        for name, f in zip(LIBRARY_GROUPS, figures, strict=True)
    }


def run_mode(registry: dict, prepared: serving.Prepared, runs: int, only: str | None) -> dict:
    hello = (Start(serving.HELLO, "hello"), None)
    hello_modules = set(loaded_modules(*hello, prepared))
    hellos, floors, rows = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, function in sorted(registry.items()):
            if only and name != only:
                continue
            scaling = function.scaling
            target = (
                Start(serving.ROOT / function.source, name, scaling.workers, scaling.threads),
                function,
            )
            libraries = tuple(
                module
                for module in loaded_modules(*target, prepared)
                if module not in hello_modules and _library(module)
            )
            starts = [hello, target]
            if libraries not in floors:
                starts.append((Start(floor_source(list(libraries), Path(tmp)), "hello"), None))
            base, figures, *floor = measure(starts, prepared, runs)
            if floor:
                floors[libraries] = {
                    **floor[0],
                    "cpu_ratio": round(floor[0]["cpu_s"] / base["cpu_s"], 2),
                }
            hellos.append(base)
            rows[name] = {
                **figures,
                "workers": scaling.workers,
                "threads": scaling.threads,
                "hello_s": base["cold_start_s"],
                "ratio": round(figures["cold_start_s"] / base["cold_start_s"], 2),
                "cpu_ratio": round(figures["cpu_s"] / base["cpu_s"], 2),
                "floor_s": floors[libraries]["cold_start_s"],
                "floor_cpu_s": floors[libraries]["cpu_s"],
                "floor_cpu_ratio": floors[libraries]["cpu_ratio"],
                "cpu_over_floor": round(figures["cpu_s"] / floors[libraries]["cpu_s"], 2),
                "libraries": sorted({module.split(".")[0] for module in libraries}),
                "library_modules": len(libraries),
            }
    baseline = {key: statistics.median(h[key] for h in hellos) for key in ("cold_start_s", "cpu_s")}
    baseline["peak_rss_mib"] = max(h["peak_rss_mib"] for h in hellos)
    return {"baseline": baseline, "functions": rows}


def print_mode(title: str, report: dict) -> None:
    baseline = report["baseline"]
    print(f"\ncold start, {title}; the library floor and what our code adds over it in CPU time")
    print(
        f"{'target':28} {'seconds':>8} {'x hello':>8} {'cpu s':>6} {'x hello':>8} "
        f"{'floor cpu':>9} {'x hello':>8} {'x floor':>8} {'peak MiB':>9}"
    )
    print(
        f"{'hello world (baseline)':28} {baseline['cold_start_s']:8.3f} {1:8.2f} "
        f"{baseline['cpu_s']:6.2f} {1:8.2f} {'':9} {'':8} {'':8} {baseline['peak_rss_mib']:9.1f}"
    )
    for name, f in report["functions"].items():
        flag = "" if f["ratio"] <= 1.5 else "  > 1.5x"
        print(
            f"{name:28} {f['cold_start_s']:8.3f} {f['ratio']:8.2f} {f['cpu_s']:6.2f} "
            f"{f['cpu_ratio']:8.2f} {f['floor_cpu_s']:9.2f} {f['floor_cpu_ratio']:8.2f} "
            f"{f['cpu_over_floor']:8.2f} {f['peak_rss_mib']:9.1f}{flag}"
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    from functions import load_all

    registry = load_all()
    report = {}
    with serving.prepared() as prepared:
        report["embedded"] = run_mode(registry, prepared, args.runs, args.only)
        report["libraries"] = library_costs(prepared, max(args.runs, 5))
    print_mode("embedded default (SQLite, in-process cache)", report["embedded"])
    print("\nthe bare hello world importing only these libraries first:")
    print(f"{'libraries':28} {'seconds':>8} {'x hello':>8} {'cpu s':>6} {'x hello':>8}")
    for name, f in report["libraries"].items():
        print(
            f"{name:28} {f['cold_start_s']:8.3f} {f['ratio']:8.2f} {f['cpu_s']:6.2f} "
            f"{f['cpu_ratio']:8.2f}"
        )
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        with serving.prepared(services=True) as prepared:
            report["services"] = run_mode(registry, prepared, args.runs, args.only)
        print_mode("PostgreSQL and Redis", report["services"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

"""Cold start of every function target against a bare functions-framework hello world.

Time from process start to the first answer below 500, under each target's production server
settings (gunicorn, its declared WORKERS x THREADS), median of --runs starts, and the peak
memory of the serving processes. Target: within 1.5x of the hello world for every target.

Run: `python bench/coldstart.py [--runs 3] [--only NAME] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import serving


def _sender(function, port: int, prepared: serving.Prepared):
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

    from shared.events import make

    attributes = {k: v for k, v in function.filter.items() if k != "type"}
    event = make(
        function.filter["type"],
        {"job_id": "bench-none"},
        event_id=serving.COLD_EVENT_ID,
        **attributes,
    )
    headers, body = to_binary(event)
    return lambda: requests.post(base + "/", headers=headers, data=body, timeout=30)


def measure(function, prepared: serving.Prepared, runs: int) -> dict:
    if function is None:
        source, target, workers, threads = serving.HELLO, "hello", 1, 16
    else:
        source = serving.ROOT / function.source
        target, workers, threads = function.name, function.scaling.workers, function.scaling.threads
    times, memory = [], []
    for _ in range(runs):
        port = serving.free_port()
        send = _sender(function, port, prepared)  # built before the clock starts
        process = serving.start(source, target, prepared.env, workers, threads, port)
        try:
            times.append(serving.first_response(send))
            memory.append(serving.peak_rss_mib(process.pid))
        finally:
            serving.stop(process)
    return {
        "cold_start_s": round(statistics.median(times), 3),
        "peak_rss_mib": max(memory),
        "workers": workers,
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    from functions import load_all

    registry = load_all()
    prepared = serving.prepare()
    baseline = measure(None, prepared, args.runs)
    rows = {}
    for name, function in sorted(registry.items()):
        if args.only and name != args.only:
            continue
        figures = measure(function, prepared, args.runs)
        figures["ratio"] = round(figures["cold_start_s"] / baseline["cold_start_s"], 2)
        rows[name] = figures
    print(f"{'cold start':32} {'seconds':>8} {'x hello':>8} {'peak MiB':>9}")
    print(
        f"{'hello world (baseline)':32} {baseline['cold_start_s']:8.3f} {1:8.2f} "
        f"{baseline['peak_rss_mib']:9.1f}"
    )
    for name, figures in rows.items():
        flag = "" if figures["ratio"] <= 1.5 else "  > 1.5x"
        print(
            f"{name:32} {figures['cold_start_s']:8.3f} {figures['ratio']:8.2f} "
            f"{figures['peak_rss_mib']:9.1f}{flag}"
        )
    report = {"baseline": baseline, "functions": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

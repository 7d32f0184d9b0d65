"""Hot path: GET /api/v1/waste/status/{job_id} with a real token and the cache, against hello.

Both are served by functions-framework under the production settings of waste_status
(gunicorn, its declared WORKERS x THREADS); `wrk` in another process drives 64 connections.
On the embedded default and, when DATABASE_URL and REDIS_URL are set, on PostgreSQL and Redis.
Target: at least 0.8x the hello world's throughput.

Run: `python bench/hotpath.py [--seconds 10] [--connections 64] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import serving

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: int, connections: int, token: str | None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": round(rps, 1),
        "p99_ms": round(float(value) * UNITS[unit], 2),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def serve_and_load(source, target, prepared, scaling, path, token, args) -> dict:
    port = serving.free_port()
    process = serving.start(source, target, prepared.env, scaling.workers, scaling.threads, port)
    url = f"http://127.0.0.1:{port}{path}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        serving.first_response(lambda: requests.get(url, headers=headers, timeout=5))
        wrk(url, 2, args.connections, token)  # warm up: pools, caches
        return wrk(url, args.seconds, args.connections, token)
    finally:
        serving.stop(process)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (./task bench does it)")

    from functions import load_all

    status = load_all()["waste_status"]
    modes = {"embedded": "embedded default (SQLite, in-process cache)"}
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        modes["services"] = "PostgreSQL and Redis"
    report: dict = {"workers": status.scaling.workers, "threads": status.scaling.threads}
    for mode, title in modes.items():
        with serving.prepared(services=mode == "services") as prepared:
            hello = serve_and_load(
                serving.HELLO, "hello", prepared, status.scaling, "/", None, args
            )
            ours = serve_and_load(
                serving.ROOT / status.source,
                status.name,
                prepared,
                status.scaling,
                f"/api/v1/waste/status/{prepared.job_id}",
                prepared.token,
                args,
            )
        ratio = round(ours["rps"] / hello["rps"], 2)
        report[mode] = {"hello": hello, "waste_status": ours, "ratio": ratio}
        print(
            f"\nhot path, {title}, {args.connections} connections "
            f"(WORKERS={status.scaling.workers} THREADS={status.scaling.threads})"
        )
        print(f"{'':32} {'req/s':>9} {'p99 ms':>8}")
        print(f"{'hello world (baseline)':32} {hello['rps']:9.1f} {hello['p99_ms']:8.2f}")
        print(
            f"{'waste_status':32} {ours['rps']:9.1f} {ours['p99_ms']:8.2f}  ratio {ratio} "
            f"(target >= 0.8), non-2xx {ours['non_2xx']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

"""Hot path: GET /api/v1/waste/status/{job_id} with a real token and the cache, against hello.

Both are served by functions-framework under the production settings of waste_status
(gunicorn, its declared WORKERS x THREADS); `wrk` in another process drives 64 connections.
On the embedded default and, when DATABASE_URL and REDIS_URL are set, on PostgreSQL and Redis.
Target: at least 0.8x the hello world's throughput.

With `--rounds N` both servers stay up and are loaded in turn N times: the figures are medians,
the ratio the median of the N rounds' ratios, so load from other work on the machine falls on
both sides of each ratio (one round swings by 20-50 % on a shared 2-core machine). The worker's
CPU per request is reported beside them: what the throughput is bound by here.

Run: `python bench/hotpath.py [--seconds 10] [--rounds 1] [--connections 64] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
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


class Served:
    """A target started and answering, with its gunicorn worker's pid (for its CPU time)."""

    def __init__(self, source, target, prepared, scaling, path, token, args) -> None:
        port = serving.free_port()
        self.process = serving.start(
            source, target, prepared.env, scaling.workers, scaling.threads, port
        )
        self.url, self.token, self.args = f"http://127.0.0.1:{port}{path}", token, args
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        serving.first_response(lambda: requests.get(self.url, headers=headers, timeout=5))
        wrk(self.url, 2, args.connections, token)  # warm up: pools, caches

    def load(self) -> dict:
        before = serving.cpu_seconds(self.process.pid)
        result = wrk(self.url, self.args.seconds, self.args.connections, self.token)
        spent = serving.cpu_seconds(self.process.pid) - before
        requests_done = result["rps"] * self.args.seconds
        return {**result, "cpu_us_per_request": round(1e6 * spent / max(requests_done, 1), 1)}

    def stop(self) -> None:
        serving.stop(self.process)


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 2)


def measure(status, prepared, args) -> dict:
    """Hello and waste_status, both up, loaded in turn `args.rounds` times: medians."""
    hello = ours = None
    try:
        hello = Served(serving.HELLO, "hello", prepared, status.scaling, "/", None, args)
        ours = Served(
            serving.ROOT / status.source,
            status.name,
            prepared,
            status.scaling,
            f"/api/v1/waste/status/{prepared.job_id}",
            prepared.token,
            args,
        )
        rounds = [(hello.load(), ours.load()) for _ in range(args.rounds)]
    finally:
        for served in (hello, ours):
            if served is not None:
                served.stop()
    ratios = [round(o["rps"] / h["rps"], 2) for h, o in rounds]
    keys = ("rps", "p99_ms", "cpu_us_per_request")
    side = {
        name: {key: _median([r[i] for r in rounds], key) for key in keys}
        | {"non_2xx": sum(r[i]["non_2xx"] for r in rounds)}
        for i, name in enumerate(("hello", "waste_status"))
    }
    return {**side, "ratio": round(statistics.median(ratios), 2), "rounds": ratios}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
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
            report[mode] = measured = measure(status, prepared, args)
        hello, ours, ratio = measured["hello"], measured["waste_status"], measured["ratio"]
        print(
            f"\nhot path, {title}, {args.connections} connections "
            f"(WORKERS={status.scaling.workers} THREADS={status.scaling.threads}), "
            f"{args.rounds} round(s) of {args.seconds} s"
        )
        print(f"{'':32} {'req/s':>9} {'p99 ms':>8} {'worker CPU us/req':>18}")
        for label, side in (("hello world (baseline)", hello), ("waste_status", ours)):
            print(
                f"{label:32} {side['rps']:9.1f} {side['p99_ms']:8.2f} "
                f"{side['cpu_us_per_request']:18.1f}"
            )
        print(
            f"ratio {ratio} (target >= 0.8; rounds {measured['rounds']}), non-2xx {ours['non_2xx']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

"""Every benchmark in one run, each figure next to its baseline from the same run.

Each benchmark runs in its own process (they set up their own environments) and writes JSON;
this prints one table of the figures against their targets and writes bench/results.json.
PostgreSQL and RabbitMQ figures are added when DATABASE_URL and BROKER_URL are set; the
progress streams' (bench/stream.py) when DATABASE_URL and REDIS_URL are; the pipeline as in the
cluster (RabbitMQ, PostgreSQL and Redis) when all three are.

Run: `./task bench` (or `python bench/run.py [--quick]`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(name: str, args: list[str], out: Path) -> dict:
    started = time.monotonic()
    print(f"== {name}", flush=True)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,  # the functions' JSON log lines: shown only if it fails
        text=True,
    )
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr[-4000:]}")
    print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    return json.loads(out.read_text())


def _cold_rows(cold: dict, label: str) -> list[tuple]:
    """Cold start against the hello world (the target) and against each target's library floor
    (the hello world importing the same libraries first: what our own code adds)."""
    functions = cold["functions"]

    def median(key: str) -> float:
        return sorted(f[key] for f in functions.values())[len(functions) // 2]

    worst = max(functions.items(), key=lambda item: item[1]["ratio"])
    memory = max(functions.items(), key=lambda item: item[1]["peak_rss_mib"])
    return [
        (
            f"cold start, worst target, {label}",
            f"{worst[1]['cold_start_s']:.3f} s ({worst[0]})",
            f"{worst[1]['hello_s']:.3f} s hello",
            worst[1]["ratio"],
            "<= 1.5x",
        ),
        (f"cold start, median target, {label}", "", "", median("ratio"), "<= 1.5x"),
        (f"  in CPU time, median, {label}", "", "hello", median("cpu_ratio"), ""),
        (f"  its library floor, CPU, median, {label}", "", "hello", median("floor_cpu_ratio"), ""),
        (
            f"  target over its floor, CPU, median, {label}",
            "",
            "floor",
            median("cpu_over_floor"),
            "",
        ),
        (
            f"peak memory, largest target, {label}",
            f"{memory[1]['peak_rss_mib']} MiB ({memory[0]})",
            f"{cold['baseline']['peak_rss_mib']} MiB hello",
            round(memory[1]["peak_rss_mib"] / cold["baseline"]["peak_rss_mib"], 2),
            "",
        ),
    ]


def _stream_rows(stream: dict) -> list[tuple]:
    """Progress streams on one instance against a handful of them, in the same run."""
    many, few = stream["streams"], stream["baseline"]
    n = many["streams"]
    return [
        (
            f"stage change -> event, {n} streams",
            f"p50 {many['p50_ms']} / p95 {many['p95_ms']} ms",
            f"{few['streams']}: p95 {few['p95_ms']} ms",
            round(many["p95_ms"] / few["p95_ms"], 2),
            "p95 <= 50 ms",
        ),
        (
            f"  server memory, {n} streams open",
            f"{many['rss_mib']} MiB ({many['rss_per_stream_kib']} KiB each)",
            f"idle {many['rss_idle_mib']} MiB",
            round(many["rss_mib"] / many["rss_idle_mib"], 2),
            "",
        ),
        (
            f"  Redis connections, {n} streams",
            f"{many['redis_connections']} ({many['server_subscriptions']} subscription)",
            f"{few['streams']}: {few['redis_connections']}",
            f"{many['streams_complete']}/{n} ok",
            "1 subscription",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = parser.parse_args()
    quick = args.quick
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        results["coldstart"] = _run(
            "coldstart",
            ["--runs", "1" if quick else "3", "--json", str(out / "cold.json")],
            out / "cold.json",
        )
        results["hotpath"] = _run(
            "hotpath",
            ["--seconds", "3" if quick else "10", "--json", str(out / "hot.json")],
            out / "hot.json",
        )
        pipeline = [
            "--jobs",
            "10" if quick else "40",
            "--slow-jobs",
            "32" if quick else "96",
            "--json",
            str(out / "pipe.json"),
        ]
        if os.environ.get("BROKER_URL"):
            pipeline += ["--rabbitmq", os.environ["BROKER_URL"]]
            if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
                pipeline.append("--services")  # the cluster's database and cache as well
        results["pipeline"] = _run("pipeline", pipeline, out / "pipe.json")
        nearby = ["--out", str(out / "near.json")]
        if quick:
            nearby += ["--bins", "100000", "--queries", "200"]
        results["nearby"] = _run("nearby", nearby, out / "near.json")
        results["answers"] = _run("answers", ["--json", str(out / "ans.json")], out / "ans.json")
        if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
            streams = ["--json", str(out / "stream.json")]
            if quick:
                streams += ["--streams", "200"]
            results["stream"] = _run("stream", streams, out / "stream.json")

    cold, hot, pipe = results["coldstart"], results["hotpath"], results["pipeline"]
    rows = []
    for mode, label in (("embedded", "embedded"), ("services", "PostgreSQL+Redis")):
        if mode in cold:
            rows += _cold_rows(cold[mode], label)
    for name, group in cold["libraries"].items():
        rows.append(
            (
                f"  hello world importing {name}",
                f"{group['cold_start_s']:.3f} s",
                "hello",
                group["ratio"],
                "",
            )
        )
    for mode, label in (("embedded", "embedded"), ("services", "PostgreSQL+Redis")):
        if mode in hot:
            status, hello = hot[mode]["waste_status"], hot[mode]["hello"]
            rows.append(
                (
                    f"status hot path, {label}",
                    f"{status['rps']} req/s, p99 {status['p99_ms']} ms",
                    f"{hello['rps']} req/s hello",
                    hot[mode]["ratio"],
                    ">= 0.8x",
                )
            )
    for key, label, target in (
        ("latency", "local", 50),
        ("latency_rabbitmq", "RabbitMQ", 100),
        ("latency_cluster", "RabbitMQ, PostgreSQL+Redis", 100),
    ):
        if key not in pipe:
            continue
        lat = pipe[key]
        floor = f"broker floor {lat['broker_floor_p50_ms']} ms"
        rows += [
            (
                f"one job, upload-complete -> result, {label}",
                f"p50 {lat['one_job_p50_ms']} ms (CPU {lat['one_job_cpu_ms']} ms)",
                floor,
                "",
                "<= 15 ms",
            ),
            (
                # One interpreter runs every stage here: the batch's CPU is its floor.
                f"{lat['jobs']} jobs at once, {label}",
                f"p50 {lat['p50_ms']} / p95 {lat['p95_ms']} ms",
                f"{floor}; the batch's CPU {lat['batch_cpu_ms']} ms",
                round(lat["p95_ms"] / lat["batch_cpu_ms"], 2),
                f"p95 <= {target} ms",
            ),
        ]
    thr = pipe["throughput"]
    rows.append(
        (
            "AI throughput, model 3 s",
            f"{thr['jobs_per_s']} jobs/s",
            f"{thr['ideal_jobs_per_s']} = concurrency/3 s",
            thr["ratio"],
            ">= 0.9x",
        )
    )
    for backend in results["nearby"]["results"]:
        for name, scenario in backend["scenarios"].items():
            rows.append(
                (
                    f"nearby {name}, {backend['backend']}",
                    f"p50 {scenario['p50_ms']} / p95 {scenario['p95_ms']} ms",
                    f"full scan p50 {backend['full_scan_r1000']['p50_ms']} ms",
                    f"differ {scenario['answers_differ']}",
                    "p95 < 5 ms",
                )
            )
    for name, answers in results["answers"].items():
        f = answers["all"]
        rows.append(
            (
                f"item search, {name}",
                f"top-1 {f['top1']} / top-3 {f['top3']} %",
                f"not sure {f['not_sure']} %",
                f"wrong {f['confident_wrong']}",
                ">= 90 / 97 %",
            )
        )
        rows.append(
            (
                f"  search latency, {name}",
                f"p50 {f['p50_ms']} / p95 {f['p95_ms']} ms",
                "",
                "",
                "p95 <= 20 ms",
            )
        )

    if "stream" in results:
        rows += _stream_rows(results["stream"])

    print()
    print(f"{'figure':50} {'measured':38} {'baseline (same run)':22} {'ratio':>8}  target")
    for figure, measured, baseline, ratio, target in rows:
        print(f"{figure:50} {measured:38} {baseline:22} {ratio!s:>8}  {target}")
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2))
    print("\nwrote bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

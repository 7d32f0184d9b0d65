"""CPU per status poll in one process: waste_status's WSGI app called directly, no server.

Where `bench/hotpath.py` loads a gunicorn worker over sockets (wall throughput, swayed by
whatever else runs on the machine), this calls the app functions-framework builds with a
prepared WSGI environ in a loop on one thread and reads the thread's CPU time: the poll's own
cost, gunicorn and HTTP parsing left out, and little moved by other work. With `--profile`
the loop runs under cProfile as well and the top functions by own time are printed.

On the embedded default, or on PostgreSQL and Redis with `--services` (DATABASE_URL and
REDIS_URL set). Rounds alternate with a bare hello world's app, so the difference is what a
poll adds to functions-framework and Flask.

Run: `python bench/pollcpu.py [--services] [--polls 20000] [--rounds 5] [--profile]`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import serving


def _environ(path: str, token: str | None) -> dict:
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return environ


def _loop(app, environ: dict, polls: int) -> float:
    """Thread CPU seconds for `polls` requests; each answer must be 200."""
    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    begin = time.thread_time()
    for _ in range(polls):
        body = app(dict(environ), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    spent = time.thread_time() - begin
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"{len(bad)} answers not 200, first: {bad[0]}")
    return spent


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", action="store_true", help="PostgreSQL and Redis")
    parser.add_argument("--polls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    with serving.prepared(services=args.services) as prepared:
        os.environ.clear()
        os.environ.update(prepared.env)
        import functions_framework

        from functions import load_all

        status = load_all()["waste_status"]
        poll = functions_framework.create_app(status.name, str(serving.ROOT / status.source))
        hello = functions_framework.create_app("hello", str(serving.HELLO))
        poll_env = _environ(f"/api/v1/waste/status/{prepared.job_id}", prepared.token)
        hello_env = _environ("/", None)
        _loop(poll, poll_env, 500)  # warm: the token verified, the connection made
        _loop(hello, hello_env, 500)
        ours, base = [], []
        for _ in range(args.rounds):
            base.append(1e6 * _loop(hello, hello_env, args.polls) / args.polls)
            ours.append(1e6 * _loop(poll, poll_env, args.polls) / args.polls)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            _loop(poll, poll_env, args.polls)
            profiler.disable()
            if os.environ.get("POLLCPU_DUMP"):
                profiler.dump_stats(os.environ["POLLCPU_DUMP"])
            stats = pstats.Stats(profiler).sort_stats("tottime")
            stats.print_stats(30)
            stats.sort_stats("cumulative").print_stats(40)
    report = {
        "mode": "services" if args.services else "embedded",
        "hello_us": round(statistics.median(base), 1),
        "poll_us": round(statistics.median(ours), 1),
        "poll_rounds_us": [round(x, 1) for x in ours],
    }
    report["added_us"] = round(report["poll_us"] - report["hello_us"], 1)
    print(report)
    return report


if __name__ == "__main__":
    main()

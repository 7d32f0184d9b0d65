"""Item search against labelled queries: is the first guide right, and does it know when not?

    PYTHONPATH=. python bench/answers.py                       # every labelled file, separately
    PYTHONPATH=. python bench/answers.py tests/answers/dev.jsonl [--json out.json] [--misses]

Each line of a file is `{"query", "expect": [guide ids], "kind", "note"}`; an empty `expect`
means the right answer is "not sure". A fresh SQLite database in a temporary data directory
is migrated and the dictionary imported from the datasets folder, then every query goes
through `rules.search`, the function behind GET /waste/items and the pipeline's hint.

Per file and per kind it prints top-1 (the first guide is one of `expect`), top-3,
confident-but-wrong (the search called its first answer confident and it is not in
`expect`, or there is no right answer: over all queries), not sure (the search did not call
its first answer confident), and p50/p95 latency of one search in-process (index warm).
A search whose results carry no `confidence` (the search before calibration) is counted as
confident whenever it answers: that is what its callers did with it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ANSWERS = ROOT / "tests" / "answers"
DEFAULT_FILES = (
    "dev.jsonl",
    "holdout.jsonl",
    "search_dev.jsonl",
    "holdout2.jsonl",
    "holdout3.jsonl",
    "holdout4.jsonl",
    "holdout5.jsonl",
    "holdout6.jsonl",
    "holdout7.jsonl",
    "holdout8.jsonl",
    "holdout9.jsonl",
    "holdout10.jsonl",
    "holdout11.jsonl",
    "holdout12.jsonl",
    "holdout13.jsonl",
)  # every labelled file, in the order written (missing ones are skipped); the blind one too


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def prepare() -> None:
    """A throwaway embedded database with the dictionary imported, as the dev server has."""
    os.environ["GROWBIN_DATA_DIR"] = tempfile.mkdtemp(prefix="growbin-answers-")
    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL"):
        os.environ.pop(name, None)
    from shared.core import db
    from shared.waste import dictionary

    db.migrate()
    dictionary.import_all(only_if_changed=False)


def _confident(results: list[dict[str, Any]]) -> bool:
    from shared.waste import rules

    if not results:
        return False
    if "confidence" not in results[0]:
        return True  # the uncalibrated search: its callers took any first answer
    return rules.confident(results)


def measure(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Every case through the search: the figures, overall and per kind, and each outcome."""
    from shared.waste import rules

    for case in cases[:5]:
        rules.search(case["query"], limit=3)  # build the index outside the timing
    outcomes = []
    for case in cases:
        started = time.perf_counter()
        results = rules.search(case["query"], limit=3)
        elapsed = (time.perf_counter() - started) * 1000
        ids = [r["guide_id"] for r in results]
        expect = set(case["expect"])
        confident = _confident(results)
        outcomes.append(
            {
                **case,
                "got": [(r["guide_id"], r["name"], r.get("confidence")) for r in results],
                "top1": bool(ids) and ids[0] in expect,
                "top3": bool(expect & set(ids)),
                "confident": confident,
                "confident_wrong": confident and not (ids and ids[0] in expect),
                "ms": elapsed,
            }
        )
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for outcome in outcomes:
        by_kind[outcome["kind"]].append(outcome)
    return {
        "all": figures(outcomes),
        "kinds": {kind: figures(group) for kind, group in sorted(by_kind.items())},
        "outcomes": outcomes,
    }


def figures(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates over the queries that have an answer (top-1, top-3) and over all (the rest)."""
    answerable = [o for o in outcomes if o["expect"]]
    n = len(outcomes)

    def rate(flags: list[bool]) -> float | None:
        return round(100 * sum(flags) / len(flags), 1) if flags else None

    ms = sorted(o["ms"] for o in outcomes)
    return {
        "queries": n,
        "answerable": len(answerable),
        "top1": rate([o["top1"] for o in answerable]),
        "top3": rate([o["top3"] for o in answerable]),
        "confident_wrong": rate([o["confident_wrong"] for o in outcomes]),
        "not_sure": rate([not o["confident"] for o in outcomes]),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(n - 1, int(0.95 * n))], 2),
    }


def table(name: str, result: dict[str, Any]) -> str:
    head = f"{'':22} {'n':>4} {'top-1':>6} {'top-3':>6} {'conf.wrong':>10} {'not sure':>8}"
    lines = [f"== {name}", head + f" {'p50 ms':>7} {'p95 ms':>7}"]
    rows = [("all", result["all"])] + [(f"  {k}", v) for k, v in result["kinds"].items()]
    for label, f in rows:

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        lines.append(
            f"{label:22} {f['queries']:>4} {pct(f['top1']):>6} {pct(f['top3']):>6} "
            f"{pct(f['confident_wrong']):>10} {pct(f['not_sure']):>8} "
            f"{f['p50_ms']:>7.2f} {f['p95_ms']:>7.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="labelled .jsonl files")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--misses", action="store_true", help="list the wrong answers")
    args = parser.parse_args()
    files = args.files or [ANSWERS / f for f in DEFAULT_FILES if (ANSWERS / f).is_file()]
    if not files:
        sys.exit(f"no labelled files in {ANSWERS}")
    prepare()
    report = {}
    for path in files:
        result = measure(load(path))
        print(table(path.name, result))
        if args.misses:
            for o in result["outcomes"]:
                if not o["top1"] or o["confident_wrong"]:
                    flag = "CONFIDENT " if o["confident_wrong"] else ""
                    print(f"   {flag}{o['kind']:12} {o['query']!r} want {o['note']}: {o['got']}")
        report[path.name] = {k: v for k, v in result.items() if k != "outcomes"}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

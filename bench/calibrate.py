"""Fit the search's confidence on labelled queries: shared/waste/search/calibration.json.

    PYTHONPATH=. python bench/calibrate.py [files...] [--folds 5] [--dry-run]
    # default: every development file (dev, holdout, search_dev, holdout2 .. holdout6)

A logistic (Platt-style) fit of "the first guide is right" on the features `confidence.features`
gives (how the query was matched: scores, margin, exactness, which reading and which kind of
guide), by Newton's method with a small ridge. The threshold is not read off the fit's own
queries, where it always looks better than it is: the queries are split into k folds, each
fold is scored by a model fitted on the others, and the threshold is the lowest confidence at
which these out-of-fold answers are confident but wrong for at most TARGET of all queries.
The final constants are fitted on every query, with that threshold. A blind file (holdout7,
holdout8, holdout9, holdout10, holdout11) measures the result; it never makes it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.answers import ANSWERS, DEFAULT_FILES, load, prepare  # noqa: E402

# Confident-but-wrong out of fold, over all queries: 2 % is promised, and blind files have
# measured up to twice the out-of-fold rate (holdout7 2.6 % blind against 1.5 %), so leave 0.7
# of a point for queries unlike any written so far (it was half a point, 1.5 %, until the
# `unexplained` feature let the threshold rise without covering less out of fold).
TARGET = 0.013
RIDGE = 0.01
FOLDS = 5
# measured blind, never fitted on (holdout2 .. holdout6 were, once each): seven files, holdout7 ..
# holdout13; each new one is listed as soon as it is written, so no calibration run can fit on it
# before its one blind measurement
BLIND = ("holdout7", "holdout8", "holdout9", "holdout10", "holdout11", "holdout12", "holdout13")
DEVELOPMENT = tuple(name for name in DEFAULT_FILES if not any(b in name for b in BLIND))


def _rows(files: list[Path]) -> tuple[list[str], list[dict]]:
    """Each query's features and whether the first guide is right, and the feature names."""
    from shared.waste.search import confidence, ranking, reading

    rows = []
    for path in files:
        for case in load(path):
            query = reading.read(case["query"])
            ranked = ranking.rank(case["query"], query)
            values = confidence.features(ranked, query)
            right = bool(ranked) and ranked[0]["guide_id"] in case["expect"]
            kind, answers = case["kind"], case["expect"]
            rows.append(
                {
                    "x": values,
                    "y": int(right),
                    "kind": kind,
                    "answers": answers,
                    "query": case["query"],
                    # outside household waste: the search caps its chance (rules.search)
                    "outside": bool(confidence.outside(ranked, query)),
                }
            )
    names = list(rows[0]["x"]) if rows else []
    return names, rows


def fit(xs: list[list[float]], ys: list[int], steps: int = 50) -> list[float]:
    """Logistic regression (intercept first) by Newton-Raphson; tiny, so no numpy."""
    k = len(xs[0]) + 1
    w = [0.0] * k
    for _ in range(steps):
        grad = [0.0] * k
        hess = [[RIDGE if i == j and i else 0.0 for j in range(k)] for i in range(k)]
        for x, y in zip(xs, ys, strict=True):
            row = [1.0, *x]
            p = _sigmoid(sum(a * b for a, b in zip(w, row, strict=True)))
            for i in range(k):
                grad[i] += (p - y) * row[i]
                for j in range(k):
                    hess[i][j] += p * (1 - p) * row[i] * row[j]
        for i in range(1, k):
            grad[i] += RIDGE * w[i]
        w = [a - b for a, b in zip(w, _solve(hess, grad), strict=True)]
    return w


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-max(-60.0, min(60.0, z))))


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting: a x = b."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for c in range(n):
        pivot = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[pivot] = m[pivot], m[c]
        for r in range(n):
            if r != c and m[c][c]:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c], strict=True)]
    return [m[i][n] / m[i][i] if m[i][i] else 0.0 for i in range(n)]


def out_of_fold(names: list[str], rows: list[dict], folds: int = FOLDS) -> list[float]:
    """Each query's chance from a model that never saw it (folds drawn once, seeded), capped
    as the search caps it for a query outside household waste."""
    from shared.waste.search import confidence

    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    chances = [0.0] * len(rows)
    for fold in range(folds):
        held = set(order[fold::folds])
        train = [r for i, r in enumerate(rows) if i not in held]
        w = fit([[r["x"][n] for n in names] for r in train], [r["y"] for r in train])
        for i in held:
            z = w[0] + sum(wi * rows[i]["x"][n] for wi, n in zip(w[1:], names, strict=True))
            chances[i] = _sigmoid(z)
            if rows[i].get("outside"):
                # as rules.search does: such a query is never answered with confidence
                chances[i] = min(chances[i], confidence.OUTSIDE_CHANCE)
    return chances


def threshold(chances: list[float], rows: list[dict]) -> float:
    """The lowest confidence whose confident answers are wrong for at most TARGET of all."""
    for t in sorted({round(p, 3) for p in chances}):
        wrong = sum(1 for p, r in zip(chances, rows, strict=True) if p >= t and not r["y"])
        if wrong <= TARGET * len(rows):
            return t
    return 1.0


def report(chances: list[float], rows: list[dict], t: float) -> str:
    """Out-of-fold confident-but-wrong and coverage (confident share) over all queries, by
    kind, beside top-1 over the queries that have an answer (as bench/answers.py counts)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups["all"].append(i)
        groups[f"  {r['kind']}"].append(i)
    lines = [f"{'out of fold':18} {'n':>4} {'top-1':>6} {'conf.wrong':>10} {'coverage':>8}"]
    for label in ["all", *sorted(k for k in groups if k != "all")]:
        idx = groups[label]
        sure = [i for i in idx if chances[i] >= t]
        wrong = sum(1 for i in sure if not rows[i]["y"])
        answerable = [rows[i]["y"] for i in idx if rows[i]["answers"]]
        top1 = f"{100 * sum(answerable) / len(answerable):.1f}" if answerable else "-"
        lines.append(
            f"{label:18} {len(idx):>4} {top1:>6} {100 * wrong / len(idx):>10.1f} "
            f"{100 * len(sure) / len(idx):>8.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    parser.add_argument("--misses", action="store_true", help="list out-of-fold confident errors")
    args = parser.parse_args()
    files = args.files or [ANSWERS / f for f in DEVELOPMENT if (ANSWERS / f).is_file()]
    if any(name in f.name for f in files for name in BLIND):
        sys.exit("the blind holdout measures the fit; it never makes it")
    prepare()
    from shared.waste.search import confidence

    names, rows = _rows(files)
    chances = out_of_fold(names, rows, args.folds)
    t = threshold(chances, rows)
    print(report(chances, rows, t))
    if args.misses:
        for p, r in sorted(zip(chances, rows, strict=True), key=lambda pr: -pr[0]):
            if p >= t and not r["y"]:
                values = " ".join(f"{n}={r['x'][n]:.2f}" for n in names)
                print(f"   {p:.3f} {r['kind']:10} {r['query']!r} {values}")
    w = fit([[r["x"][n] for n in names] for r in rows], [r["y"] for r in rows])
    constants = {
        "intercept": round(w[0], 4),
        "weights": {n: round(v, 4) for n, v in zip(names, w[1:], strict=True)},
        "threshold": t,
        "fitted_on": [f.name for f in files],
        "queries": len(rows),
        "folds": args.folds,
    }
    print(json.dumps(constants, indent=2))
    if not args.dry_run:
        confidence.CALIBRATION.write_text(json.dumps(constants, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

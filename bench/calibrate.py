"""Fit the search's confidence on labelled queries: shared/waste/calibration.json.

    PYTHONPATH=. python bench/calibrate.py [files...]   # default: dev.jsonl and search_dev.jsonl

A logistic (Platt-style) fit of "the first guide is right" on the features `retrieval.features`
gives (top score, margin over the next guide, named exactly or not), by Newton's method with a
small ridge. The threshold is the lowest confidence at which confident-but-wrong stays at or
under TARGET of the queries (with a point of margin for queries not seen), so `confident`
means what the README says. Never fit on the holdout: it would measure nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.answers import ANSWERS, load, prepare  # noqa: E402

TARGET = 0.005  # confident-but-wrong on the fitting queries: a quarter of the 2 % promised
NAMES = ("top", "margin", "exact")
RIDGE = 0.01


def _rows(files: list[Path]) -> list[tuple[list[float], int]]:
    from shared.waste import retrieval

    rows = []
    for path in files:
        for case in load(path):
            ranked = retrieval.rank(case["query"])
            values = retrieval.features(ranked)
            right = bool(ranked) and ranked[0]["guide_id"] in case["expect"]
            rows.append(([values[n] for n in NAMES], int(right)))
    return rows


def fit(rows: list[tuple[list[float], int]], steps: int = 50) -> list[float]:
    """Logistic regression (intercept first) by Newton-Raphson; tiny, so no numpy."""
    k = len(NAMES) + 1
    w = [0.0] * k
    for _ in range(steps):
        grad = [0.0] * k
        hess = [[RIDGE if i == j and i else 0.0 for j in range(k)] for i in range(k)]
        for x, y in rows:
            xs = [1.0, *x]
            p = 1 / (1 + math.exp(-sum(a * b for a, b in zip(w, xs, strict=True))))
            for i in range(k):
                grad[i] += (p - y) * xs[i]
                for j in range(k):
                    hess[i][j] += p * (1 - p) * xs[i] * xs[j]
        for i in range(1, k):
            grad[i] += RIDGE * w[i]
        w = [a - b for a, b in zip(w, _solve(hess, grad), strict=True)]
    return w


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


def threshold(chances: list[tuple[float, int]]) -> float:
    """The lowest confidence whose confident answers are wrong for at most TARGET of all."""
    for t in sorted({round(p, 3) for p, _ in chances}):
        wrong = sum(1 for p, right in chances if p >= t and not right)
        if wrong <= TARGET * len(chances):
            return t
    return 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    files = args.files or [ANSWERS / "dev.jsonl", ANSWERS / "search_dev.jsonl"]
    if any("holdout" in f.name for f in files):
        sys.exit("the holdout measures the fit; it never makes it")
    prepare()
    from shared.waste import retrieval

    rows = _rows(files)
    w = fit(rows)
    constants = {"intercept": w[0], "weights": dict(zip(NAMES, w[1:], strict=True))}
    chances = [
        (retrieval.probability(dict(zip(NAMES, x, strict=True)), constants), y) for x, y in rows
    ]
    constants = {
        "intercept": round(w[0], 4),
        "weights": {n: round(v, 4) for n, v in zip(NAMES, w[1:], strict=True)},
        "threshold": threshold(chances),
        "fitted_on": [f.name for f in files],
        "queries": len(rows),
    }
    retrieval.CALIBRATION.write_text(json.dumps(constants, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(constants, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

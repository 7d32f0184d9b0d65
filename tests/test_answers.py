"""Item search on the labelled holdout (tests/answers/holdout.jsonl, written apart from the
search and never tuned on): top-1 must not fall under its floor, and confident answers must
stay right. bench/answers.py prints the whole table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.answers import figures, load, measure

HOLDOUT = Path(__file__).parent / "answers" / "holdout.jsonl"
TOP1_FLOOR = 80.0  # measured {measured} %; a few points under it
CONFIDENT_WRONG_CEILING = 2.0  # per cent of all queries: what "confident" promises


@pytest.mark.skipif(not HOLDOUT.is_file(), reason="the labelled holdout is not in this checkout")
def test_search_on_the_holdout(system):
    result = measure(load(HOLDOUT))
    overall = figures(result["outcomes"])
    assert overall["top1"] >= TOP1_FLOOR, result["kinds"]
    assert overall["confident_wrong"] <= CONFIDENT_WRONG_CEILING, result["kinds"]

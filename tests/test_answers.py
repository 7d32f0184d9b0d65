"""Item search on the labelled holdout (tests/answers/holdout.jsonl, written apart from the
search and never tuned on): top-1 must not fall under its floor, and confident answers must
stay right. bench/answers.py prints the whole table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.answers import figures, load, measure

HOLDOUT = Path(__file__).parent / "answers" / "holdout.jsonl"
TOP1_FLOOR = 84.0  # measured 87.5 % (341 queries); a few points under it
CONFIDENT_WRONG_CEILING = 2.0  # per cent of all queries: what "confident" promises
needs_holdout = pytest.mark.skipif(not HOLDOUT.is_file(), reason="no labelled holdout here")


@needs_holdout
def test_top1_on_the_holdout_stays_above_its_floor(system):
    result = measure(load(HOLDOUT))
    assert figures(result["outcomes"])["top1"] >= TOP1_FLOOR, result["kinds"]


@needs_holdout
@pytest.mark.xfail(
    strict=True,
    reason="measured 7.0 % confident-but-wrong on the holdout (threshold fitted on dev, where "
    "it was 1.3 %): the calibration does not carry over yet; see README, Item search",
)
def test_confident_answers_are_rarely_wrong_on_the_holdout(system):
    result = measure(load(HOLDOUT))
    overall = figures(result["outcomes"])
    assert overall["confident_wrong"] <= CONFIDENT_WRONG_CEILING, result["kinds"]

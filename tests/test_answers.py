"""Item search on the blind holdout: top-1 must not fall under its floor, and confident answers
must stay right. The blind file is tests/answers/holdout2.jsonl, written apart from the search
and never tuned on; until it is here, holdout.jsonl stands in (it was blind once and is now
development data, so it flatters). bench/answers.py prints the whole table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.answers import figures, load, measure

ANSWERS = Path(__file__).parent / "answers"
BLIND = next(
    (p for p in (ANSWERS / "holdout2.jsonl", ANSWERS / "holdout.jsonl") if p.is_file()), None
)
TOP1_FLOOR = 84.0  # holdout.jsonl measured 87.5 % blind; the lead sets it again on holdout2
CONFIDENT_WRONG_CEILING = 2.0  # per cent of all queries: what "confident" promises
needs_holdout = pytest.mark.skipif(BLIND is None, reason="no labelled holdout here")


@needs_holdout
def test_top1_on_the_holdout_stays_above_its_floor(system):
    outcome = measure(load(BLIND))
    assert figures(outcome["outcomes"])["top1"] >= TOP1_FLOOR, outcome["kinds"]


@needs_holdout
def test_confident_answers_are_rarely_wrong_on_the_holdout(system):
    outcome = measure(load(BLIND))
    overall = figures(outcome["outcomes"])
    wrong = [o["query"] for o in outcome["outcomes"] if o["confident_wrong"]]
    assert overall["confident_wrong"] <= CONFIDENT_WRONG_CEILING, (wrong, outcome["kinds"])

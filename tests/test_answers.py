"""Item search on the newest blind holdout: top-1 must not fall under its floor, and confident
answers must not be wrong more often than measured. Each holdout is written apart from the
search and measured blind once; after that it is development data and the next one is the
blind file. bench/answers.py prints the whole table.

The floors are regression guards set a little under the blind measurement, not the product's
targets (top-1 90 %, confident-but-wrong 2 %), which the README says are not yet met."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.answers import figures, load, measure

ANSWERS = Path(__file__).parent / "answers"
HOLDOUTS = ("holdout3.jsonl", "holdout2.jsonl", "holdout.jsonl")  # newest first
BLIND = next((ANSWERS / n for n in HOLDOUTS if (ANSWERS / n).is_file()), None)
# holdout3 measured 85.9 % top-1 blind; it has since been seen (its misses read, the calibration
# fitted on it, aliases written for its misses) and measures 92.7 %: the floor guards that, it is
# no blind figure any more.
TOP1_FLOOR = 90.0
# per cent of all queries; holdout3: 5.8 % blind, 3.9 % with holdout2 in the calibration, 0.6 %
# seen and fitted on
CONFIDENT_WRONG_CEILING = 2.0
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

"""Item search on the labelled holdouts: top-1 must not fall under a floor, and confident
answers must not be wrong more often than measured. Each holdout is written apart from the
search and measured blind once; after that it is development data and the next one is the
blind file. bench/answers.py prints the whole table.

Eleven guards: holdout13 and holdout12, the last measured blind, with floors a little under
that measurement; and holdout11 back to holdout3, each measured blind once and now seen (its
misses read, some of them the calibration fitted on), with floors a little under what it
measures now. Only a blind file shows the product's target (top-1 90 %, confident-but-wrong 2 %
on unseen queries); the next one is a holdout14 written apart."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from bench.answers import figures, load, measure

ANSWERS = Path(__file__).parent / "answers"
# file: (top-1 floor, confident-but-wrong ceiling in per cent of all queries)
GUARDS = {
    # 90.4 % / 1.4 % blind on the search of 2026-12-05's evening before the everyday and class
    # names, the search package and the pipeline's CPU work; 91.2 % / 1.0 % blind after them
    "holdout13.jsonl": (90.0, 2.0),
    # 90.2 % / 1.7 % blind before the spelling correction and the label reconciliation
    # (2026-12-05); 92.1 % / 1.9 % after them and the everyday and class names
    "holdout12.jsonl": (90.5, 2.5),
    # 88.2 % / 2.6 % blind on the search of 2026-12-05's afternoon; 88.8 % / 2.6 % blind once
    # the everyday general-waste names were in
    "holdout11.jsonl": (87.5, 3.0),
    # 85.8 % / 1.8 % blind on the search of 2026-12-05's morning; 88.5 % / 1.6 % blind once
    # the outside-household table and the English reading were in
    "holdout10.jsonl": (87.5, 2.0),
    # 87.1 % / 3.1 % blind on the search with the descriptions pass (2026-12-05); 88.9 % / 2.1 %
    # blind once the brands, the heads-and-modifiers pass and `unexplained` were in; 90.2 % /
    # 1.2 % seen (its English and container misses read)
    "holdout9.jsonl": (89.0, 1.8),
    # 87.2 % / 1.7 % blind on the search of 2026-12-04; 89.5 % / 1.5 % blind once the
    # descriptions pass (uses.yaml) was in, 2026-12-05; 93.0 % / 0.8 % seen (read for the heads
    # and `unexplained`)
    "holdout8.jsonl": (91.5, 1.5),
    # 84.9 % / 3.2 % blind on the search before 2026-12-04's second session; 86.6 % / 2.6 %
    # blind once that session's work was in; 90.1 % / 1.4 % seen (2026-12-05)
    "holdout7.jsonl": (88.5, 2.2),
    # 87.4 % / 2.1 % blind on 2026-12-04; 89.3 % / 2.1 % seen and fitted on (2026-12-04)
    "holdout6.jsonl": (88.0, 2.5),
    # 84.9 % / 3.8 % blind on 2026-12-04; 89.6 % / 2.0 % seen and fitted on (2026-12-04)
    "holdout5.jsonl": (88.5, 2.5),
    # 86.1 % / 4.1 % blind on 2026-12-03; 94.2 % / 2.3 % seen (2026-12-04: the refit with
    # holdout6 calls one more borderline answer confident, 고등어 ... 가시 as 고등어)
    "holdout4.jsonl": (93.0, 2.5),
    # 85.9 % / 5.8 % blind; 92.7 % / 0.6 % seen and fitted on; 94.1 % / 0.3 % on 2026-12-04
    "holdout3.jsonl": (92.5, 1.0),
}


@pytest.fixture(scope="module", params=sorted(GUARDS))
def holdout(request):
    return request.param


@functools.cache
def _measured(holdout: str) -> dict:
    """A holdout measured once for both its guards: every test's system is the same bundled
    data and the same search, so a second measurement would answer the same (half of this
    module's time, about 35 s)."""
    return measure(load(ANSWERS / holdout))


def test_top1_stays_above_its_floor(system, holdout):
    outcome = _measured(holdout)
    assert figures(outcome["outcomes"])["top1"] >= GUARDS[holdout][0], outcome["kinds"]


def test_confident_answers_are_rarely_wrong(system, holdout):
    outcome = _measured(holdout)
    overall = figures(outcome["outcomes"])
    wrong = [o["query"] for o in outcome["outcomes"] if o["confident_wrong"]]
    assert overall["confident_wrong"] <= GUARDS[holdout][1], (wrong, outcome["kinds"])

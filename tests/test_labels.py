"""The labelled query set for answer quality (tests/answers): well formed, true to the dictionary.

dev.jsonl may be looked at while building the search. holdout.jsonl and each holdoutN.jsonl after
it were written blind, after the ones before, repeating no query of any earlier file
(search_dev.jsonl included); each is measured blind once and from then on may be looked at while
building. holdout13.jsonl is the newest blind set. These tests need no search code: they keep the
labels honest against the Ministry of Environment's item dictionary, read from the datasets
folder, so a relabelled or renumbered edition fails here rather than silently moving the score.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from bench.answers import DEFAULT_FILES as WRITTEN
from shared.core import datasets

ANSWERS = Path(__file__).parent / "answers"
# search_dev.jsonl has kinds of its own: only its queries are read here.
FILES = tuple(name for name in WRITTEN if name != "search_dev.jsonl")
KINDS = {
    "colloquial",
    "brand",
    "typo",
    "spacing",
    "english",
    "sentence",
    "state",
    "container",
    "size",
    "absent",
    "name",
}
QUOTE = re.compile(r"「(.+?)」")


def _rows(name: str) -> list[dict]:
    lines = (ANSWERS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def guides() -> dict[str, dict]:
    file = datasets.path("rules/moe_item_disposal_guides.json")
    return {guide["id"]: guide for guide in json.loads(file.read_text(encoding="utf-8"))}


def _text(guide: dict) -> str:
    """Everything a guide says about its item: where a label's quoted words must come from."""
    parts = [guide["name"]]
    for field in ("similarItems", "dischargeMethods", "features", "notes", "legacyNames"):
        parts += guide.get(field) or []
    return "\n".join(parts)


def _normal(query: str) -> str:
    # Runs of spaces and case make no new query; a space inside a word does (우유 팩 / 우유팩).
    return " ".join(query.split()).casefold()


@pytest.mark.parametrize("name", FILES)
def test_every_line_is_a_label(name: str) -> None:
    for number, line in enumerate((ANSWERS / name).read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        assert set(row) == {"query", "expect", "kind", "note"}, (name, number)
        assert isinstance(row["query"], str) and row["query"].strip(), (name, number)
        assert isinstance(row["expect"], list), (name, number)
        assert all(isinstance(guide, str) for guide in row["expect"]), (name, number)
        assert len(set(row["expect"])) == len(row["expect"]), (name, number, "repeated id")
        assert row["kind"] in KINDS, (name, number, row["kind"])
        assert isinstance(row["note"], str) and row["note"].strip(), (name, number)


@pytest.mark.parametrize("name", FILES)
def test_expected_guides_exist(name: str, guides: dict[str, dict]) -> None:
    unknown = [(row["query"], g) for row in _rows(name) for g in row["expect"] if g not in guides]
    assert unknown == []


@pytest.mark.parametrize("name", FILES)
def test_notes_quote_the_expected_guide(name: str, guides: dict[str, dict]) -> None:
    """A label with an answer says why in the guide's own words: each 「quote」 is in its text."""
    wrong = []
    for row in _rows(name):
        if not row["expect"]:
            continue
        texts = [_text(guides[g]) for g in row["expect"] if g in guides]
        quotes = QUOTE.findall(row["note"])
        if not quotes:
            wrong.append((row["query"], "no 「quote」"))
        wrong += [(row["query"], q) for q in quotes if not any(q in text for text in texts)]
    assert wrong == []


@pytest.mark.parametrize("name", FILES)
def test_only_absent_items_expect_no_guide(name: str) -> None:
    unsure = [row for row in _rows(name) if not row["expect"]]
    assert [row["query"] for row in unsure if row["kind"] != "absent"] == []


def test_no_query_twice_across_the_files() -> None:
    seen = Counter(_normal(row["query"]) for name in FILES for row in _rows(name))
    assert [query for query, count in seen.items() if count > 1] == []


# The blind files: holdout2 and every file after it, in the order bench/answers.py lists them
# (the order written); each is checked against every file written before it.
BLIND = WRITTEN[WRITTEN.index("holdout2.jsonl") :]


@pytest.mark.parametrize(
    ("blind", "before"), [(name, WRITTEN[: WRITTEN.index(name)]) for name in BLIND]
)
def test_blind_holdout_repeats_no_query_seen_while_building(
    blind: str, before: tuple[str, ...]
) -> None:
    # search_dev.jsonl has its own kinds, so it is only read here, for its queries.
    seen = {_normal(row["query"]) for name in before for row in _rows(name)}
    assert [row["query"] for row in _rows(blind) if _normal(row["query"]) in seen] == []


def test_sizes_and_every_kind_in_holdout() -> None:
    dev, holdout = _rows("dev.jsonl"), _rows("holdout.jsonl")
    assert 120 <= len(dev) <= 200
    assert len(holdout) >= 300
    per_kind = Counter(row["kind"] for row in holdout)
    assert {kind: per_kind[kind] for kind in KINDS if per_kind[kind] < 15} == {}
    assert {row["kind"] for row in dev} == KINDS
    for name in BLIND:
        blind = Counter(row["kind"] for row in _rows(name))
        assert sum(blind.values()) >= 330, name
        assert {kind: blind[kind] for kind in KINDS if blind[kind] < 30} == {}, name

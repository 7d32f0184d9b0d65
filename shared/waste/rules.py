"""The knowledge base: the Ministry of Environment's 730-item disposal dictionary (품목사전).

Every answer growbin gives is grounded here: a guide id, its category path and its official
discharge steps. The model describes an item; this module finds the guide. Search forgives
spacing, punctuation and typos: names are compared as sequences of Hangul jamo, so "페트벙"
is one consonant away from "페트병", not a different word. The index is built once per
edition of the imported dictionary (shared/waste/dictionary.py), on first use.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from shared.core import datasets
from shared.waste import dictionary

# How much a match on each kind of name counts: an item's similar items are other items
# disposed of alike, so they may point here, but never as strongly as the item's own name.
WEIGHTS = {"name": 1.0, "legacy": 0.95, "similar": 0.6}
_STRIP = re.compile(r"[\s()\[\]{}·,./_\-~'\"]+")


@dataclass
class _Index:
    guides: dict[str, dict[str, Any]]
    entries: list[tuple[str, str, str, frozenset[str]]] = field(default_factory=list)
    by_gram: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_key: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


def _jamo(text: str) -> str:
    """Hangul syllables split into their letters, so edit distance works per letter."""
    out = []
    for char in text:
        code = ord(char) - 0xAC00
        if 0 <= code < 11172:
            out.append(chr(0x1100 + code // 588))
            out.append(chr(0x1161 + (code % 588) // 28))
            if code % 28:
                out.append(chr(0x11A7 + code % 28))
        else:
            out.append(char)
    return "".join(out)


def normalize(text: str) -> str:
    """Lower case, no spaces or punctuation: "음료 페트병" and "음료페트병" are one key."""
    return _STRIP.sub("", unicodedata.normalize("NFC", text).lower())


def _grams(key: str) -> frozenset[str]:
    letters = _jamo(key)
    if len(letters) < 2:
        return frozenset({letters})
    return frozenset(letters[i : i + 2] for i in range(len(letters) - 1))


def _index() -> _Index:
    return datasets.current(dictionary.GUIDES, _build_index)


def _build_index() -> _Index:
    guides = {g["id"]: g for g in dictionary.entries()}
    index = _Index(guides)
    for guide in guides.values():
        names = [("name", guide["name"])]
        names += [("legacy", n) for n in guide.get("legacyNames", [])]
        names += [("similar", n) for n in guide.get("similarItems", [])]
        for kind, name in names:
            key = normalize(name)
            if not key:
                continue
            position = len(index.entries)
            grams = _grams(key)
            index.entries.append((key, guide["id"], kind, grams))
            index.by_key[key].append(position)
            for gram in grams:
                index.by_gram[gram].append(position)
    return index


def _similarity(query: str, query_grams: frozenset[str], key: str, grams: frozenset[str]) -> float:
    if query == key:
        return 1.0
    dice = 2 * len(query_grams & grams) / (len(query_grams) + len(grams))
    if query in key or key in query:
        # One name inside the other: close, by how much is covered. A name that narrows the
        # query ("컵라면" in "컵라면 용기") beats one the query narrows ("라면" in "컵라면").
        cover = min(len(query), len(key)) / max(len(query), len(key))
        base = 0.6 if query in key else 0.5
        return max(dice * 0.9, base + 0.3 * cover)
    return dice * 0.9  # a typo-distance match never outranks an exact one


def search(text: str, limit: int = 10, min_score: float = 0.35) -> list[dict[str, Any]]:
    """Guides whose names best match `text`, best first: `{guide_id, name, category, score}`."""
    index = _index()
    query = normalize(text)
    if not query:
        return []
    query_grams = _grams(query)
    candidates = set(index.by_key.get(query, ()))
    for gram in query_grams:
        candidates.update(index.by_gram.get(gram, ()))
    best: dict[str, float] = {}
    for position in candidates:
        key, guide_id, kind, grams = index.entries[position]
        score = _similarity(query, query_grams, key, grams) * WEIGHTS[kind]
        if score > best.get(guide_id, 0.0):
            best[guide_id] = score
    ranked = sorted(best.items(), key=lambda item: (-item[1], index.guides[item[0]]["name"]))
    return [
        {**summary(index.guides[guide_id]), "score": round(score, 3)}
        for guide_id, score in ranked[:limit]
        if score >= min_score
    ]


def guide(guide_id: str) -> dict[str, Any] | None:
    return _index().guides.get(guide_id)


def category(entry: dict[str, Any]) -> dict[str, str]:
    """The guide's first (primary) category path as the contract's `{major, middle, minor?}`."""
    path = entry["categoryPaths"][0] if entry["categoryPaths"] else ["기타"]
    out = {"major": path[0], "middle": path[1] if len(path) > 1 else path[0]}
    if len(path) > 2:
        out["minor"] = path[2]
    return out


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    return {"guide_id": entry["id"], "name": entry["name"], "category": category(entry)}


def source(entry: dict[str, Any]) -> dict[str, str | None]:
    """The guide's citation: the dictionary, its edition and the guide."""
    return {**dictionary.source(), "guide_id": entry["id"]}


def detail(entry: dict[str, Any]) -> dict[str, Any]:
    """The whole guide, as `GET /items/{guide_id}` shows it."""
    return {
        **summary(entry),
        "category_paths": entry["categoryPaths"],
        "discharge_methods": entry["dischargeMethods"],
        "features": entry["features"],
        "notes": entry["notes"],
        "similar_items": entry["similarItems"],
        "legacy_names": entry.get("legacyNames", []),
        "source": source(entry),
    }

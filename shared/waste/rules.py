"""The knowledge base: the Ministry of Environment's 730-item disposal dictionary (품목사전).

Every answer growbin gives is grounded here: a guide id, its category path and its official
discharge steps. The model describes an item; `search` finds the guide (shared/waste/search/:
names, everyday names, typos, states) and says how sure it is: `confidence` is a calibrated
chance that the first guide is right, `confident` whether it is sure enough to answer without
asking. The index is built once per edition of the imported dictionary (shared/waste/
dictionary.py), on first use.
"""

from __future__ import annotations

from typing import Any

from shared.waste import dictionary
from shared.waste.search import confidence, index, ranking, reading


def search(text: str, limit: int = 10, min_score: float = 0.35) -> list[dict[str, Any]]:
    """Guides that best match `text`, best first: `{guide_id, name, category, score,
    confidence}`. `confidence` (first result only a calibrated chance that it is the answer;
    the others the same chance scaled by their score) is what `confident` reads."""
    idx = index.current()
    query = reading.read(text)
    ranked = ranking.rank(text, query)
    if not ranked:
        return []
    chance = confidence.probability(confidence.features(ranked, query))
    if confidence.outside(ranked, query):
        # not household waste (a car, a firearm, asbestos): no guide is the answer, so the
        # neighbour a shared word found is listed but never stated
        chance = min(chance, confidence.OUTSIDE_CHANCE)
    top = ranked[0]["score"]
    return [
        {
            **summary(idx.guides[found["guide_id"]]),
            "score": round(min(found["score"], 1.0), 3),
            "confidence": round(chance * min(1.0, found["score"] / top) if i else chance, 3),
        }
        for i, found in enumerate(ranked[:limit])
        if found["score"] >= min_score
    ]


def confident(results: list[dict[str, Any]]) -> bool:
    """Whether the first result is the answer: its calibrated chance reaches the threshold
    fitted so that confident answers are wrong for at most 2 % of queries."""
    return bool(results) and results[0]["confidence"] >= confidence.threshold()


def guide(guide_id: str) -> dict[str, Any] | None:
    return index.current().guides.get(guide_id)


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

"""How sure the search is: the calibrated chance that the first guide is right.

`features` reads how the first guide was found (its score and margin, named exactly or only
by a phrase, by kin, by a misspelling, the query's nouns it leaves unexplained...); a
logistic fit on them (calibration.json, written by bench/calibrate.py from the labelled
development files) makes them a chance, `probability`, and `threshold` is the chance at or
above which the first guide is called the answer. A query about something outside household
waste (words.yaml `outside`: a car, a firearm, asbestos) is never answered with confidence.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

from shared.waste.search import index, reading, spelling

CALIBRATION = Path(__file__).resolve().parent / "calibration.json"
# The most a first guide may be trusted for a query about something outside household waste:
# under any threshold the calibration fits, so the search says "not sure" and lists the guides.
OUTSIDE_CHANCE = 0.5
# groups of `outside` read only as the item's last word ("자동차 카시트" is a car seat)
OUTSIDE_AS_HEAD = frozenset({"vehicle"})
FEATURES = (
    "top",
    "margin",
    "exact",
    "whole",
    "headless",
    "content",
    "broad",
    "unhonoured",
    "tied",
    "kin",
    "partial",
    "typo",
    "bare",
    "unmade",
    "short_typo",
    "unexplained",
)
# found through a category or a guide's examples, not by its name
BROAD_KINDS = frozenset({"category", "listed", "example"})
TIE = 0.03  # guides within this of the first are as good as tied
UNEXPLAINED_MOST = 3  # unexplained nouns counted: past three the query is a sentence anyway
# a material word and the category it belongs to ("양은" -> 금속, "대나무" -> 일반종량제폐기물)
_MATERIAL_OF = {word: category for category, words in index.MATERIALS.items() for word in words}
# "20kg", "120cm", "s5000": sizes and model numbers, which no guide explains or needs to
_MEASURE = re.compile(r"[0-9a-z]*[0-9][0-9a-z]*")


def outside(ranked: list[dict[str, Any]], query: reading.Query) -> str | None:
    """The word that marks the query as outside household waste (a car, a firearm, asbestos,
    hospital waste...: words.yaml `outside`), where a query word begins with one and the first
    guide does not answer to a name holding it ("자동차 워셔액" is a guide, "폐차할 자동차" none):
    whatever neighbour a shared word found ("LPG 가스통" as 부탄가스) is not the answer."""
    names = index.current().names.get(ranked[0]["guide_id"], []) if ranked else []
    last = query.items[-1] if query.items else ""
    for marker, why in index.outside_words():
        head = why in OUTSIDE_AS_HEAD
        if not any(w.startswith(marker) for w in ([last] if head else query.written)):
            continue
        # a guide named for the thing itself, not for an accessory of it ("오토바이헬멧")
        if not any(n.endswith(marker) if head else marker in n for n in names):
            return marker
    return None


def features(ranked: list[dict[str, Any]], query: reading.Query) -> dict[str, float]:
    """What the calibration reads: how well the first guide scored and by how much; and how it
    was found, as a solid hit differs from a lucky one: named exactly, by the whole query (not
    a phrase of it), or by a phrase without its head; the contents where the query names a
    container; a category's broad guide;
    a state the query gives that the guide's text never speaks to (or leftovers answered by a
    container's guide); other guides tied with it;
    found by its kin (a category's guide for an item no name fits), by a name that is only part
    of the query or of which the query is only part, by a misspelling (of a two-syllable name
    apart: one letter off 수건 is 수전), or by the container word alone; a material the query
    names that the guide's text never does; and how many nouns of the query the guide leaves
    unexplained (a modifier answered instead of the head, a word that points elsewhere)."""
    if not ranked:
        return dict.fromkeys(FEATURES, 0.0)
    idx = index.current()
    first = ranked[0]
    top = first.get("found", first["score"])
    second = max((f.get("found", f["score"]) for f in ranked[1:8]), default=0.0)
    exact = first["exact"] or first["kind"] == "state"
    text = idx.text[first["guide_id"]]
    name = spelling.normalize(idx.guides[first["guide_id"]]["name"])
    asks_container = any(w.endswith(index.CONTAINER_NAMES) for w in query.words)
    unhonoured = any(
        reading.STATE_TEXT.get(state)
        and not any(word in text for word in reading.STATE_TEXT[state])
        for state in query.states
    )
    near = {f["guide_id"] for f in ranked[:8] if f.get("found", f["score"]) >= top - TIE}
    # Found by a phrase that leaves out the last word, the head of a Korean phrase: "사진
    # 앨범" found as 사진 is about something else.
    head = query.words[-1] if query.words else ""
    headless = first["variant"] == "phrase" and not first.get("key", "").endswith(head[:2])
    return {
        "top": top,
        "margin": top - second,
        "exact": float(exact),
        "whole": float(exact and first["variant"] in reading.WHOLE_READINGS),
        "headless": float(headless),
        "content": float(asks_container and not any(w in name for w in index.CONTAINER_NAMES)),
        "broad": float(first["guide_id"] in idx.categories or first["kind"] in BROAD_KINDS),
        # or leftovers asked about, answered by a container's guide ("유통기한 지난 컵라면"
        # as the 컵라면 용기): the contents are the question
        "unhonoured": float(
            (unhonoured and first["kind"] != "state")
            or ("leftover" in query.states and not asks_container and _container_name(name))
        ),
        "tied": float(min(3, len(near) - 1)),
        "kin": float(first["kind"] == "kin"),
        "partial": float(not exact and first.get("how") == "partial"),
        "typo": float(not exact and first.get("how") == "typo"),
        # only the container word matched ("팬시피스트 캔" as a 캔): the thing it held is unknown
        "bare": float(first.get("key") in index.CONTAINER_WORDS and len(query.words) > 1),
        # a letter off a name of two syllables is as often another word (수건 as 수전)
        "short_typo": float(first.get("how") == "typo" and len(first.get("key", "")) <= 2),
        # nouns of the query the first guide does not explain ("TV 놓던 거실장" as 텔레비전:
        # 거실장; "근막 푸는 원통 스펀지" as 수세미: 근막, 원통): part of the query is unanswered
        "unexplained": float(
            min(
                UNEXPLAINED_MOST,
                sum(
                    not _explains(idx, first["guide_id"], first.get("key", ""), word)
                    for word in _nouns(query)
                ),
            )
        ),
        # made of something the guide never names ("나무 옷걸이" as the wire 세탁소 옷걸이)
        "unmade": float(
            first["kind"] != "kin"
            and (
                any(w in idx.made_of and w not in text for w in query.words)
                # or said before the container word ("간장 유리병" as the plastic 간장용기)
                or bool(query.made and query.made not in text)
            )
        ),
    }


def _nouns(query: reading.Query) -> list[str]:
    """The words of the query that name something, as written: no asking words, states,
    verbs, container words, sizes or model numbers, and no single syllables but a material's
    (철); a material word stays even where it ends like a verb ("양은" is no 양 + 은)."""
    known = index.current().by_key
    nouns = []
    for word in query.written:
        plain = reading.strip_particle(reading.strip_ending(word), known)
        if (
            word in reading.FILLER
            or word in reading.STATE_WORDS
            or reading.strip_ending(word) in reading.STATE_WORDS
        ):
            continue
        if word not in _MATERIAL_OF and reading.verbish(word, known):
            continue
        if len(plain) < 2 and plain not in _MATERIAL_OF:
            continue  # one syllable says little, unless it is what the thing is made of (철)
        if plain in index.CONTAINER_WORDS or _MEASURE.fullmatch(plain):
            continue
        nouns.append(plain)
    return nouns


def _explains(idx: index.Index, guide_id: str, key: str, word: str) -> bool:
    """Whether the guide accounts for a word of the query: the name it was found by holds it,
    or one of its names, its text or its uses do. A material word against the guide's own
    material is unexplained whatever its text says ("양은 쟁반" as 나무 쟁반, whose text may
    list other materials)."""
    if word in _MATERIAL_OF:
        name = spelling.normalize(idx.guides[guide_id]["name"])
        own = {category for m, category in _MATERIAL_OF.items() if len(m) >= 2 and m in name}
        if own and _MATERIAL_OF[word] not in own:
            return False
    if word in key or (key and key in word) or word in idx.text[guide_id]:
        return True
    if any(word in name or (len(name) >= 2 and name in word) for name in idx.names[guide_id]):
        return True
    return any(len(stem) >= 2 and word.startswith(stem) for stem in idx.uses_of[guide_id])


def _container_name(name: str) -> bool:
    """A guide named for a container ("컵라면 용기(종이)", "우유팩")."""
    return any(word in name for word in ("용기", "병", "캔", "팩", "통"))


@functools.cache
def _calibration() -> dict[str, Any]:
    return json.loads(CALIBRATION.read_text(encoding="utf-8"))


def probability(values: dict[str, float], constants: dict[str, Any] | None = None) -> float:
    """The fitted chance that the first guide is right (a logistic fit on the features)."""
    fit = constants or _calibration()
    z = fit["intercept"] + sum(fit["weights"][name] * values[name] for name in fit["weights"])
    return 1 / (1 + math.exp(-z))


def threshold() -> float:
    """The confidence at or above which the first guide is called the answer."""
    return float(_calibration()["threshold"])

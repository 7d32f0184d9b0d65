"""Scoring every guide a reading of the query finds, fused into one ranking.

Each reading's key is looked up exactly and by resemblance (letter pairs shared, and edit
distance for the closest few: a typo is a letter or two away); a match counts by the kind of
name it is and the reading it came from. Then the passes that know more than letters: a
container whose contents' guide is about no recyclable; an item no name fits, judged by its
kin; a thing described, not named (uses.yaml); the guide's own text, breaking near-ties;
heads and modifiers (a Korean phrase ends in what the thing is); a broken glass item as
broken glass. `rank` returns every candidate with its score and how it was found, which the
confidence reads.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from itertools import chain
from typing import Any

from shared.waste.search import index, reading, spelling

# How much a match on each kind of name counts. Similar items are other items disposed of
# alike: evidence, never a name. A category's lists name things by their kind ("신문지" under
# 종이), so they point at the category's guide a little below a guide's own name.
WEIGHTS = {
    "name": 1.0,
    "alias": 1.0,
    "part": 0.97,
    "legacy": 0.95,
    "category": 0.9,
    "listed": 0.86,
    "example": 0.84,
    "similar": 0.5,
}
# Shorter readings of a query count only when they are a name exactly: resemblance is for
# the query as written, its core, and its head word.
EXACT_ONLY = frozenset({"phrase", "container", "content"})
# Inside a longer query, a category's name ("음식물 쓰레기로 버려도 돼?") is what the asker
# guesses, not the item: a phrase that names a category counts a little less.
CATEGORY_IN_PHRASE = 0.9
CONTAINER_CATEGORY = "재활용폐기물"  # a guide under it is about the thing as a recyclable
# Soft containers: a pouch of shampoo is no shampoo bottle, whatever the shampoo guide says.
SOFT_CONTAINERS = frozenset({"파우치", "비닐", "봉지"})
CONTENTS_ONLY = 0.85  # the contents' guide, where the query asks about their container
UNKNOWN_CONTENTS = 0.6  # the material's guide, where no guide names the contents at all
MATERIAL = 0.95  # the material's guide, against the contents' exact match it stands for
# An item the dictionary lacks is judged by its kin: names ending in the same last syllables
# (the head of a Korean compound: 의류건조기 is a 건조기, like 식기건조기 and 식품건조기) whose
# guides share a category point at that category's guide, with this score: under any name
# found, above resemblance that shares only letters.
KIN = 0.62
KIN_AGREE = 2 / 3  # of the kin guides, at least this share in one category; and two of them
ANOTHER_WORD = 0.6  # letter pairs shared with a name one whole syllable away count this much
MODIFIER = 0.4  # the base score of a name found inside a query, not at its end
TYPO_CANDIDATES = 12  # how many of the closest names edit distance looks at, per reading
TEXT_BONUS = 0.02  # per query word the guide's own text uses: breaks near-ties only
STATE_BONUS = 0.01  # per state of the query the guide's text speaks to: breaks ties only
# A query that describes the thing instead of naming it ("머리 말리는 거", "화장 지울 때 쓰는
# 솜"): each query word that begins with one of a guide's use stems (uses.yaml), or ends in one
# of its kinds, is evidence for it, a word many guides share less (1 / sqrt of how many). The
# evidence e scores DESCRIBED * (1 - exp(-DESCRIBED_RATE * e)): always under a name found by a
# phrase (0.8), so a name wins and a description surfaces a guide only where nothing names it.
DESCRIBED = 0.75
# "구멍 뚫어서 버려야 해?", "씻어서": what the asker did before throwing it out, not what the
# thing is for (a description says "말리는", "지울 때", "우리고 난")
DONE_BEFORE = ("어서", "아서", "해서", "고서", "여서", "워서")
VERB_FINALS = frozenset({4, 8, 16})  # ㄴ, ㄹ, ㅁ as the last letter of a syllable
# what may follow a one-syllable stem in the same word: particles and verb endings
STEM_ENDINGS = frozenset(
    ["", *"는은을를이가에의도로고아어던기다지게면서음", "아서", "어서", "고서", "는데", "에서"]
)
DESCRIBED_RATE = 1.3  # how fast evidence saturates: two rare words say nearly all
VAGUE = 8  # a kind word this many guides share is what the thing is, not which
VAGUE_HEAD = 0.85  # a name that only resembles such a word, where the query describes
KIND_SHARE = 0.5  # a kind word ("그릇", "기계") says less than what the thing is for
USES_BONUS = 0.03  # per described word, to a guide already found by a name: breaks near-ties
# A Korean noun phrase ends in its head, what the thing is; the words before say which one.
# A guide whose names take in more of the query's words is the one the query describes:
# "피자 상자" is the 피자박스 (피자, 상자), not the 택배 상자 (상자 alone); "소닉케어 칫솔" the
# 전동칫솔 (its names hold 소닉케어 and 칫솔). Each word past the first adds this much.
COVERS = 0.05
# A guide found by the head word alone, whose own name says which one it is with a word the
# query lacks, while the query says which one with words the guide never answers to: "칫솔
# 본체" is not the 컴퓨터 본체, "과자 상자" not the 택배 상자. Its score is multiplied by this.
ANOTHER_KIND = 0.85
# Where some guide holds the query's head, by a name or a misspelling of one and scoring at
# least HELD, a guide found only by a phrase without the head is multiplied by HEADLESS.
HELD = 0.7
HEADLESS = 0.85
# A glass thing of these categories, broken, goes out as broken glass (index.BROKEN_GLASS).
GLASS_CATEGORIES = frozenset({"유리병"})


def rank(text: str, query: reading.Query | None = None) -> list[dict[str, Any]]:
    """Every candidate guide, best first: `{guide_id, score, kind, exact, variant, closeness}`
    (`query`: the text already `reading.read`, so a caller that needs the reading reads it once)."""
    idx = index.current()
    query = query or reading.read(text)
    if not query.variants:
        return []  # punctuation and spaces only: nothing to look for
    best: dict[str, dict[str, Any]] = {}
    for variant, key, weight in query.variants:
        letters = spelling.jamo(key)
        qgrams = spelling.grams(letters)
        positions = list(idx.by_key.get(key, []))
        # One syllable read out of a longer query ("해", "통") is too little to resemble by.
        loose = variant not in EXACT_ONLY and (len(key) > 1 or variant == "whole")
        if loose:
            # Counted in C: thousands of names share a common letter pair.
            counts = Counter(chain.from_iterable(idx.by_gram.get(gram, ()) for gram in qgrams))
            floor = 0.25 * len(qgrams)
            positions += [p for p, n in counts.items() if n >= floor]
        scored = [(_similarity(key, qgrams, idx.entries[p]), p, "") for p in positions]
        if loose and len(letters) <= 18 and variant != "generic":
            # Edit distance is dear in Python: only for the closest few by letter pairs. A
            # query already respelled is not misspelled again ("스테인리스국자" no 수저).
            closest = sorted(scored, reverse=True)[:TYPO_CANDIDATES]
            scored += [
                (_typo(key, letters, idx.entries[p]), p, "typo") for s, p, _ in closest if s < 1.0
            ]
        for similarity, position, how in scored:
            entry = idx.entries[position]
            score = similarity * WEIGHTS[entry.kind] * weight
            if variant in ("phrase", "head") and entry.guide_id in idx.categories:
                score *= CATEGORY_IN_PHRASE
            found = best.get(entry.guide_id)
            if found is None or score > found["score"]:
                best[entry.guide_id] = {
                    "guide_id": entry.guide_id,
                    "score": score,
                    "kind": entry.kind,
                    "exact": similarity == 1.0 and entry.kind in index.EXACT_KINDS,
                    "variant": variant,
                    "key": key,
                    "how": how or _overlap(key, entry.key),
                }
    if query.container:
        _contents_container(idx, query, best)
    _kin(idx, query, best)
    _described(idx, text, query, best)
    whole = query.variants[0][1]
    wgrams = spelling.grams(spelling.jamo(whole))
    words = [w for w in query.words if len(w) >= 2]
    for found in best.values():
        text_of = idx.text[found["guide_id"]]
        found["score"] += TEXT_BONUS * min(2, sum(w in text_of for w in words))
        # a state the guide's text speaks to ("큰" and 「크기가 커 ... 대형폐기물」) breaks ties
        found["score"] += STATE_BONUS * sum(
            any(t in text_of for t in reading.STATE_TEXT.get(state, ())) for state in query.states
        )
        # a described guide is as close as the share of its uses the query says
        closeness = spelling.dice(wgrams, idx.name_grams[found["guide_id"]])
        found["closeness"] = closeness + found.get("fit", 0)
        # the score as found: what the confidence reads (heads and modifiers only reorder)
        found["found"] = found["score"]
    _heads(idx, query, best)
    # a tie goes to the guide whose names take in more of the query's words (피자박스 over
    # 택배 상자 for "피자 상자"), then to the closer name
    ranked = sorted(
        best.values(),
        key=lambda f: (-round(f["score"], 9), -f.get("covers", 0), -f["closeness"], f["guide_id"]),
    )
    if "broken" in query.states and ranked:
        ranked = _broken(idx, ranked)
    return ranked


def _similarity(query: str, qgrams: frozenset[str], entry: index.Entry) -> float:
    """1 for the same name; a name inside the other by how much it covers; else how many
    letter pairs they share (never as much as exact). `_typo` refines the closest few."""
    if query == entry.key:
        return 1.0
    dice = spelling.dice(qgrams, entry.grams)
    if spelling.another_word(query, entry.key):
        return dice * ANOTHER_WORD  # "된장통" shares most letter pairs with "간장통"
    score = dice * 0.85
    if query in entry.key or entry.key in query:
        cover = min(len(query), len(entry.key)) / max(len(query), len(entry.key))
        # A name that narrows the query ("컵라면 용기" for 컵라면) beats one it narrows; a
        # name inside the query but not at its end is a modifier of something else (의류 in
        # 의류건조기): least of all.
        base = 0.6 if query in entry.key else 0.5 if query.endswith(entry.key) else MODIFIER
        score = max(score, base + 0.3 * cover)
    return score


def _typo(key: str, letters: str, entry: index.Entry) -> float:
    """A misspelling is a letter or two away: "패트병" is one vowel from "페트병". One syllable
    swapped for another with a different first consonant and vowel or final is another word
    ("된장 통" is no "간장 통", "혈당" no "혈압"), however few letters that is."""
    distance = spelling.edit_distance(letters, entry.letters)
    longest = max(len(letters), len(entry.letters))
    if distance > max(1, longest // 4) or spelling.another_word(key, entry.key):
        return 0.0
    return 0.9 * (1 - distance / longest) + 0.02


def _overlap(key: str, name: str) -> str:
    """How a query and a name meet: the same; one ends the other (a Korean compound's head is
    last: 김치냉장고 is a 냉장고); one inside the other elsewhere, where the two name different
    things (오토바이 in 오토바이 헬멧, 의류 in 의류건조기); or only letters in common."""
    if key == name:
        return "same"
    if name.endswith(key) or key.endswith(name):
        return "head"
    if key in name or name in key:
        return "partial"
    return "letters"


def _contents_container(
    idx: index.Index, query: reading.Query, best: dict[str, dict[str, Any]]
) -> None:
    """ "카놀라유 통" is the 식용유 용기 and "고추장 통" a plastic tub: where the query names a
    container and its contents' guide is not about a recyclable (food, oil, medicine), the
    container the dictionary names for those contents ("식용유" + 용기), else the guide of the
    container's usual material, ranks above the contents."""
    if "leftover" in query.states:
        return  # "광택제 남은 통": the contents are the question
    content = next((k for v, k, _ in query.variants if v == "content"), None)
    word = query.container
    held = [f for f in best.values() if _held(f, content or "", word, query.states, idx.made_of)]
    material = idx.materials.get(query.made or word)
    if not held and material and not any(f["exact"] for f in best.values()):
        # contents no guide names ("된장 통"): a container of that word's usual material
        _suggest(best, material, content or "", UNKNOWN_CONTENTS)
    for found in held:
        guide = idx.guides[found["guide_id"]]
        guide_name = spelling.normalize(guide["name"])
        if found["variant"] != "content" and guide_name.endswith(index.CONTAINER_NAMES):
            continue  # "농약병", "프링글스": the guide is the container itself (빈 농약용기)
        # a pouch is no bottle: the guide of a bottled thing (its text is about the 용기)
        soft = (
            word in SOFT_CONTAINERS
            and idx.kind_of.get(found["guide_id"]) != material
            and "용기" in idx.text[found["guide_id"]]
        )
        if not soft and any(p and p[0] == CONTAINER_CATEGORY for p in guide["categoryPaths"]):
            continue  # 샴푸, 매니큐어: the guide is about the bottle (but not about a pouch)
        score = found["score"]
        found["score"] = score * CONTENTS_ONLY
        names = [guide_name, *(spelling.normalize(p) for p in index.name_parts(guide["name"]))]
        own = {
            idx.entries[p].guide_id
            for name in names
            for container in (word, *index.CONTAINER_WORDS[word])
            for p in idx.by_key.get(name + container, ())
            if idx.entries[p].kind in index.EXACT_KINDS
        } - {found["guide_id"]}
        material = idx.materials.get(query.made or word)
        picks = [(g, score, "container") for g in sorted(own)]
        picks += [(material, score * MATERIAL, "kin")] if material and not own else []
        for gid, value, kind in picks:
            if gid not in best or best[gid]["score"] < value:
                best[gid] = {
                    "guide_id": gid,
                    "score": value,
                    "kind": kind,
                    "exact": False,
                    "variant": "container",
                    "key": content,
                    "how": kind,
                }


def _held(
    found: dict[str, Any], content: str, word: str, states: frozenset[str], made: dict[str, str]
) -> bool:
    """Whether a guide was found for what the container held: by the contents ("샴푸" of
    "샴푸 리필 파우치", a phrase inside them that is no container itself), or, once emptied,
    by the contents' own name for the container ("다 먹은 한약 빈 파우치": 한약파우치 names
    the medicine, and the medicine is gone)."""
    key, variant = found["key"], found["variant"]
    if not key or not content:
        return False
    if variant == "content":
        return key == content
    if variant == "phrase":  # not a material: "도자기 화병" is no 도자기's vase
        return (
            key in content
            and not reading.container_word(key)
            and key not in (*index.CONTAINER_WORDS, *made)
        )
    own = {content + name for name in (word, *index.CONTAINER_WORDS[word])}
    return "used" in states and variant in reading.WHOLE_READINGS and key in own


def _kin(idx: index.Index, query: reading.Query, best: dict[str, dict[str, Any]]) -> None:
    """An item no name fits, judged by its kin: the guides whose names end like the query's
    head ("의류건조기": 식기건조기, 식품건조기) point, when most share one category, at that
    category's guide, below any name found."""
    key = next((k for v, k, _ in query.variants if v == "stripped"), query.variants[0][1])
    if not spelling.hangul(key):
        return
    for n in index.HEAD_SYLLABLES:
        kin = idx.by_head.get(key[-n:], set()) if len(key) > n else set()
        votes = Counter(idx.kind_of[g] for g in kin if g in idx.kind_of)
        if not votes:
            continue
        rep, count = votes.most_common(1)[0]
        if count >= 2 and count >= KIN_AGREE * sum(votes.values()):
            _suggest(best, rep, key[-n:])
            return
    # "스텐 국자": a material word, then a head no name fits
    for word in query.words[:-1] or [key]:
        for material in sorted(idx.made_of, key=len, reverse=True):
            if word.startswith(material) and len(key) > len(material):
                _suggest(best, idx.made_of[material], material)
                return


def _suggest(best: dict[str, dict[str, Any]], guide_id: str, key: str, score: float = KIN) -> None:
    """A category's guide found by kin, below any name found for it."""
    if guide_id not in best or best[guide_id]["score"] < score:
        best[guide_id] = {
            "guide_id": guide_id,
            "score": score,
            "kind": "kin",
            "exact": False,
            "variant": "kin",
            "key": key,
            "how": "kin",
        }


def _described(
    idx: index.Index, text: str, query: reading.Query, best: dict[str, dict[str, Any]]
) -> None:
    """A thing described, not named ("머리 말리는 거 고장났어", "멸치 다시 우리고 난 팩"): the
    guides whose uses a query word begins with, or whose kind it ends in, weighed by how few
    guides share the word, under any name; a guide a name found already only gains a tie-break.
    The words are read from the text as written: the verbs a reading drops are the
    description."""
    evidence: dict[str, float] = defaultdict(float)
    used: dict[str, int] = defaultdict(int)  # words that matched a use, not only a kind
    words: dict[str, int] = defaultdict(int)  # words that matched at all
    for raw in spelling.words(text):
        word = spelling.normalize(raw)
        if not word or word in reading.FILLER or word.endswith(DONE_BEFORE):
            continue
        weights: dict[str, tuple[float, bool]] = {}  # guide -> (this word's weight, by a use)
        for n in range(1, len(word) + 1):
            # a use stem begins the word ("말리" in "말리는", "건지" in "건질"), a kind ends it
            # ("판" in "고무판")
            for table, key, share, by_use in (
                *((idx.uses, stem, 1.0, True) for stem in _stems(word, n)),
                (idx.kinds, word[-n:], KIND_SHARE, False),
            ):
                owners = table.get(key, ())
                for guide_id in owners:
                    value = share / math.sqrt(len(owners))
                    if value > weights.get(guide_id, (0.0, False))[0]:
                        weights[guide_id] = (value, by_use)
        for guide_id, (value, by_use) in weights.items():
            evidence[guide_id] += value
            used[guide_id] += by_use
            words[guide_id] += 1
    described = [g for g, e in evidence.items() if used[g] and words[g] >= 2]
    vague = {k for v, k, _ in query.variants if v == "head" and len(idx.kinds.get(k, ())) >= VAGUE}
    if described and vague:
        # "먼지 빨아들이는 기계": names that only resemble a kind word many things are
        # (공기계 for 기계) say less than the description before it
        for found in best.values():
            if not found["exact"] and found["key"] in vague:
                found["score"] *= VAGUE_HEAD
    for guide_id, e in evidence.items():
        if not used[guide_id] or words[guide_id] < 2:
            # a kind alone ("그릇") describes nothing in particular, and one word is a name
            # ("사과" is the fruit, not the net around it; "메모리" no 메모)
            continue
        score = DESCRIBED * (1 - math.exp(-DESCRIBED_RATE * e))
        found = best.get(guide_id)
        if found is not None and found["exact"]:
            continue  # named: the name's score stands
        if found is not None and found["score"] >= score:
            # found by resemblance only (its head, its letters): the description adds to it
            found["score"] += USES_BONUS * min(2, used[guide_id])
            continue
        score += USES_BONUS * min(2, used[guide_id]) if found is not None else 0.0
        # how much of what the guide is for the query says: its closeness, for ties
        fit = words[guide_id] / max(1, idx.described_by.get(guide_id, 1))
        best[guide_id] = {
            "fit": fit,
            "guide_id": guide_id,
            "score": score,
            "kind": "described",
            "exact": False,
            "variant": "described",
            "key": "",
            "how": "described",
        }


def _stems(word: str, n: int) -> tuple[str, ...]:
    """The use stems the word's first n syllables may be: themselves, and the n-th without
    the ㄴ, ㄹ or ㅁ a verb takes there ("건질" is 건지 + ㄹ, "우린" 우리 + ㄴ; never 바닥 as 바다).
    One syllable is a stem only before an ending ("닦는", "불을"), never inside a longer word
    (불 in 불판, 물 in 물놀이)."""
    if n == 1 and word[1:] not in STEM_ENDINGS:
        return ()
    last = ord(word[n - 1]) - 0xAC00
    if 0 <= last < 11172 and last % 28 in VERB_FINALS:
        return word[:n], word[: n - 1] + chr(0xAC00 + last - last % 28)
    return (word[:n],)


def _heads(idx: index.Index, query: reading.Query, best: dict[str, dict[str, Any]]) -> None:
    """Head and modifiers: a guide whose names take in several of the query's words gains a
    little for each past the first; one found by the head word alone, whose own name carries
    a modifier the query lacks ("컴퓨터" of 컴퓨터 본체) while the query's own modifier is a
    name the guide never answers to ("칫솔 본체"), loses: the query names another kind of
    that head. Where a guide holds the head (its name, or a misspelling of it: "피아노
    메트로눔" is a 메트로놈), one found only by a modifier ("피아노") loses. A category's guide
    is a place, not a kind of thing: none of this applies to it."""
    if len(query.items) < 2:
        return
    words = [w for w in dict.fromkeys(query.items) if _headword(w)]
    head = query.items[-1]
    whole = query.variants[0][1]
    # the query's own modifier is a thing the dictionary names (칫솔, 피자, 코렐), or modifier
    # and head together are a name some guide answers to ("과자 상자")
    named = any(w in idx.by_key for w in words if w != head) or any(
        f["how"] == "same" and f["key"] != head and f["key"].endswith(head) for f in best.values()
    )
    holders = []
    for found in best.values():
        names = idx.names.get(found["guide_id"], ())
        # a word that begins or ends a name ("피자" of 피자박스, "칫솔" of 전동칫솔), not one
        # inside it ("포장" of 과일포장재)
        covered = [w for w in words if any(n.startswith(w) or n.endswith(w) for n in names)]
        found["covers"] = len(covered)
        if found["guide_id"] in idx.categories:
            continue
        by_head = found["variant"] == "head" and (found["exact"] or found["how"] == "typo")
        found["heads"] = by_head or head in covered
        if len(covered) >= 2:
            found["score"] += COVERS * (len(covered) - 1)
        elif by_head and not any(w != head for w in covered):
            modifier = _own_modifier(idx.guides[found["guide_id"]]["name"], found["key"])
            if modifier and modifier not in whole and named:
                found["score"] *= ANOTHER_KIND
                found["heads"] = False
                continue
        if found["heads"] and (by_head or len(covered) >= 2) and found["score"] >= HELD:
            holders.append(found)
    # a misspelling is a holder only where it points at one guide ("스티커" is one letter
    # from 스티머 and 스피커 alike: another word, not a typo)
    typos = [f for f in holders if f["how"] == "typo" and f["variant"] == "head"]
    if len(typos) > 1:
        holders = [f for f in holders if f not in typos]
    if not holders or query.head != head or not _headword(head):
        return
    for found in best.values():
        if found["variant"] == "phrase" and not found.get("heads") and head not in found["key"]:
            found["score"] *= HEADLESS


def _headword(word: str) -> bool:
    """A word the heads pass reads: Hangul of two syllables or more, or an English word of
    three letters or more (`reading` puts an English query in Korean order, head last)."""
    if spelling.hangul(word):
        return len(word) >= 2
    return word.isascii() and word.isalpha() and len(word) >= 3


def _own_modifier(name: str, key: str) -> str | None:
    """What a guide's name says before the head a query matched it by: "컴퓨터" of 컴퓨터 본체
    found by 본체, "과일포장재" of 과일포장재(스티로폼) found by 스티로폼, "사기" of 사기 그릇
    found by its alias 접시 (a head of two syllables or less: a longer alias, 위생장갑 of
    일회용 비닐장갑, is the thing itself); None where the key is the name or begins it
    (베개커버 by 베개)."""
    plain = unicodedata.normalize("NFKC", name)
    outside = re.sub(r"\([^)]*\)", " ", plain)
    inside = [spelling.normalize(p) for p in re.findall(r"\(([^)]*)\)", plain)]
    if key in inside:
        return spelling.normalize(outside) or None
    if spelling.normalize(outside).endswith(key):
        return spelling.normalize(outside)[: -len(key)] or None
    words = outside.split()
    if len(words) > 1 and len(key) <= 2 and key not in spelling.normalize(outside):
        return spelling.normalize("".join(words[:-1]))
    return None


def _broken(idx: index.Index, ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A broken glass item goes out as broken glass (불연성 bag), whatever it was whole."""
    top = idx.guides[ranked[0]["guide_id"]]
    glass = any(path[-1] in GLASS_CATEGORIES for path in top["categoryPaths"])
    if not glass or idx.broken_glass is None or ranked[0]["guide_id"] == idx.broken_glass:
        return ranked
    rest = [f for f in ranked if f["guide_id"] != idx.broken_glass]
    lead = {**ranked[0], "guide_id": idx.broken_glass, "kind": "state", "closeness": 1.0}
    return [lead, *rest]

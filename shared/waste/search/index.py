"""Every name a guide answers to, indexed once per edition of the dictionary.

A guide is found by its own name and each part of it ("계란껍질(달걀껍질)" is also "달걀껍질"),
its legacy names, the team's everyday names (aliases.yaml: brands, slang, misspellings,
English), the representative guides' lists of what a category takes and what must go
elsewhere, category names, and the examples a guide's own text gives of what it covers;
items disposed of alike (`similarItems`) are entries too, only ever weak evidence. Beside the
names: each guide's text, what its item is and is for (uses.yaml), the representative guides
by category and material, and the kin that share a name's last syllables. words.yaml, read
here too, says how the dictionary writes a brand or a misspelling, and which words name
things outside household waste.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.core import datasets
from shared.waste import dictionary
from shared.waste.search import spelling

HERE = Path(__file__).resolve().parent
ALIASES = HERE / "aliases.yaml"
USES = HERE / "uses.yaml"
WORDS = HERE / "words.yaml"
# The kinds of entry that are a guide's own names: a match on one is exact, and they are the
# names a guide answers to (`Index.names`) and its kin share. The others (a category's name
# or list, a guide's examples, similar items) point at a guide without naming it.
EXACT_KINDS = {"name", "alias", "part", "legacy"}
# A container word at the end of a query names the container, not its contents: "분유 캔" is
# the 분유통, "향수 공병" the 향수병, "마요네즈 튜브" the 마요네즈 용기. Each word is tried as
# each name the dictionary gives such a container (a 깡통 is a can, never a bottle).
CONTAINER_WORDS = {
    "용기": ("용기", "통", "병", "캔"),
    "통": ("통", "용기", "병", "캔"),
    "병": ("병", "용기", "통"),
    "공병": ("병", "용기"),
    "캔": ("캔", "통", "용기"),
    "깡통": ("캔", "통", "용기"),
    "튜브": ("용기",),
    "팩": ("팩", "봉지"),
    "봉지": ("봉지", "팩"),
    "페트병": ("용기", "통"),  # a PET bottle of soy sauce is the 간장용기, no glass 병
    "트레이": ("용기", "트레이"),
    "파우치": ("파우치", "팩", "봉지"),
    "비닐": ("비닐", "봉지", "팩"),
}
# Words for a container: a query that names one asks about the container, not the contents.
CONTAINER_NAMES = (*CONTAINER_WORDS, "케이스", "뚜껑")
# A container word at the end of a query, where the contents' guide is not about a container
# (고추장 is food waste, 식용유 goes to the oil bin): the container of that material, named as
# the representative guide for it ("고추장 통" -> 플라스틱). The contents' guide counts less.
CONTAINER_MATERIAL = {
    "용기": "플라스틱",
    "통": "플라스틱",
    "튜브": "플라스틱",
    "병": "유리병",
    "공병": "유리병",
    "캔": "금속",
    "깡통": "금속",
    "팩": "종이팩",
    "봉지": "비닐",
    "페트병": "플라스틱",
    "트레이": "플라스틱",
    "파우치": "비닐",
    "비닐": "비닐",
    "플라스틱": "플라스틱",
    "페트": "플라스틱",
    "유리": "유리병",
    "알루미늄": "금속",
    "스텐": "금속",
    "금속": "금속",
}
# An item the dictionary lacks is judged by its kin (ranking.KIN); failing kin, a material word
# before the head ("스텐 국자", "나무 막대") names the representative guide whose list takes
# things of that material (the first word of each is in that guide's text: 「철, 알루미늄,
# 스테인리스 등으로 제작된 금속제품」, 「나무제품, ... 고무제품」, 「유리, 벽돌, ... 도자기」).
MATERIALS = {
    "금속": ("스테인리스", "스텐", "스테인레스", "철", "쇠", "알루미늄", "금속", "양은"),
    "일반종량제폐기물": ("나무", "원목", "목재", "고무"),
    "불연성종량제폐기물": ("도자기", "유리", "사기"),
    "플라스틱": ("플라스틱", "합성수지"),
    "종이": ("종이",),
    "비닐": ("비닐",),
}
# How many last syllables of a name are its head, the kind of thing it is (의류건조기 is a
# 건조기): the kin of an item the dictionary lacks share them.
HEAD_SYLLABLES = (3, 2)
# A guide's own text gives examples of what it covers ("가위, 칼, 송곳 등 날카로운 금속",
# "돼지 기름, 오리 기름 등 동물성 기름", "잡화(신발, 가방, 벨트 등)"): an item the dictionary has
# no name for is answered by the guide that lists it, under any name. Its lists also name
# materials and places ("플라스틱, 금속 등으로"), so a word listed by more guides than this is
# a material, not an example, and only the list's ending "등 <kind>" or "등)" counts.
EXAMPLE_GUIDES = 2
# Words after a list's 등 that make its items something other than things to throw out:
# materials, dirt and harm, kinds and colours, information.
NOT_ITEMS = ("재질", "소재", "물질", "종류", "색상", "정보", "성분", "악영향")
# a sentence going on ("다양하며"), a colour ("파란색"), a class of things ("양념류")
NOT_A_THING = ("며", "여", "한", "색", "류")
DOING = ("하는", "되는", "있는", "없는", "같은")  # verbs before a noun, never its subject
# A list of sources of a part ("호두, 은행 등 단단한 껍데기는"): each example is that part.
PARTS = {"껍데기": ("껍데기", "껍질"), "씨앗": ("씨앗", "씨"), "가루": ("가루",)}
_EXAMPLES = re.compile(r"([^()\[\]:.]*?(?:,\s*[^,()\[\]:.]+?)+)\s등(?=\s[가-힣]|\))")
_BRACKET_OR_STOP = re.compile(r"[()\[\]:.]")  # what a list of examples never spans
# The dictionary's guide for broken glass: a broken glass item goes there, whole or not.
BROKEN_GLASS = "깨진 유리"


@dataclass
class Entry:
    key: str
    guide_id: str
    kind: str
    grams: frozenset[str]
    letters: str


@dataclass
class Index:
    guides: dict[str, dict[str, Any]]
    entries: list[Entry] = field(default_factory=list)
    by_key: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_gram: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    text: dict[str, str] = field(default_factory=dict)  # guide id -> its normalized text
    # guide id -> its name's letter pairs, for closeness: computed once, not per query
    name_grams: dict[str, frozenset[str]] = field(default_factory=dict)
    categories: set[str] = field(default_factory=set)  # the representative guides' ids
    materials: dict[str, str] = field(default_factory=dict)  # container word -> its material
    made_of: dict[str, str] = field(default_factory=dict)  # material word -> its category
    # guide id -> the representative guide of its first category path ("식기건조기" ->
    # 전기전자제품): where an item the dictionary lacks goes, judged by its kin
    kind_of: dict[str, str] = field(default_factory=dict)
    # the last HEAD_SYLLABLES of every name -> the guides so named ("건조기" -> 식기건조기, ...)
    by_head: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    broken_glass: str | None = None
    # names of the representative guides, by any name: where an asker guesses an item goes
    places: frozenset[str] = frozenset()
    # uses.yaml: a use stem or a kind word -> the guides it describes
    uses: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    kinds: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    described_by: dict[str, int] = field(default_factory=dict)  # guide -> its words' count
    # guide id -> every name it answers to exactly (name, parts, legacy names, aliases)
    names: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # guide id -> its use stems and kinds: with `names`, what of a query its first guide
    # explains (the calibration's `unexplained`)
    uses_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # every word a name is written with: what a word no name uses may be a misspelling of
    spelled: set[str] = field(default_factory=set)


def current() -> Index:
    """The index of the dictionary's current edition, built on first use after an import."""
    return datasets.current(dictionary.GUIDES, _build)


def _build() -> Index:
    guides = {g["id"]: g for g in dictionary.entries()}
    idx = Index(guides)
    by_name = {spelling.normalize(g["name"]): g["id"] for g in guides.values()}

    def add(name: str, guide_id: str, kind: str) -> None:
        key = spelling.normalize(name)
        if not key or guide_id not in guides:
            return
        if kind == "similar" and key in by_name:
            return  # another guide's own name: that guide answers it, not this one
        letters = spelling.jamo(key)
        idx.by_key[key].append(len(idx.entries))
        entry = Entry(key, guide_id, kind, spelling.grams(letters), letters)
        if kind not in ("similar", "example"):  # only when named exactly, never by resemblance
            for gram in entry.grams:
                idx.by_gram[gram].append(len(idx.entries))
            words = (key, *map(spelling.normalize, name.split()))
            idx.spelled.update(w for w in words if len(w) >= 2 and spelling.hangul(w))
        idx.entries.append(entry)

    for guide in guides.values():
        add(guide["name"], guide["id"], "name")
        for part in name_parts(guide["name"]):
            add(part, guide["id"], "part")
        for legacy in guide.get("legacyNames") or []:
            add(legacy, guide["id"], "legacy")
        for similar in guide.get("similarItems") or []:
            add(similar, guide["id"], "similar")
        text = [guide["name"], *guide.get("features", []), *guide.get("dischargeMethods", [])]
        idx.text[guide["id"]] = spelling.normalize(" ".join(text))
        idx.name_grams[guide["id"]] = spelling.grams(
            spelling.jamo(spelling.normalize(guide["name"]))
        )
    for group in _table(ALIASES):
        for alias in group["names"]:
            add(str(alias), group["guide"], "alias")
    # Category names name the guide of that category ("전기전자 제품류" -> 전기전자제품).
    categories = {c for g in guides.values() for path in g["categoryPaths"] for c in path}
    for name in categories:
        target = _closest(name, by_name)
        if target and spelling.normalize(name) not in by_name:
            add(name, target, "category")
    for category, entry in dictionary.representative().items():
        own = entry["id"] if entry["id"] in guides else _closest(category, by_name)
        if own:
            idx.categories.add(own)
        if own and spelling.normalize(category) not in by_name:
            add(category, own, "category")
        for section in entry["sections"]:
            title = section["title"]
            target = own if title == "대상품목" else _destination(title, by_name)
            if target is None or (title != "대상품목" and "배출" not in title):
                continue
            for line in section["lines"]:
                for name in _listed(line):
                    add(name, target, "listed")
    # Last, so that a word some guide already answers to is never an example of another.
    listed_by: dict[str, set[str]] = defaultdict(set)
    for guide in guides.values():
        for line in [*guide.get("features", []), *guide.get("dischargeMethods", [])]:
            for name in examples(line):
                listed_by[name].add(guide["id"])
    for name, owners in listed_by.items():
        if len(owners) <= EXAMPLE_GUIDES and spelling.normalize(name) not in idx.by_key:
            for guide_id in owners:
                add(name, guide_id, "example")
    idx.broken_glass = by_name.get(spelling.normalize(BROKEN_GLASS))
    idx.places = frozenset(
        e.key for e in idx.entries if e.guide_id in idx.categories and e.kind != "similar"
    )
    idx.kind_of = _kinds(guides, idx.categories)
    for entry in _table(USES):
        if entry["guide"] not in guides:
            continue
        for phrase in entry.get("uses") or []:
            for stem in str(phrase).split():
                idx.uses[spelling.normalize(stem)].add(entry["guide"])
                idx.uses_of[entry["guide"]].add(spelling.normalize(stem))
        for kind in entry.get("kind") or []:
            idx.kinds[spelling.normalize(str(kind))].add(entry["guide"])
            idx.uses_of[entry["guide"]].add(spelling.normalize(str(kind)))
        idx.described_by[entry["guide"]] = len(entry.get("uses") or []) + len(entry["kind"] or [])
    for entry in idx.entries:
        if entry.kind in EXACT_KINDS and entry.key not in idx.names[entry.guide_id]:
            idx.names[entry.guide_id].append(entry.key)
        if entry.kind in EXACT_KINDS and spelling.hangul(entry.key):
            for n in HEAD_SYLLABLES:
                if len(entry.key) > n:
                    idx.by_head[entry.key[-n:]].add(entry.guide_id)
    reps = {spelling.normalize(guides[g]["name"]): g for g in idx.categories}
    idx.made_of = {
        spelling.normalize(word): reps[spelling.normalize(name)]
        for name, words in MATERIALS.items()
        if spelling.normalize(name) in reps
        for word in words
    }
    idx.materials = {
        w: reps[spelling.normalize(n)]
        for w, n in CONTAINER_MATERIAL.items()
        if spelling.normalize(n) in reps
    }
    return idx


def name_parts(name: str) -> list[str]:
    """A guide name's parts: "계란껍질(달걀껍질)" -> 계란껍질, 달걀껍질; "의류, 원단" -> 의류, 원단.
    A bracketed qualifier ("(내열)", "(섬유 재질)") is a part only when it names a thing."""
    name = unicodedata.normalize("NFKC", name)
    outside = re.sub(r"\([^)]*\)", " ", name)
    inside = re.findall(r"\(([^)]*)\)", name)
    parts = [p for p in re.split(r",", outside) if p.strip()]
    parts += [
        p for p in inside if len(spelling.normalize(p)) >= 3 and not p.strip().endswith("재질")
    ]
    return [
        p
        for p in parts
        if spelling.normalize(p) and spelling.normalize(p) != spelling.normalize(name)
    ]


def _listed(line: str) -> list[str]:
    """Item names in a representative guide's list line. "동물의 뼈: 소·돼지·생선뼈 등" names
    동물의 뼈, 소 뼈, 돼지 뼈, 생선뼈; "금속캔: 철캔, 알루미늄캔" names 금속캔, 철캔, 알루미늄캔."""
    label, colon, rest = line.partition(":")
    if not colon:
        label, rest = "", line
    head = label.split("의 ")[-1].strip() if "의 " in label else ""
    names = [label.strip()] if label.strip() else []
    for piece in re.split(r"[,·()]|\s및\s|\s또는\s|과\s|와\s", rest):
        piece = re.split(r"\s등", piece)[0].strip()
        if (
            not piece
            or len(spelling.normalize(piece)) > 12
            or re.search(r"(있음|됨|함|형태|\d)$", piece)
        ):
            continue
        if head and not spelling.normalize(piece).endswith(spelling.normalize(head)):
            piece = f"{piece} {head}"
        names.append(piece)
    return [n for n in names if len(spelling.normalize(n)) >= 2]


def examples(line: str) -> list[str]:
    """The things a sentence of a guide gives as examples: "게, 가재 등 갑각류 껍데기는" names
    가재 껍데기. The first piece is cut to as many words as the second ("식물성 기름은 참기름,
    들기름"), and a piece of two words counts only where every piece ends in the same word
    ("돼지 기름, 오리 기름"): otherwise the words before are the sentence, not the thing.
    Only a list the sentence is about counts (`_kind_after`): not materials ("면, 모, 나일론 등
    다양한 섬유재질로"), dirt ("흙, 자갈, 잡초 등 이물질을"), places ("약국, 보건소 등
    전용수거함에", "학교, 사무실, 식당 등 사업소에서") or colours ("검정색, 파란색")."""
    names: list[str] = []
    for found in _lists(line):
        kind = _kind_after(line[found.end() :])
        before = line[: found.start()]
        if kind is None or (before.endswith("(") and before[:-1].endswith(CONTAINER_NAMES)):
            continue  # "투명페트병(주류, 양념류 등)": what the bottle held, not the bottle
        pieces = [p.split() for p in found.group(1).split(",")]
        said = pieces[0][: -len(pieces[1])]
        if said and said[-1].endswith("의"):
            continue  # "육수팩의 멸치, 버섯 등": what the guide's item holds, not the item
        pieces[0] = pieces[0][-len(pieces[1]) :]
        heads = {p[-1] for p in pieces if p}
        for words in pieces:
            if not words or (len(words) > 1 and len(heads) > 1):
                continue
            name = " ".join(words)
            key = spelling.normalize(name)
            # "다양하며", "분류하여", "또한": the sentence going on, no thing; "파란색": a colour
            if not spelling.hangul(key) or not 1 <= len(key) <= 8 or key.endswith(NOT_A_THING):
                continue
            if len(key) < 2 and not kind:  # one syllable is a name only with its part: 감 씨
                continue
            # "복숭아, 감, 아보카도 등 단단한 씨앗은": the seed of each, never the fruit
            whole = not kind or key.endswith(kind)
            names += [name] if whole else [f"{name} {part}" for part in kind]
    return names


def _lists(line: str) -> Iterator[re.Match[str]]:
    """`_EXAMPLES.finditer(line)`, found the same but tried only where a list can begin: where
    the line or a bracketed or colon-separated part begins, or where the last list ended. A list
    spans no bracket, colon or full stop, so one that begins inside a part also matches from the
    part's start; trying every letter instead backtracks over the whole line at each."""
    if "," not in line or "등" not in line:
        return
    pos = 0
    while pos < len(line):
        found = _EXAMPLES.match(line, pos)
        if found:
            yield found
            pos = found.end()
            continue
        stop = _BRACKET_OR_STOP.search(line, pos)
        if stop is None:
            return
        pos = stop.end()


def _kind_after(rest: str) -> tuple[str, ...] | None:
    """What follows a list's 등 says whether the listed are things the guide is about: the
    subject or topic of the sentence ("등 날카로운 금속은", "등 동물성 기름이", "(신발, 가방,
    벨트 등),"). None when they are not, () when they are the things themselves, or the part
    of each that is meant ("등 단단한 씨앗은": 씨앗, 씨)."""
    if rest.startswith(")"):
        after = rest[1:].lstrip()
        return () if not after or after[0] in ",)" or after.startswith(("은", "는")) else None
    for word in rest.split()[:3]:
        if word.endswith(","):
            return None  # "식품, 과일, 전자제품 등 포장용기, 단열재": modifiers of another list
        word = word.rstrip(".)")
        if any(abstract in word for abstract in NOT_ITEMS):
            return None
        if word.endswith(("을", "를", "에", "에서", "과", "와", "로", "의", "도")):
            return None
        if word.endswith(DOING):
            continue  # "등 재단시 사용하는 제품으로": a verb that describes, no subject
        if word.endswith(("은", "는", "이", "가", "입니다")):
            stem = word[:-1]
            return next((parts for part, parts in PARTS.items() if stem.endswith(part)), ())
    return None


def _destination(title: str, by_name: dict[str, str]) -> str | None:
    """The guide a "...로 배출해야 하는 품목" section sends its items to (its first category)."""
    found = re.search(r"\(?([가-힣]+?)(?:봉투)?(?:\s또는[^)]*)?\s?(?:으로|로) 배출", title)
    return _closest(found.group(1), by_name) if found else None


def _closest(name: str, by_name: dict[str, str]) -> str | None:
    """The guide whose name is this category name, or begins it ("플라스틱" for 플라스틱류)."""
    key = spelling.normalize(name)
    if key in by_name:
        return by_name[key]
    best = max(
        ((len(k), gid) for k, gid in by_name.items() if len(k) >= 2 and key.startswith(k)),
        default=None,
    )
    if best:
        return best[1]
    scored = [
        (spelling.dice(spelling.grams(spelling.jamo(key)), spelling.grams(spelling.jamo(k))), gid)
        for k, gid in by_name.items()
    ]
    score, gid = max(scored, default=(0.0, None))
    return gid if score >= 0.75 else None


def _kinds(guides: dict[str, dict[str, Any]], categories: set[str]) -> dict[str, str]:
    """Each guide's first category path -> the representative guide of that category: the one
    whose first path it is, else the only one that lists it, else the one whose name begins
    it ("금속류 고철" -> 금속)."""
    first = {
        tuple(guides[g]["categoryPaths"][0]): g for g in categories if guides[g]["categoryPaths"]
    }
    listing: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for g in categories:
        for path in guides[g]["categoryPaths"]:
            listing[tuple(path)].add(g)
    names = {spelling.normalize(guides[g]["name"]): g for g in categories}
    out = {}
    for gid, guide in guides.items():
        if not guide["categoryPaths"]:
            continue
        path = tuple(guide["categoryPaths"][0])
        rep = first.get(path)
        if rep is None and len(listing.get(path, ())) == 1:
            rep = next(iter(listing[path]))
        if rep is None:
            rep = _closest(path[-1], names)
        if rep is not None:
            out[gid] = rep
    return out


def _table(path: Path) -> Any:
    """One of the team's tables, read only when the index is built: cold starts do not pay for
    yaml. They hold thousands of names, which libyaml reads five times faster than Python."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)


@functools.cache
def respellings() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """words.yaml as (written, dictionary word) pairs, longest first: brands that begin a word,
    and spellings found anywhere in one."""
    table = _table(WORDS)

    def pairs(section: str) -> tuple[tuple[str, str], ...]:
        found = [
            (spelling.normalize(str(w)), spelling.normalize(word))
            for word, written in table[section].items()
            for w in written
        ]
        return tuple(sorted(found, key=lambda p: -len(p[0])))

    return pairs("brands"), pairs("spellings")


@functools.cache
def outside_words() -> tuple[tuple[str, str], ...]:
    """words.yaml's `outside` section as (word, why) pairs, longest first."""
    table = _table(WORDS)
    found = [
        (spelling.normalize(str(w)), why) for why, words in table["outside"].items() for w in words
    ]
    return tuple(sorted(found, key=lambda p: -len(p[0])))

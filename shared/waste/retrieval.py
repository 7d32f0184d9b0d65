"""Finding the guide a person means: every name the data and the team know, fused into a score.

A guide is found by its own name and each part of it ("계란껍질(달걀껍질)" is also "달걀껍질"),
its legacy names, the team's everyday names (aliases.yaml: brands, slang, misspellings,
English), the representative guides' lists of what a category takes and what must go
elsewhere, and category names; items disposed of alike (`similarItems`) count only weakly, and
the guide's own text only breaks near-ties. A thing described, not named ("머리 말리는 거"),
is weak evidence for the guides whose uses and kind (uses.yaml) its words say, under any name.
Names are compared as Hangul jamo (a typo is one letter away), by bigram overlap and edit
distance. A query is read as a person writes it: sentence endings and particles dropped, state
words ("깨진", "다 쓴") taken out of the name and kept as states, the head noun of a longer
phrase tried on its own ("모나미 볼펜" -> 볼펜).

`rank` returns every candidate with its score and the features the calibration reads
(shared/waste/calibration.json, fitted by bench/calibrate.py).
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, pairwise
from pathlib import Path
from typing import Any

from shared.core import datasets
from shared.waste import dictionary

HERE = Path(__file__).resolve().parent
ALIASES = HERE / "aliases.yaml"
USES = HERE / "uses.yaml"
CALIBRATION = HERE / "calibration.json"
WORDS = HERE / "words.yaml"

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
EXACT_KINDS = {"name", "alias", "part", "legacy"}
# A query read another way counts a little less than the query as written.
# Shorter phrases of a longer query: from PHRASE_WEIGHT for the first words to
# PHRASE_WEIGHT + PHRASE_POSITION for the last (the head).
PHRASE_WEIGHT = 0.8
PHRASE_POSITION = 0.12
# Inside a longer query, a category's name ("음식물 쓰레기로 버려도 돼?") is what the asker
# guesses, not the item: a phrase that names a category counts a little less.
CATEGORY_IN_PHRASE = 0.9
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
# A material said before the container word ("들기름 유리병", "워셔액 플라스틱 통") is how it
# is made, not what it held: the contents are the words before it, and the material's guide
# stands for the container where no guide names the contents.
CONTAINER_MADE = ("플라스틱", "알루미늄", "유리", "비닐", "스텐", "금속", "페트")
# A container word alone, after the thing it held, is the least of the query: "핸드크림 튜브"
# is the cream's container, not a swimming 튜브.
BARE_CONTAINER = 0.9
# The query in the dictionary's words (words.yaml: brands as what they sell, misspellings and
# slang as the spelling) counts a little under the query as written, which may be a name.
GENERIC = 0.96
# Where the asker guesses the item goes ("음식물 쓰레기에 넣어도 돼?"): the answer only when
# the query names nothing else.
PLACE = PHRASE_WEIGHT
# Shorter readings of a query count only when they are a name exactly: resemblance is for
# the query as written, its core, and its head word.
EXACT_ONLY = frozenset({"phrase", "container", "content"})
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
# Failing kin, a material word before the head ("스텐 국자", "나무 막대") names the
# representative guide whose list takes things of that material (the first word of each is
# in that guide's text: 「철, 알루미늄, 스테인리스 등으로 제작된 금속제품」, 「나무제품, ...
# 고무제품」, 「유리, 벽돌, ... 도자기」).
MATERIALS = {
    "금속": ("스테인리스", "스텐", "스테인레스", "철", "쇠", "알루미늄", "금속", "양은"),
    "일반종량제폐기물": ("나무", "원목", "목재", "고무"),
    "불연성종량제폐기물": ("도자기", "유리", "사기"),
    "플라스틱": ("플라스틱", "합성수지"),
    "종이": ("종이",),
    "비닐": ("비닐",),
}
HEAD_SYLLABLES = (3, 2)
ANOTHER_WORD = 0.6  # letter pairs shared with a name one whole syllable away count this much
MODIFIER = 0.4  # the base score of a name found inside a query, not at its end
KIN = 0.62
KIN_AGREE = 2 / 3  # of the kin guides, at least this share in one category; and two of them
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

_STRIP = re.compile(r"[\s()\[\]{}·,./_\-~'\"!?:;]+")
_WORDS = re.compile(r"[^\s,./()!?~·:;\"']+")
# Words that ask rather than name: "깨진 맥주병 어떻게 버려요?" is about 깨진 맥주병.
_ASKING = """
    어떻게 어떡해 어떡하죠 버려요 버리나요 버리려고요 버리려는데 버리려면 버릴 버리는 버리는법
    버려야 버려도 버리기 버림 분리수거 분리배출 배출 배출법 방법 처리 처리법 어디에 어디
    하나요 해요 돼요 되나요 되요 인가요 나요 이거 이건 이게 그거 저거 좀 요 있어요
    있는데 있는 없는 버려 버리지 아니야 아니에요 맞아 맞나요 알려줘 알려주세요 해야 돼 되나
    가능 가능한가요 수거 했어요 했는데 하려고 해 그냥 거 것 따로
    how to dispose throw away of the a an my
"""
FILLER = frozenset(_ASKING.split())
ENDINGS = (
    "이에요",
    "예요",
    "에요",
    "입니다",
    "이요",
    "인데요",
    "인데",
    "이랑",
    "랑",
    "은요",
    "는요",
    "이야",
)
PARTICLES = ("은", "는", "을", "를", "이", "가", "도", "의", "에", "만")  # 만: "커버만 따로"
AFTER_CONSONANT = frozenset("은을이")
AFTER_VOWEL = frozenset("는를가")
VERB_ENDINGS = (
    "요",
    "까",
    "지",
    "니",
    "야",
    "돼",
    "줘",
    "서",
    "면",
    "는데",
    "려고",
    "하는",
    "면서",
    "나",
    "죠",
    "은",
    "된",
    "할",
    "한",
    "려",
    "워",
    "어도",
    "아도",
    "여도",
    "해도",
    "돼도",
    # done before the item was left over: "구워먹고 남은", "담겼던"
    "먹고",
    "쓰고",
    "하고",
    "내고",
    "이고",
    "던",
)
# States change how an item goes out, not what it is: taken out of the name, kept as states.
STATES = {
    "broken": (
        "깨진",
        "깨졌어요",
        "깨져서",
        "깨진거",
        "깨져버린",
        "깨뜨린",
        "부서진",
        "박살난",
        "산산조각난",
        "금간",
        "금이간",
        "cracked",
        "shattered",
    ),
    # worn out: not fit for someone else ("해지거나 오염된 바지는 종량제봉투로")
    "worn": (
        "찢어진",
        "해진",
        "헤진",
        "해어진",
        "구멍난",
        "뜯어진",
        "터진",
        "늘어난",
        "닳은",
        "torn",
    ),
    "dirty": ("음식물묻은", "기름묻은", "묻은", "더러운", "오염된", "젖은", "dirty"),
    "used": (
        "다쓴",
        "다쓰고",
        "다먹은",
        "다마신",
        "다먹고",
        "다마시고",
        "쓴",
        "사용한",
        "빈",
        "쓰던",
        "헌",
        "낡은",
        "오래된",
        "empty",
        "used",
    ),
    "out_of_order": ("고장난", "고장", "망가진", "안되는", "작동안하는", "broken"),
    # emptied: "다 먹은 통" is the tub, "먹다 남은 소스" the sauce
    "leftover": ("먹다남은", "남은", "유통기한지난", "상한"),
    "large": ("큰", "커다란", "대형", "거대한", "large", "big"),
    "small": ("작은", "조그만", "소형", "미니", "small", "mini"),
}
_STATE_WORDS = {w: state for state, words in STATES.items() for w in words}
# English, as expats type it: the same states in English words. "broken" is both a broken
# thing (glass goes to 깨진 유리) and one out of order (an umbrella, a laptop); "old" and
# "dead" ("dead batteries") are used up; "greasy" and "stained" are dirty; "rotten" and
# "expired" are leftovers gone off.
ENGLISH_STATES = {
    "broken": ("broken", "out_of_order"),
    "cracked": ("broken",),
    "shattered": ("broken",),
    "smashed": ("broken",),
    "torn": ("worn",),
    "ripped": ("worn",),
    "worn": ("worn",),
    "wornout": ("worn",),
    "dirty": ("dirty",),
    "greasy": ("dirty",),
    "oily": ("dirty",),
    "stained": ("dirty",),
    "soiled": ("dirty",),
    "wet": ("dirty",),
    "used": ("used",),
    "empty": ("used",),
    "old": ("used",),
    "dead": ("used",),
    "spent": ("used",),
    "finished": ("used",),
    "leftover": ("leftover",),
    "rotten": ("leftover",),
    "expired": ("leftover",),
    "spoiled": ("leftover",),
    "moldy": ("leftover",),
    "mouldy": ("leftover",),
    "large": ("large",),
    "big": ("large",),
    "huge": ("large",),
    "small": ("small",),
    "tiny": ("small",),
    "mini": ("small",),
}
# Words of an English question, never of the item: "how to dispose of an old laptop charger".
_ENGLISH_ASKING = """
    how to do does did i we you should can could where what which is are it its this that
    these those please dispose disposal disposing throw throwing thrown away out get rid
    recycle recycling recyclable removal remove go goes put toss tossing a an the my our
    some your with of for from or and on in inside into between at
"""
ENGLISH_ASKING = frozenset(_ENGLISH_ASKING.split())
# After an English item, what the asker guesses it is or where it goes: "eggshells trash or
# food waste" is about eggshells.
ENGLISH_GUESSES = frozenset({"trash", "garbage", "rubbish", "waste", "recycling", "disposal"})
# "a stack of old magazines", "a roll of steel wire": an amount, so the item is what follows.
_ENGLISH_AMOUNTS = """
    stack stacks pile piles bunch bunches pair pairs piece pieces lot lots handful heap heaps
    couple set sets roll rolls load loads bundle bundles sheet sheets amount
"""
ENGLISH_AMOUNTS = frozenset(_ENGLISH_AMOUNTS.split())
# Dirt said with "with": "pizza box with grease" is a dirty pizza box.
_ENGLISH_DIRT = "grease oil food sauce stains stain dirt mold mould residue leftovers ketchup"
ENGLISH_DIRT = frozenset(_ENGLISH_DIRT.split())
# The dictionary's guide for broken glass: a broken glass item goes there, whole or not.
BROKEN_GLASS = "깨진 유리"
GLASS_CATEGORIES = frozenset({"유리병"})
# Verbs of holding after a place with 에: "병에 남은 기름", "봉지 안에 든 방습제".
HOLDING = frozenset(
    [
        "남은",
        "든",
        "담긴",
        "담겨있던",
        "들어있던",
        "들어있는",
        "붙은",
        "있던",
        "묻은",
        "깔던",
        "끼워진",
    ]
)
AND = ("랑", "이랑")  # "대가리랑 내장": the item is two things
EMPTY = "빈"  # glued to a container word: "빈통" is an empty tub
QUANTITIES = frozenset(["한", "두", "세", "네", "다섯", "몇", "여러", "반"])
COUNTERS = frozenset(
    [
        *CONTAINER_WORDS,
        *[
            "박스",
            "상자",
            "개",
            "묶음",
            "포대",
            "자루",
            "장",
            "뭉치",
            "더미",
            "켤레",
            "벌",
            "알",
            "봉",
        ],
    ]
)


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


@dataclass
class Query:
    """A query read the ways a person may mean it: (variant kind, key) pairs and its states."""

    variants: list[tuple[str, str, float]]  # (kind of reading, key, how much it counts)
    states: frozenset[str]
    words: list[str]
    container: str | None = None  # the container word the item's name ends in ("통")
    made: str | None = None  # the material said before that word ("유리" in "들기름 유리병")
    # the item's words as read (particles and endings off), the head last
    items: list[str] = field(default_factory=list)
    # the last of them where it was written bare, ending the item ("피아노 메트로눔"), not
    # with a particle or an ending that makes it a place or a predicate ("변기에", "골판지인데")
    head: str | None = None
    written: list[str] = field(default_factory=list)  # every word as written, normalized


# ---- text -----------------------------------------------------------------------------------


def jamo(text: str) -> str:
    """Hangul syllables split into their letters, so distances count letters, not syllables."""
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
    """Lower case, no spaces or punctuation, full-width folded: "음료 페트병" is "음료페트병"."""
    return _STRIP.sub("", unicodedata.normalize("NFKC", text).lower())


def grams(letters: str) -> frozenset[str]:
    if len(letters) < 2:
        return frozenset({letters})
    return frozenset(letters[i : i + 2] for i in range(len(letters) - 1))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance over letters (jamo): "밧데리" and "배터리" are 3 apart, not 2 words."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


# ---- the index, built once per edition of the dictionary --------------------------------------


def index() -> Index:
    return datasets.current(dictionary.GUIDES, _build)


def _parts(name: str) -> list[str]:
    """A guide name's parts: "계란껍질(달걀껍질)" -> 계란껍질, 달걀껍질; "의류, 원단" -> 의류, 원단.
    A bracketed qualifier ("(내열)", "(섬유 재질)") is a part only when it names a thing."""
    name = unicodedata.normalize("NFKC", name)
    outside = re.sub(r"\([^)]*\)", " ", name)
    inside = re.findall(r"\(([^)]*)\)", name)
    parts = [p for p in re.split(r",", outside) if p.strip()]
    parts += [p for p in inside if len(normalize(p)) >= 3 and not p.strip().endswith("재질")]
    return [p for p in parts if normalize(p) and normalize(p) != normalize(name)]


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
        if not piece or len(normalize(piece)) > 12 or re.search(r"(있음|됨|함|형태|\d)$", piece):
            continue
        if head and not normalize(piece).endswith(normalize(head)):
            piece = f"{piece} {head}"
        names.append(piece)
    return [n for n in names if len(normalize(n)) >= 2]


def _examples(line: str) -> list[str]:
    """The things a sentence of a guide gives as examples: "게, 가재 등 갑각류 껍데기는" names
    가재 껍데기. The first piece is cut to as many words as the second ("식물성 기름은 참기름,
    들기름"), and a piece of two words counts only where every piece ends in the same word
    ("돼지 기름, 오리 기름"): otherwise the words before are the sentence, not the thing.
    Only a list the sentence is about counts (`_kind_after`): not materials ("면, 모, 나일론 등
    다양한 섬유재질로"), dirt ("흙, 자갈, 잡초 등 이물질을"), places ("약국, 보건소 등
    전용수거함에", "학교, 사무실, 식당 등 사업소에서") or colours ("검정색, 파란색")."""
    names = []
    for found in _EXAMPLES.finditer(line):
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
            key = normalize(name)
            # "다양하며", "분류하여", "또한": the sentence going on, no thing; "파란색": a colour
            if not _hangul(key) or not 1 <= len(key) <= 8 or key.endswith(NOT_A_THING):
                continue
            if len(key) < 2 and not kind:  # one syllable is a name only with its part: 감 씨
                continue
            # "복숭아, 감, 아보카도 등 단단한 씨앗은": the seed of each, never the fruit
            whole = not kind or key.endswith(kind)
            names += [name] if whole else [f"{name} {part}" for part in kind]
    return names


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
    key = normalize(name)
    if key in by_name:
        return by_name[key]
    best = max(
        ((len(k), gid) for k, gid in by_name.items() if len(k) >= 2 and key.startswith(k)),
        default=None,
    )
    if best:
        return best[1]
    scored = [(_dice(grams(jamo(key)), grams(jamo(k))), gid) for k, gid in by_name.items()]
    score, gid = max(scored, default=(0.0, None))
    return gid if score >= 0.75 else None


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


def _loader(yaml: Any) -> Any:
    # The tables hold thousands of names: libyaml reads them five times faster than Python.
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _aliases() -> list[dict[str, Any]]:
    import yaml  # only when the index is built: cold starts do not pay for it

    return yaml.load(ALIASES.read_text(encoding="utf-8"), Loader=_loader(yaml))


def _uses() -> list[dict[str, Any]]:
    import yaml  # with the aliases, only when the index is built

    return yaml.load(USES.read_text(encoding="utf-8"), Loader=_loader(yaml))


def _build() -> Index:
    guides = {g["id"]: g for g in dictionary.entries()}
    idx = Index(guides)
    by_name = {normalize(g["name"]): g["id"] for g in guides.values()}

    def add(name: str, guide_id: str, kind: str) -> None:
        key = normalize(name)
        if not key or guide_id not in guides:
            return
        if kind == "similar" and key in by_name:
            return  # another guide's own name: that guide answers it, not this one
        letters = jamo(key)
        idx.by_key[key].append(len(idx.entries))
        entry = Entry(key, guide_id, kind, grams(letters), letters)
        if kind not in ("similar", "example"):  # only when named exactly, never by resemblance
            for gram in entry.grams:
                idx.by_gram[gram].append(len(idx.entries))
            words = (key, *map(normalize, name.split()))
            idx.spelled.update(w for w in words if len(w) >= 2 and _hangul(w))
        idx.entries.append(entry)

    for guide in guides.values():
        add(guide["name"], guide["id"], "name")
        for part in _parts(guide["name"]):
            add(part, guide["id"], "part")
        for legacy in guide.get("legacyNames") or []:
            add(legacy, guide["id"], "legacy")
        for similar in guide.get("similarItems") or []:
            add(similar, guide["id"], "similar")
        text = [guide["name"], *guide.get("features", []), *guide.get("dischargeMethods", [])]
        idx.text[guide["id"]] = normalize(" ".join(text))
        idx.name_grams[guide["id"]] = grams(jamo(normalize(guide["name"])))
    for group in _aliases():
        for alias in group["names"]:
            add(str(alias), group["guide"], "alias")
    # Category names name the guide of that category ("전기전자 제품류" -> 전기전자제품).
    categories = {c for g in guides.values() for path in g["categoryPaths"] for c in path}
    for name in categories:
        target = _closest(name, by_name)
        if target and normalize(name) not in by_name:
            add(name, target, "category")
    for category, entry in dictionary.representative().items():
        own = entry["id"] if entry["id"] in guides else _closest(category, by_name)
        if own:
            idx.categories.add(own)
        if own and normalize(category) not in by_name:
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
    examples: dict[str, set[str]] = defaultdict(set)
    for guide in guides.values():
        for line in [*guide.get("features", []), *guide.get("dischargeMethods", [])]:
            for name in _examples(line):
                examples[name].add(guide["id"])
    for name, owners in examples.items():
        if len(owners) <= EXAMPLE_GUIDES and normalize(name) not in idx.by_key:
            for guide_id in owners:
                add(name, guide_id, "example")
    idx.broken_glass = by_name.get(normalize(BROKEN_GLASS))
    idx.places = frozenset(
        e.key for e in idx.entries if e.guide_id in idx.categories and e.kind != "similar"
    )
    idx.kind_of = _kinds(guides, idx.categories)
    for entry in _uses():
        if entry["guide"] not in guides:
            continue
        for phrase in entry.get("uses") or []:
            for stem in str(phrase).split():
                idx.uses[normalize(stem)].add(entry["guide"])
                idx.uses_of[entry["guide"]].add(normalize(stem))
        for kind in entry.get("kind") or []:
            idx.kinds[normalize(str(kind))].add(entry["guide"])
            idx.uses_of[entry["guide"]].add(normalize(str(kind)))
        idx.described_by[entry["guide"]] = len(entry.get("uses") or []) + len(entry["kind"] or [])
    for entry in idx.entries:
        if entry.kind in EXACT_KINDS and entry.key not in idx.names[entry.guide_id]:
            idx.names[entry.guide_id].append(entry.key)
        if entry.kind in EXACT_KINDS and _hangul(entry.key):
            for n in HEAD_SYLLABLES:
                if len(entry.key) > n:
                    idx.by_head[entry.key[-n:]].add(entry.guide_id)
    reps = {normalize(guides[g]["name"]): g for g in idx.categories}
    idx.made_of = {
        normalize(word): reps[normalize(name)]
        for name, words in MATERIALS.items()
        if normalize(name) in reps
        for word in words
    }
    idx.materials = {
        w: reps[normalize(n)] for w, n in CONTAINER_MATERIAL.items() if normalize(n) in reps
    }
    return idx


def _hangul(key: str) -> bool:
    return bool(key) and all("가" <= c <= "힣" for c in key)


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
    names = {normalize(guides[g]["name"]): g for g in categories}
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


# ---- reading a query --------------------------------------------------------------------------


def read(text: str, known: dict[str, list[int]] | None = None) -> Query:
    """The ways a query may be meant: as written; without asking words, verbs, states and
    sizes; without endings and particles; and each shorter phrase of it, later ones first (a
    Korean phrase ends in its head: "모나미 볼펜" is a 볼펜), where a word with 로 that names
    something is where the asker thinks it goes ("종이로 버려도 돼?"), not the item."""
    known = known if known is not None else index().by_key
    words = [w for w in _WORDS.findall(unicodedata.normalize("NFKC", text).lower()) if w]
    states: set[str] = set()
    english = bool(words) and all(w.isascii() for w in words) and any(c.isalpha() for c in text)
    if english:
        words = _english_order(words, known, states)
    core: list[str] = []
    i = 0
    while i < len(words):
        word = normalize(words[i])
        pair = word + normalize(words[i + 1]) if i + 1 < len(words) else ""
        if pair in _STATE_WORDS and i + 2 < len(words) and pair not in known:
            states.add(_STATE_WORDS[pair])
            i += 2
            continue
        if len(words) > 2 and _measure(word, normalize(words[i + 1]) if pair else ""):
            i += 2  # "옷핀 한 봉지", "낙엽 몇 봉지": how much, not in what
            continue
        emptied = _emptied(word) if len(words) > 1 else None
        if emptied is not None:
            # "빈통", "빈병", "빈거": the empty state glued to a container word, or to "thing"
            states.add("used")
            if emptied:
                core.append(emptied)
            i += 1
            continue
        state = _STATE_WORDS.get(word) or _STATE_WORDS.get(_strip_ending(word))
        if state and len(words) > 1 and word not in known:
            states.add(state)
        elif word in FILLER or (len(words) > 1 and _verbish(word, known) and not _names(pair)):
            pass
        else:
            core.append(word)
        i += 1
    variants = [("whole", normalize(text), 1.0)]
    container = made = None
    items: list[str] = []
    head: str | None = None
    if core:
        stripped = [_strip_particle(_strip_ending(w), known) for w in core]
        away = _destinations(core, known, index().places)
        items = [w for i, w in enumerate(stripped) if i not in away] or stripped
        head = core[-1] if stripped[-1] == core[-1] and len(core) - 1 not in away else None
        if any(_strip_ending(w) != w and w.endswith(AND) for w in core[:-1]):
            head = None  # "고등어 대가리랑 내장": two things, two heads
        # where the asker guesses it goes is the answer only when nothing else is found
        places = [("phrase", place, PLACE) for place in away.values()]
        variants += [("core", "".join(core), 1.0), ("stripped", "".join(items), 0.98)]
        variants += _containers("".join(items))
        container = _container_word("".join(items))
        made = _made("".join(items))
        phrases = _restated(_phrases(items), items, known)
        written = [normalize(w) for w in words]
        variants += _outside(phrases, core, items, away, written) + places
        generic = [_corrected(word) for word in _generic(items)]
        if generic != items:
            # The same query in the dictionary's words ("하이트 캔" -> 맥주캔, "스뎅 솥" ->
            # 스테인리스솥), a little under the words as written.
            variants.append(("generic", "".join(generic), GENERIC))
            variants += [(k, key, w * GENERIC) for k, key, w in _containers("".join(generic))]
            variants += [(k, key, w * GENERIC) for k, key, w in _phrases(generic)]
    singular = _english([normalize(w) for w in core or words]) if english else []
    if singular and singular != [normalize(w) for w in core or words]:
        variants.append(("stripped", "".join(singular), 0.98))
        # exact only: "pad" resembles ipad and notepad, where "pads" was a cotton pad
        variants += [("phrase", key, w * 0.98) for _, key, w in _phrases(singular)]
    seen: set[str] = set()
    unique = []
    for kind, key, weight in variants:
        if key and key not in seen:
            seen.add(key)
            unique.append((kind, key, weight))
    written = [normalize(w) for w in words]
    return Query(
        unique,
        frozenset(states),
        [normalize(w) for w in core],
        container,
        made,
        items,
        head,
        written,
    )


def _measure(word: str, following: str) -> bool:
    """A number and a counter ("한 봉지", "두 박스", "3개"): an amount of the item, so the
    counter is no container that held it."""
    amount = word in QUANTITIES or word.isdigit()
    return amount and _strip_particle(_strip_ending(following), {}) in COUNTERS


def _emptied(word: str) -> str | None:
    """ "빈통" after a name is that thing's empty tub ("요플레 빈통": the 요플레 통), written as
    one word: the container word it is glued to ("" for "빈거", an empty thing), or None. An
    alias of its own ("빈병") counts only alone: after a brand it is that brand's bottle."""
    rest = word[len(EMPTY) :]
    if not word.startswith(EMPTY) or not rest:
        return None
    rest = _strip_particle(_strip_ending(rest), {})
    if rest in CONTAINER_WORDS:
        return rest
    return "" if rest in FILLER else None


def _english_order(words: list[str], known: dict[str, list[int]], states: set[str]) -> list[str]:
    """An English query in the order a Korean one is read, head last, its states taken out:
    "bottle of wine" is a wine bottle, "lid of a pot" a pot lid, "flat iron for hair" a hair
    flat iron; an amount before "of" ("stack of old magazines") is no item; "with" and what
    follows say what is on it ("pizza box with grease": dirty); asking words, a guess after
    the item ("eggshells trash or food waste") and state adjectives ("broken", "used",
    "empty", "greasy") go, unless the words together are a name the dictionary knows."""
    words = [w.strip("'-") for w in words]
    words = [w for w in words if w]
    whole = normalize("".join(words))
    if whole in known:
        return words
    # a guess after "or", and the guess word that ends the item: "eggshells trash or ..."
    if "or" in words[1:]:
        words = words[: words.index("or")]
    while len(words) > 1 and words[-1] in ENGLISH_GUESSES:
        if normalize("".join(words)) in known:
            break  # "food waste" is a name
        words = words[:-1]
    # "with ...": what is on the thing, not the thing
    if "with" in words[1:]:
        at = words.index("with")
        if any(_english([w])[0] in ENGLISH_DIRT or w in ENGLISH_DIRT for w in words[at + 1 :]):
            states.add("dirty")
        words = words[:at]
    # "X of Y", "X for Y", "X from Y": Y says which X, so it goes before the head
    for joint in ("of", "for", "from", "on", "in", "inside"):
        if joint in words[1:-1]:
            at = words.index(joint, 1)
            head, rest = words[:at], words[at + 1 :]
            head = [w for w in head if w not in ENGLISH_ASKING]
            if joint == "of" and head and all(w in ENGLISH_AMOUNTS for w in head[-1:]):
                head = head[:-1]  # "stack of", "roll of": how much, not what
            words = rest + head
    out: list[str] = []
    for i, word in enumerate(words):
        pair = normalize(word + (words[i + 1] if i + 1 < len(words) else ""))
        named = word in known or (i + 1 < len(words) and pair in known)
        if word in ENGLISH_STATES and len(words) > 1 and not named:
            states.update(ENGLISH_STATES[word])
        elif word in ENGLISH_ASKING and len(words) > 1 and not named:
            continue
        else:
            out.append(word)
    return out or words


def _english(words: list[str]) -> list[str]:
    """English plurals, word by word: "pizza boxes" is a pizza box, "AA batteries" AA battery
    (the aliases are singular; a plural the table names stays as written too)."""
    out = []
    for word in words:
        if len(word) > 3 and word.endswith("ies"):
            word = word[:-3] + "y"
        elif len(word) > 3 and word.endswith(("xes", "ches", "shes", "sses")):
            word = word[:-2]
        elif len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us")):
            word = word[:-1]
        out.append(word)
    return out


def _outside(
    phrases: list[tuple[str, str, float]],
    core: list[str],
    items: list[str],
    away: dict[int, str],
    written: list[str],
) -> list[tuple[str, str, float]]:
    """Where the item is kept is not the item: in "들기름 병에 남은 기름", "육수팩 안에 든 멸치",
    the words up to the last one with 에 and a verb of holding (남은, 든, 붙은) say where it
    is, so a phrase of
    those words alone ("들기름 병") is no reading of it. The query as written still is."""
    if away or len(core) != len(items):
        return phrases
    held = {w for w, after in pairwise(written) if after in HOLDING}
    where = [i for i, w in enumerate(core[:-1]) if len(w) > 1 and w.endswith("에") and w in held]
    if not where or where[-1] != len(items) - 2:
        return phrases  # one noun after the place: more is another clause ("... 버리고 남은 비닐")
    before = items[: where[-1] + 1]
    inside = {key for _, key, _ in _phrases(before)} | {"".join(before)}
    inside |= {key for _, key, _ in _containers("".join(before))}
    after = {key for _, key, _ in _phrases(items[where[-1] + 1 :])} | {
        "".join(items[where[-1] + 1 :])
    }
    return [p for p in phrases if p[0] == "head" or p[1] not in inside or p[1] in after]


def _restated(
    phrases: list[tuple[str, str, float]], items: list[str], known: dict[str, list[int]]
) -> list[tuple[str, str, float]]:
    """A bare head that an earlier word of the query names more narrowly is that word: in
    "들기름 병에 남은 기름" the 기름 is the 들기름 just named, not cooking oil at large. The
    head's reading is the earlier name (exact, where the dictionary knows it)."""
    head = items[-1] if len(items) >= 2 else ""
    if not _hangul(head) or len(head) < 2:
        return phrases
    narrower = [w for w in items[:-1] if w != head and w.endswith(head) and w in known]
    if not narrower:
        return phrases
    return [
        (kind, narrower[-1], weight) if kind == "head" and key == head else (kind, key, weight)
        for kind, key, weight in phrases
    ]


def _phrases(items: list[str]) -> list[tuple[str, str, float]]:
    """Each shorter phrase of the item's words, later ones counting more (the head is last)."""
    variants = []
    n = len(items)
    for length in range(n - 1, 0, -1):
        for start in range(n - length, -1, -1):
            phrase = "".join(items[start : start + length])
            # Later is likelier the item: Korean puts the head last, modifiers first.
            weight = PHRASE_WEIGHT + PHRASE_POSITION * (start + length) / n
            kind = "head" if start + length == n and length == 1 else "phrase"
            if length == 1 and phrase in CONTAINER_WORDS:
                weight *= BARE_CONTAINER
            variants.append((kind, phrase, weight))
            variants += [(k, key, w * weight) for k, key, w in _containers(phrase)]
    if n >= 3:
        # A modifier between the first word and the head: "배달 떡볶이 용기" is a 배달 용기.
        weight = PHRASE_WEIGHT + PHRASE_POSITION
        variants.append(("phrase", items[0] + items[-1], weight))
        variants += [(k, key, w * weight) for k, key, w in _containers(items[0] + items[-1])]
    return variants


@functools.cache
def _words() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """words.yaml as (written, dictionary word) pairs, longest first: brands that begin a word,
    and spellings found anywhere in one."""
    import yaml

    table = yaml.load(WORDS.read_text(encoding="utf-8"), Loader=_loader(yaml))

    def pairs(section: str) -> tuple[tuple[str, str], ...]:
        found = [
            (normalize(str(w)), normalize(word))
            for word, written in table[section].items()
            for w in written
        ]
        return tuple(sorted(found, key=lambda p: -len(p[0])))

    return pairs("brands"), pairs("spellings")


@functools.cache
def _outside_words() -> tuple[tuple[str, str], ...]:
    """words.yaml's `outside` section as (word, why) pairs, longest first."""
    import yaml

    table = yaml.load(WORDS.read_text(encoding="utf-8"), Loader=_loader(yaml))
    found = [(normalize(str(w)), why) for why, words in table["outside"].items() for w in words]
    return tuple(sorted(found, key=lambda p: -len(p[0])))


# The most a first guide may be trusted for a query about something outside household waste:
# under any threshold the calibration fits, so the search says "not sure" and lists the guides.
OUTSIDE_CHANCE = 0.5
# groups of `outside` read only as the item's last word ("자동차 카시트" is a car seat)
OUTSIDE_AS_HEAD = frozenset({"vehicle"})


def outside(ranked: list[dict[str, Any]], query: Query) -> str | None:
    """The word that marks the query as outside household waste (a car, a firearm, asbestos,
    hospital waste...: words.yaml `outside`), where a query word begins with one and the first
    guide does not answer to a name holding it ("자동차 워셔액" is a guide, "폐차할 자동차" none):
    whatever neighbour a shared word found ("LPG 가스통" as 부탄가스) is not the answer."""
    names = index().names.get(ranked[0]["guide_id"], []) if ranked else []
    last = query.items[-1] if query.items else ""
    for marker, why in _outside_words():
        head = why in OUTSIDE_AS_HEAD
        if not any(w.startswith(marker) for w in ([last] if head else query.written)):
            continue
        # a guide named for the thing itself, not for an accessory of it ("오토바이헬멧")
        if not any(n.endswith(marker) if head else marker in n for n in names):
            return marker
    return None


def _generic(items: list[str]) -> list[str]:
    """The item's words as the dictionary writes them: a brand at the start of a word is the
    kind of thing it sells ("꼬북칩봉지" -> 과자봉지), a misspelling or slang inside a word its
    spelling ("에어후라이어" -> 에어프라이어). A word that says the same as the one before it
    goes ("맥심 모카골드" -> 커피믹스)."""
    out: list[str] = []
    for word in map(_respell, items):
        if not out or out[-1] != word:
            out.append(word)
    return out


def _corrected(word: str) -> str:
    """A word no name uses, read as the one word a name uses that is a slip away from it
    ("믹사기": 믹서기, "휴지씸": 휴지심); as written when there is none, or more than one."""
    idx = index()
    if len(word) < 2 or word in idx.spelled or word in idx.uses or word in idx.kinds:
        return word  # a word of a name, or of what a thing is and does ("간식" is no 건식)
    if not _hangul(word):
        return word
    near = {w for w in _slips(word) if w in idx.spelled}
    return near.pop() if len(near) == 1 else word


# Letters people write for one another: vowels that sound alike or differ by a glide, plain
# and tense consonants, plain and aspirated ones. Any other letter changed makes another word
# ("낚시배" is no 낚시대, "슬라이스" no 슬라이서), and two syllables leave too little to go
# by for an aspirated one ("통창" is no 통장).
VOWEL_SLIPS = ("ㅐㅔ", "ㅒㅖ", "ㅙㅞㅚ", "ㅓㅏ", "ㅓㅗ", "ㅗㅜ", "ㅡㅜ", "ㅝㅓ", "ㅘㅏ", "ㅢㅣ")
VOWEL_SLIPS += ("ㅕㅓ", "ㅑㅏ", "ㅛㅗ", "ㅠㅜ")
TENSE = ("ㄱㄲ", "ㄷㄸ", "ㅂㅃ", "ㅅㅆ", "ㅈㅉ")
ASPIRATED = ("ㄱㅋ", "ㄷㅌ", "ㅂㅍ", "ㅈㅊ")
_INITIALS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_FINALS = " ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"


def _partners(groups: tuple[str, ...]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for group in groups:
        for letter in group:
            found[letter].update(other for other in group if other != letter)
    return found


_SHORT_SLIPS = (_partners(TENSE), _partners(VOWEL_SLIPS), _partners(TENSE))
_LONG_SLIPS = (_partners(TENSE + ASPIRATED), _SHORT_SLIPS[1], _partners(TENSE + ASPIRATED))


def _slips(word: str) -> Iterator[str]:
    """Every word one slip from `word`: one letter of one syllable swapped for a partner."""
    slips = _SHORT_SLIPS if len(word) == 2 else _LONG_SLIPS
    for i, char in enumerate(word):
        code = ord(char) - 0xAC00
        letters = [code // 588, (code % 588) // 28, code % 28]
        for place, alphabet in enumerate((_INITIALS, _VOWELS, _FINALS)):
            for other in slips[place].get(alphabet[letters[place]], ()):
                if other in alphabet:
                    swapped = list(letters)
                    swapped[place] = alphabet.index(other)
                    syllable = chr(0xAC00 + swapped[0] * 588 + swapped[1] * 28 + swapped[2])
                    yield word[:i] + syllable + word[i + 1 :]


@functools.lru_cache(maxsize=4096)
def _respell(word: str) -> str:
    """One word as the dictionary writes it (queries repeat their words: asked once each)."""
    brands, spellings = _words()
    for written, meant in brands:
        if word.startswith(written) and not word.startswith(meant):
            word = meant + word[len(written) :]
            break
    for written, meant in spellings:
        # not where the word already has it ("마요네즈" holds 마요)
        if written in word and not (written in meant and meant in word):
            word = word.replace(written, meant)
    return word


def _names(pair: str) -> bool:
    """Two words that are a name together, as written or respelled ("검은 봉다리": 검은봉지),
    so the first is no verb however it ends."""
    known = index().by_key
    return bool(pair) and (pair in known or _respell(pair) in known)


def _verbish(word: str, known: dict[str, list[int]]) -> bool:
    """A verb or a question ("버리면", "되나요", "붙은"): it asks about the item, never names it.
    A name with a particle ("송장은") is still a name, and so is a word the word table reads
    ("메로나", "마요" and "심지" end like verbs), and a word that ends names, with its particle
    ("껍질은": 옥수수껍질, 귤껍질)."""
    plain = _strip_particle(_strip_ending(word), known)
    if word in known or plain in known or word in index().made_of:
        return False  # a material ("양은 쟁반": 양은 is no 양 + 은) is what the thing is made of
    if _generic([word]) != [word] or (len(plain) >= 2 and plain in index().by_head):
        return False
    if _corrected(word) != word or _corrected(plain) != plain:
        return False  # a name misspelled ("매니큐워" ends like a verb)
    return word.endswith(VERB_ENDINGS)


def _destinations(
    core: list[str], known: dict[str, list[int]], places: frozenset[str]
) -> dict[int, str]:
    """The words that say where the asker thinks the item goes, not what it is, and the name
    they give that place: a name with 로 ("종이로 버려도 돼?"), or a category with 에 as the
    last word ("음식물 쓰레기에 넣어도 되나요?"; "스티로폼에 붙은 테이프" is about a 테이프),
    of one word or two."""
    away: dict[int, str] = {}
    for i, word in enumerate(core):
        word = _strip_ending(word)
        if word in known:
            continue
        # nothing after it names a thing ("넣어도" may follow)
        last = not any(_strip_particle(_strip_ending(w), known) in known for w in core[i + 1 :])
        for endings, names in ((("으로", "로"), known), (("에다가", "에다", "에"), places)):
            if names is places and not last:
                continue
            ending = next((e for e in endings if word.endswith(e) and len(word) > len(e)), "")
            stem = word[: -len(ending)] if ending else ""
            if stem and i and core[i - 1] + stem in names:
                away.update({i - 1: core[i - 1] + stem, i: core[i - 1] + stem})
            elif stem in names:
                away[i] = stem
    return away


def _container_word(key: str) -> str | None:
    """The container word a name ends in, after something it held: "고추장통" -> 통."""
    for word in sorted(CONTAINER_WORDS, key=len, reverse=True):
        if key.endswith(word) and len(key) > len(word):
            return word
    return None


def _containers(key: str) -> list[tuple[str, str, float]]:
    """ "마요네즈 통" is the 마요네즈 용기, "약통" the 약통 용기, "분유 캔" the 분유통: the
    container by each name the dictionary gives such containers; the content's own guide
    ("샴푸") comes next, as it is often about the container too."""
    word = _container_word(key)
    if word is None:
        return []
    content = key[: -len(word)]
    made = _made(key)
    if made:  # "간장 유리병" is a 간장병, never the plastic 간장용기
        content = content[: -len(made)]
    names = [content + word] if made else []
    names += [content + name for name in CONTAINER_WORDS[word] if name != word and not made]
    return [
        *(("container", name, 0.97) for name in names),
        ("container", key + "용기", 0.97),
        ("content", content, 0.88),
    ]


def _made(key: str) -> str | None:
    """The material between the contents and the container word: "들기름유리병" -> 유리."""
    word = _container_word(key)
    content = key[: -len(word)] if word else ""
    return next((m for m in CONTAINER_MADE if content.endswith(m) and content != m), None)


def _strip_ending(word: str) -> str:
    key = normalize(word)
    for ending in ENDINGS:
        if key.endswith(ending) and len(key) - len(ending) >= 1:
            return key[: -len(ending)]
    return key


def _strip_particle(key: str, known: dict[str, list[int]]) -> str:
    """ "모래는" -> 모래, "스프레이" stays: 은/이/을 follow a final consonant and 는/가/를 a
    vowel, so a particle that does not fit the syllable before it is part of the word; and
    이 ends so many nouns (떡볶이, 고양이) that it goes only when what is left is a name; nor
    is a particle one where the word begins a name and what is left is none."""
    if key in known:
        return key
    if len(key) >= 2 and key[-1] in PARTICLES:
        stem, particle = key[:-1], key[-1]
        final = (ord(stem[-1]) - 0xAC00) % 28 if "가" <= stem[-1] <= "힣" else None
        if particle == "이" and stem not in known:
            return key
        if stem not in known and any(name.startswith(key) for name in known):
            return key  # "아보카도" begins 아보카도씨: its 도 is no particle
        if final is not None and particle in AFTER_CONSONANT and not final:
            return key
        if final is not None and particle in AFTER_VOWEL and final:
            return key
        return stem
    if len(key) >= 3 and key.endswith("들"):  # plural: "책들"
        return key[:-1]
    return key


# ---- scoring --------------------------------------------------------------------------------


def _similarity(query: str, qgrams: frozenset[str], entry: Entry) -> float:
    """1 for the same name; a name inside the other by how much it covers; else how many
    letter pairs they share (never as much as exact). `_typo` refines the closest few."""
    if query == entry.key:
        return 1.0
    dice = _dice(qgrams, entry.grams)
    if _another_word(query, entry.key):
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


def _typo(key: str, letters: str, entry: Entry) -> float:
    """A misspelling is a letter or two away: "패트병" is one vowel from "페트병". One syllable
    swapped for another with a different first consonant and vowel or final is another word
    ("된장 통" is no "간장 통", "혈당" no "혈압"), however few letters that is."""
    distance = edit_distance(letters, entry.letters)
    longest = max(len(letters), len(entry.letters))
    if distance > max(1, longest // 4) or _another_word(key, entry.key):
        return 0.0
    return 0.9 * (1 - distance / longest) + 0.02


def _another_word(key: str, name: str) -> bool:
    """Same length, one syllable apart, and that syllable differs in its first consonant and
    in one more letter."""
    if len(key) != len(name):
        return False
    apart = [(a, b) for a, b in zip(key, name, strict=True) if a != b]
    if len(apart) != 1 or not _hangul("".join(apart[0])):
        return False
    a, b = (jamo(c) for c in apart[0])
    return a[0] != b[0] and edit_distance(a, b) >= 2


def rank(text: str, query: Query | None = None) -> list[dict[str, Any]]:
    """Every candidate guide, best first: `{guide_id, score, kind, exact, variant, closeness}`
    (`query`: the text already `read`, so a caller that needs the reading reads it once)."""
    idx = index()
    query = query or read(text)
    if not query.variants:
        return []  # punctuation and spaces only: nothing to look for
    best: dict[str, dict[str, Any]] = {}
    for variant, key, weight in query.variants:
        letters = jamo(key)
        qgrams = grams(letters)
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
                    "exact": similarity == 1.0 and entry.kind in EXACT_KINDS,
                    "variant": variant,
                    "key": key,
                    "how": how or _overlap(key, entry.key),
                }
    if query.container:
        _contents_container(idx, query, best)
    _kin(idx, query, best)
    _described(idx, text, query, best)
    whole = query.variants[0][1]
    wgrams = grams(jamo(whole))
    words = [w for w in query.words if len(w) >= 2]
    for found in best.values():
        text_of = idx.text[found["guide_id"]]
        found["score"] += TEXT_BONUS * min(2, sum(w in text_of for w in words))
        # a state the guide's text speaks to ("큰" and 「크기가 커 ... 대형폐기물」) breaks ties
        found["score"] += STATE_BONUS * sum(
            any(t in text_of for t in STATE_TEXT.get(state, ())) for state in query.states
        )
        # a described guide is as close as the share of its uses the query says
        found["closeness"] = _dice(wgrams, idx.name_grams[found["guide_id"]]) + found.get("fit", 0)
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


def _described(idx: Index, text: str, query: Query, best: dict[str, dict[str, Any]]) -> None:
    """A thing described, not named ("머리 말리는 거 고장났어", "멸치 다시 우리고 난 팩"): the
    guides whose uses a query word begins with, or whose kind it ends in, weighed by how few
    guides share the word, under any name; a guide a name found already only gains a tie-break.
    The words are read from the text as written: the verbs a reading drops are the
    description."""
    evidence: dict[str, float] = defaultdict(float)
    used: dict[str, int] = defaultdict(int)  # words that matched a use, not only a kind
    words: dict[str, int] = defaultdict(int)  # words that matched at all
    for raw in _WORDS.findall(unicodedata.normalize("NFKC", text).lower()):
        word = normalize(raw)
        if not word or word in FILLER or word.endswith(DONE_BEFORE):
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


def _heads(idx: Index, query: Query, best: dict[str, dict[str, Any]]) -> None:
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
    three letters or more (an English query is read head last, as `_english_order` puts it)."""
    if _hangul(word):
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
    inside = [normalize(p) for p in re.findall(r"\(([^)]*)\)", plain)]
    if key in inside:
        return normalize(outside) or None
    if normalize(outside).endswith(key):
        return normalize(outside)[: -len(key)] or None
    words = outside.split()
    if len(words) > 1 and len(key) <= 2 and key not in normalize(outside):
        return normalize("".join(words[:-1]))
    return None


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


def _contents_container(idx: Index, query: Query, best: dict[str, dict[str, Any]]) -> None:
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
        if found["variant"] != "content" and normalize(guide["name"]).endswith(CONTAINER_NAMES):
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
        names = [normalize(guide["name"]), *(normalize(p) for p in _parts(guide["name"]))]
        own = {
            idx.entries[p].guide_id
            for name in names
            for container in (word, *CONTAINER_WORDS[word])
            for p in idx.by_key.get(name + container, ())
            if idx.entries[p].kind in EXACT_KINDS
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
        return key in content and not _container_word(key) and key not in (*CONTAINER_WORDS, *made)
    own = {content + name for name in (word, *CONTAINER_WORDS[word])}
    return "used" in states and variant in WHOLE_READINGS and key in own


def _kin(idx: Index, query: Query, best: dict[str, dict[str, Any]]) -> None:
    """An item no name fits, judged by its kin: the guides whose names end like the query's
    head ("의류건조기": 식기건조기, 식품건조기) point, when most share one category, at that
    category's guide, below any name found."""
    key = next((k for v, k, _ in query.variants if v == "stripped"), query.variants[0][1])
    if not _hangul(key):
        return
    for n in HEAD_SYLLABLES:
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


def _broken(idx: Index, ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A broken glass item goes out as broken glass (불연성 bag), whatever it was whole."""
    top = idx.guides[ranked[0]["guide_id"]]
    glass = any(path[-1] in GLASS_CATEGORIES for path in top["categoryPaths"])
    if not glass or idx.broken_glass is None or ranked[0]["guide_id"] == idx.broken_glass:
        return ranked
    rest = [f for f in ranked if f["guide_id"] != idx.broken_glass]
    lead = {**ranked[0], "guide_id": idx.broken_glass, "kind": "state", "closeness": 1.0}
    return [lead, *rest]


# ---- confidence -----------------------------------------------------------------------------

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
# the query as meant, not a phrase of it (the generic reading is the whole query respelled)
WHOLE_READINGS = frozenset({"whole", "core", "stripped", "generic"})
# found through a category or a guide's examples, not by its name
BROAD_KINDS = frozenset({"category", "listed", "example"})
# Words for a container: a query that names one asks about the container, not the contents.
CONTAINER_NAMES = (*CONTAINER_WORDS, "케이스", "뚜껑")
# A state is honoured when the guide's text speaks to it ("크기가 커 ... 대형폐기물").
STATE_TEXT = {
    "large": ("크기", "대형", "큰"),
    "small": ("작은", "소형"),
    "broken": ("깨진", "깨지", "파손"),
    "dirty": ("오염", "이물질", "묻은", "헹구", "헹군"),
    "worn": ("해지", "훼손", "찢어", "낡"),
}
TIE = 0.03  # guides within this of the first are as good as tied
UNEXPLAINED_MOST = 3  # unexplained nouns counted: past three the query is a sentence anyway
# a material word and the category it belongs to ("양은" -> 금속, "대나무" -> 일반종량제폐기물)
_MATERIAL_OF = {word: category for category, words in MATERIALS.items() for word in words}
# "20kg", "120cm", "s5000": sizes and model numbers, which no guide explains or needs to
_MEASURE = re.compile(r"[0-9a-z]*[0-9][0-9a-z]*")


@functools.cache
def _calibration() -> dict[str, Any]:
    return json.loads(CALIBRATION.read_text(encoding="utf-8"))


def features(ranked: list[dict[str, Any]], query: Query) -> dict[str, float]:
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
    idx = index()
    first = ranked[0]
    top = first.get("found", first["score"])
    second = max((f.get("found", f["score"]) for f in ranked[1:8]), default=0.0)
    exact = first["exact"] or first["kind"] == "state"
    text = idx.text[first["guide_id"]]
    name = normalize(idx.guides[first["guide_id"]]["name"])
    asks_container = any(w.endswith(CONTAINER_NAMES) for w in query.words)
    unhonoured = any(
        STATE_TEXT.get(state) and not any(word in text for word in STATE_TEXT[state])
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
        "whole": float(exact and first["variant"] in WHOLE_READINGS),
        "headless": float(headless),
        "content": float(asks_container and not any(w in name for w in CONTAINER_NAMES)),
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
        "bare": float(first.get("key") in CONTAINER_WORDS and len(query.words) > 1),
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


def _nouns(query: Query) -> list[str]:
    """The words of the query that name something, as written: no asking words, states,
    verbs, container words, sizes or model numbers, and no single syllables but a material's
    (철); a material word stays even where it ends like a verb ("양은" is no 양 + 은)."""
    known = index().by_key
    nouns = []
    for word in query.written:
        plain = _strip_particle(_strip_ending(word), known)
        if word in FILLER or word in _STATE_WORDS or _strip_ending(word) in _STATE_WORDS:
            continue
        if word not in _MATERIAL_OF and _verbish(word, known):
            continue
        if len(plain) < 2 and plain not in _MATERIAL_OF:
            continue  # one syllable says little, unless it is what the thing is made of (철)
        if plain in CONTAINER_WORDS or _MEASURE.fullmatch(plain):
            continue
        nouns.append(plain)
    return nouns


def _explains(idx: Index, guide_id: str, key: str, word: str) -> bool:
    """Whether the guide accounts for a word of the query: the name it was found by holds it,
    or one of its names, its text or its uses do. A material word against the guide's own
    material is unexplained whatever its text says ("양은 쟁반" as 나무 쟁반, whose text may
    list other materials)."""
    if word in _MATERIAL_OF:
        name = normalize(idx.guides[guide_id]["name"])
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


def probability(values: dict[str, float], constants: dict[str, Any] | None = None) -> float:
    """The fitted chance that the first guide is right (a logistic fit on the features)."""
    fit = constants or _calibration()
    z = fit["intercept"] + sum(fit["weights"][name] * values[name] for name in fit["weights"])
    return 1 / (1 + math.exp(-z))


def threshold() -> float:
    """The confidence at or above which the first guide is called the answer."""
    return float(_calibration()["threshold"])

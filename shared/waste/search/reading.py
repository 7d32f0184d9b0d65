"""Reading a query as a person writes it: the ways it may be meant, each a key to look up.

Sentence endings, particles and asking words are dropped; state words ("깨진", "다 쓴") are
taken out of the name and kept as states; a number and a counter are an amount. A Korean
phrase ends in its head, so each shorter phrase of a longer query is tried too, later ones
counting more ("모나미 볼펜" -> 볼펜); a container word at the end names the container by each
name the dictionary gives such containers ("마요네즈 통" -> 마요네즈 용기); a place the asker
guesses the item goes ("종이로 버려도 돼?") is no item. The query is read once more in the
dictionary's words (words.yaml: a brand as what it sells, a misspelling as its spelling).
English is put in the order a Korean query is read, head last, plurals made singular.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from itertools import pairwise

from shared.waste.search import index, spelling

# A query read another way counts a little less than the query as written.
# Shorter phrases of a longer query: from PHRASE_WEIGHT for the first words to
# PHRASE_WEIGHT + PHRASE_POSITION for the last (the head).
PHRASE_WEIGHT = 0.8
PHRASE_POSITION = 0.12
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
# the query as meant, not a phrase of it (the generic reading is the whole query respelled)
WHOLE_READINGS = frozenset({"whole", "core", "stripped", "generic"})
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
STATE_WORDS = {w: state for state, words in STATES.items() for w in words}
# A state is honoured when the guide's text speaks to it ("크기가 커 ... 대형폐기물").
STATE_TEXT = {
    "large": ("크기", "대형", "큰"),
    "small": ("작은", "소형"),
    "broken": ("깨진", "깨지", "파손"),
    "dirty": ("오염", "이물질", "묻은", "헹구", "헹군"),
    "worn": ("해지", "훼손", "찢어", "낡"),
}
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
        *index.CONTAINER_WORDS,
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


def read(text: str, known: dict[str, list[int]] | None = None) -> Query:
    """The ways a query may be meant: as written; without asking words, verbs, states and
    sizes; without endings and particles; and each shorter phrase of it, later ones first (a
    Korean phrase ends in its head: "모나미 볼펜" is a 볼펜), where a word with 로 that names
    something is where the asker thinks it goes ("종이로 버려도 돼?"), not the item."""
    known = known if known is not None else index.current().by_key
    words = spelling.words(text)
    states: set[str] = set()
    english = bool(words) and all(w.isascii() for w in words) and any(c.isalpha() for c in text)
    if english:
        words = _english_order(words, known, states)
    core: list[str] = []
    i = 0
    while i < len(words):
        word = spelling.normalize(words[i])
        pair = word + spelling.normalize(words[i + 1]) if i + 1 < len(words) else ""
        if pair in STATE_WORDS and i + 2 < len(words) and pair not in known:
            states.add(STATE_WORDS[pair])
            i += 2
            continue
        if len(words) > 2 and _measure(word, spelling.normalize(words[i + 1]) if pair else ""):
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
        state = STATE_WORDS.get(word) or STATE_WORDS.get(strip_ending(word))
        if state and len(words) > 1 and word not in known:
            states.add(state)
        elif word in FILLER or (len(words) > 1 and verbish(word, known) and not _names(pair)):
            pass
        else:
            core.append(word)
        i += 1
    variants = [("whole", spelling.normalize(text), 1.0)]
    container = made = None
    items: list[str] = []
    head: str | None = None
    if core:
        stripped = [strip_particle(strip_ending(w), known) for w in core]
        away = _destinations(core, known, index.current().places)
        items = [w for i, w in enumerate(stripped) if i not in away] or stripped
        head = core[-1] if stripped[-1] == core[-1] and len(core) - 1 not in away else None
        if any(strip_ending(w) != w and w.endswith(AND) for w in core[:-1]):
            head = None  # "고등어 대가리랑 내장": two things, two heads
        # where the asker guesses it goes is the answer only when nothing else is found
        places = [("phrase", place, PLACE) for place in away.values()]
        variants += [("core", "".join(core), 1.0), ("stripped", "".join(items), 0.98)]
        variants += _containers("".join(items))
        container = container_word("".join(items))
        made = _made("".join(items))
        phrases = _restated(_phrases(items), items, known)
        written = [spelling.normalize(w) for w in words]
        variants += _not_where_kept(phrases, core, items, away, written) + places
        generic = [corrected(word) for word in _generic(items)]
        if generic != items:
            # The same query in the dictionary's words ("하이트 캔" -> 맥주캔, "스뎅 솥" ->
            # 스테인리스솥), a little under the words as written.
            variants.append(("generic", "".join(generic), GENERIC))
            variants += [(k, key, w * GENERIC) for k, key, w in _containers("".join(generic))]
            variants += [(k, key, w * GENERIC) for k, key, w in _phrases(generic)]
    singular = english_singular([spelling.normalize(w) for w in core or words]) if english else []
    if singular and singular != [spelling.normalize(w) for w in core or words]:
        variants.append(("stripped", "".join(singular), 0.98))
        # exact only: "pad" resembles ipad and notepad, where "pads" was a cotton pad
        variants += [("phrase", key, w * 0.98) for _, key, w in _phrases(singular)]
    seen: set[str] = set()
    unique = []
    for kind, key, weight in variants:
        if key and key not in seen:
            seen.add(key)
            unique.append((kind, key, weight))
    written = [spelling.normalize(w) for w in words]
    return Query(
        unique,
        frozenset(states),
        [spelling.normalize(w) for w in core],
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
    return amount and strip_particle(strip_ending(following), {}) in COUNTERS


def _emptied(word: str) -> str | None:
    """ "빈통" after a name is that thing's empty tub ("요플레 빈통": the 요플레 통), written as
    one word: the container word it is glued to ("" for "빈거", an empty thing), or None. An
    alias of its own ("빈병") counts only alone: after a brand it is that brand's bottle."""
    rest = word[len(EMPTY) :]
    if not word.startswith(EMPTY) or not rest:
        return None
    rest = strip_particle(strip_ending(rest), {})
    if rest in index.CONTAINER_WORDS:
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
    whole = spelling.normalize("".join(words))
    if whole in known:
        return words
    # a guess after "or", and the guess word that ends the item: "eggshells trash or ..."
    if "or" in words[1:]:
        words = words[: words.index("or")]
    while len(words) > 1 and words[-1] in ENGLISH_GUESSES:
        if spelling.normalize("".join(words)) in known:
            break  # "food waste" is a name
        words = words[:-1]
    # "with ...": what is on the thing, not the thing
    if "with" in words[1:]:
        at = words.index("with")
        if any(
            english_singular([w])[0] in ENGLISH_DIRT or w in ENGLISH_DIRT for w in words[at + 1 :]
        ):
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
        pair = spelling.normalize(word + (words[i + 1] if i + 1 < len(words) else ""))
        named = word in known or (i + 1 < len(words) and pair in known)
        if word in ENGLISH_STATES and len(words) > 1 and not named:
            states.update(ENGLISH_STATES[word])
        elif word in ENGLISH_ASKING and len(words) > 1 and not named:
            continue
        else:
            out.append(word)
    return out or words


def english_singular(words: list[str]) -> list[str]:
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


def _not_where_kept(
    phrases: list[tuple[str, str, float]],
    core: list[str],
    items: list[str],
    away: dict[int, str],
    written: list[str],
) -> list[tuple[str, str, float]]:
    """Where the item is kept is not the item: in "들기름 병에 남은 기름", "육수팩 안에 든 멸치",
    the words up to the last one with 에 and a verb of holding (남은, 든, 붙은) say where it
    is, so a phrase of those words alone ("들기름 병") is no reading of it. The query as
    written still is."""
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
    if not spelling.hangul(head) or len(head) < 2:
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
            if length == 1 and phrase in index.CONTAINER_WORDS:
                weight *= BARE_CONTAINER
            variants.append((kind, phrase, weight))
            variants += [(k, key, w * weight) for k, key, w in _containers(phrase)]
    if n >= 3:
        # A modifier between the first word and the head: "배달 떡볶이 용기" is a 배달 용기.
        weight = PHRASE_WEIGHT + PHRASE_POSITION
        variants.append(("phrase", items[0] + items[-1], weight))
        variants += [(k, key, w * weight) for k, key, w in _containers(items[0] + items[-1])]
    return variants


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


def corrected(word: str) -> str:
    """A word no name uses, read as the one word a name uses that is a slip away from it
    ("믹사기": 믹서기, "휴지씸": 휴지심); as written when there is none, or more than one."""
    idx = index.current()
    if len(word) < 2 or word in idx.spelled or word in idx.uses or word in idx.kinds:
        return word  # a word of a name, or of what a thing is and does ("간식" is no 건식)
    if not spelling.hangul(word):
        return word
    near = {w for w in spelling.slips(word) if w in idx.spelled}
    return near.pop() if len(near) == 1 else word


@functools.lru_cache(maxsize=4096)
def _respell(word: str) -> str:
    """One word as the dictionary writes it (queries repeat their words: asked once each)."""
    brands, spellings = index.respellings()
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
    known = index.current().by_key
    return bool(pair) and (pair in known or _respell(pair) in known)


def verbish(word: str, known: dict[str, list[int]]) -> bool:
    """A verb or a question ("버리면", "되나요", "붙은"): it asks about the item, never names it.
    A name with a particle ("송장은") is still a name, and so is a word the word table reads
    ("메로나", "마요" and "심지" end like verbs), and a word that ends names, with its particle
    ("껍질은": 옥수수껍질, 귤껍질)."""
    plain = strip_particle(strip_ending(word), known)
    if word in known or plain in known or word in index.current().made_of:
        return False  # a material ("양은 쟁반": 양은 is no 양 + 은) is what the thing is made of
    if _generic([word]) != [word] or (len(plain) >= 2 and plain in index.current().by_head):
        return False
    if corrected(word) != word or corrected(plain) != plain:
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
        word = strip_ending(word)
        if word in known:
            continue
        # nothing after it names a thing ("넣어도" may follow)
        last = not any(strip_particle(strip_ending(w), known) in known for w in core[i + 1 :])
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


def container_word(key: str) -> str | None:
    """The container word a name ends in, after something it held: "고추장통" -> 통."""
    for word in sorted(index.CONTAINER_WORDS, key=len, reverse=True):
        if key.endswith(word) and len(key) > len(word):
            return word
    return None


def _containers(key: str) -> list[tuple[str, str, float]]:
    """ "마요네즈 통" is the 마요네즈 용기, "약통" the 약통 용기, "분유 캔" the 분유통: the
    container by each name the dictionary gives such containers; the content's own guide
    ("샴푸") comes next, as it is often about the container too."""
    word = container_word(key)
    if word is None:
        return []
    content = key[: -len(word)]
    made = _made(key)
    if made:  # "간장 유리병" is a 간장병, never the plastic 간장용기
        content = content[: -len(made)]
    names = [content + word] if made else []
    names += [content + name for name in index.CONTAINER_WORDS[word] if name != word and not made]
    return [
        *(("container", name, 0.97) for name in names),
        ("container", key + "용기", 0.97),
        ("content", content, 0.88),
    ]


def _made(key: str) -> str | None:
    """The material between the contents and the container word: "들기름유리병" -> 유리."""
    word = container_word(key)
    content = key[: -len(word)] if word else ""
    return next((m for m in CONTAINER_MADE if content.endswith(m) and content != m), None)


def strip_ending(word: str) -> str:
    """The word without a sentence ending ("골판지인데" -> 골판지, "페트병이에요" -> 페트병)."""
    key = spelling.normalize(word)
    for ending in ENDINGS:
        if key.endswith(ending) and len(key) - len(ending) >= 1:
            return key[: -len(ending)]
    return key


def strip_particle(key: str, known: dict[str, list[int]]) -> str:
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

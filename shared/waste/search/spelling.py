"""Words as letters: how a name and a query are compared, whatever the meaning.

Text is normalised (lower case, no spaces or punctuation, full-width folded), Hangul syllables
split into their letters (jamo), so a typo is one letter away, not one syllable; names are
compared by the letter pairs they share (bigrams) and by edit distance. The slips people make
in writing a letter (a vowel that sounds alike, a tense or aspirated consonant) are listed
here, and so is the one-syllable change that makes another word, not a typo.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator

_STRIP = re.compile(r"[\s()\[\]{}·,./_\-~'\"!?:;]+")
_WORD = re.compile(r"[^\s,./()!?~·:;\"']+")


def normalize(text: str) -> str:
    """Lower case, no spaces or punctuation, full-width folded: "음료 페트병" is "음료페트병"."""
    return _STRIP.sub("", unicodedata.normalize("NFKC", text).lower())


def words(text: str) -> list[str]:
    """The words of a text as written, lower case and full-width folded: split at spaces and
    punctuation, the query's words before they are read."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def jamo(text: str) -> str:
    """Hangul syllables split into their letters, so distances count letters, not syllables."""
    return text.translate(_letters())


@functools.cache
def _letters() -> dict[int, str]:
    """Each of the 11,172 Hangul syllables to its letters: a table str.translate reads at C
    speed (the index splits some 30,000 names), made on first use, not at import."""
    table = {}
    for code in range(11172):
        lead, vowel, tail = code // 588, (code % 588) // 28, code % 28
        letters = chr(0x1100 + lead) + chr(0x1161 + vowel) + (chr(0x11A7 + tail) if tail else "")
        table[0xAC00 + code] = letters
    return table


def grams(letters: str) -> frozenset[str]:
    """Letter pairs (bigrams): names that share most of them look alike."""
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


def dice(a: frozenset[str], b: frozenset[str]) -> float:
    """How much two sets of letter pairs overlap, 0 to 1 (Dice's coefficient)."""
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


def hangul(key: str) -> bool:
    """Whether a key is Hangul syllables only: the Korean rules apply to it."""
    return bool(key) and all("가" <= c <= "힣" for c in key)


def another_word(key: str, name: str) -> bool:
    """Same length, one syllable apart, and that syllable differs in its first consonant and
    in one more letter."""
    if len(key) != len(name):
        return False
    apart = [(a, b) for a, b in zip(key, name, strict=True) if a != b]
    if len(apart) != 1 or not hangul("".join(apart[0])):
        return False
    a, b = (jamo(c) for c in apart[0])
    return a[0] != b[0] and edit_distance(a, b) >= 2


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


def slips(word: str) -> Iterator[str]:
    """Every word one slip from `word`: one letter of one syllable swapped for a partner."""
    swaps = _SHORT_SLIPS if len(word) == 2 else _LONG_SLIPS
    for i, char in enumerate(word):
        code = ord(char) - 0xAC00
        letters = [code // 588, (code % 588) // 28, code % 28]
        for place, alphabet in enumerate((_INITIALS, _VOWELS, _FINALS)):
            for other in swaps[place].get(alphabet[letters[place]], ()):
                if other in alphabet:
                    swapped = list(letters)
                    swapped[place] = alphabet.index(other)
                    syllable = chr(0xAC00 + swapped[0] * 588 + swapped[1] * 28 + swapped[2])
                    yield word[:i] + syllable + word[i + 1 :]

"""What a result says about a guide: the official steps, and a sentence in natural Korean.

The feedback stage and a user's confirmation both turn a guide into the same answer, so the
wording lives here once. Korean particles follow the last syllable of the word they attach
to ("우유팩은 '종이팩'으로", "페트병은 '무색페트병'으로", "비닐은 '비닐류'로"); a word that
does not end in Hangul keeps both forms, as Korean writers do ("PET은(는)").
"""

from __future__ import annotations

from typing import Any

from shared.waste import rules

FALLBACK_STEP = "지자체 안내에 따라 배출해요."


def _final_consonant(word: str) -> int | None:
    """The last syllable's final consonant index (0: none), or None when it is not Hangul."""
    last = word.rstrip()[-1:] if word.strip() else ""
    code = ord(last) - 0xAC00 if last else -1
    return code % 28 if 0 <= code < 11172 else None


def topic(word: str) -> str:
    """은 after a closed syllable, 는 after an open one."""
    final = _final_consonant(word)
    return "은(는)" if final is None else ("은" if final else "는")


def direction(word: str) -> str:
    """으로 after a closed syllable, 로 after an open one or ㄹ (final index 8)."""
    final = _final_consonant(word)
    return "(으)로" if final is None else ("으로" if final and final != 8 else "로")


def sentence(name: str, category: dict[str, str], steps: list[str]) -> str:
    """The template answer: what the item is, where it goes, and the first official step."""
    middle = category["middle"]
    first = steps[0] if steps else FALLBACK_STEP
    return f"{name}{topic(name)} '{middle}'{direction(middle)} 분리배출해요. {first}"


def question(name: str) -> str:
    """When the match is not confident, the answer asks rather than states a rule."""
    return (
        f"사진 속 물건이 '{name}'인지 확실하지 않아요. 아래 후보 중 맞는 것을 골라 주시면 "
        "정확한 배출 방법을 알려 드릴게요."
    )


def for_guide(guide: dict[str, Any]) -> dict[str, Any]:
    """The parts of a result that come from the guide alone, cited with its edition."""
    return {
        "item": {"name": guide["name"], "guide_id": guide["id"]},
        "category": rules.category(guide),
        "disposal_steps": guide["dischargeMethods"],
        "cautions": guide["notes"],
        "source": rules.source(guide),
    }


def candidate(guide: dict[str, Any], confidence: float | None = None) -> dict[str, Any]:
    """One choice offered when the answer needs confirmation: enough to pick it by sight."""
    steps = guide["dischargeMethods"]
    out = {
        "guide_id": guide["id"],
        "name": guide["name"],
        "category": rules.category(guide),
        "summary": steps[0] if steps else FALLBACK_STEP,
    }
    if confidence is not None:
        out["confidence"] = confidence
    return out

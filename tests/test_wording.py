"""The template answer reads as natural Korean: particles follow the word's last syllable."""

from __future__ import annotations

import pytest

from shared.waste import answers


@pytest.mark.parametrize(
    ("word", "topic", "direction"),
    [
        ("우유팩", "은", "으로"),  # closed syllable
        ("종이", "는", "로"),  # open syllable
        ("비닐류", "는", "로"),
        ("음식물", "은", "로"),  # ㄹ takes 로
        ("캔", "은", "으로"),
        ("PET", "은(는)", "(으)로"),  # not Hangul: both forms, as writers do
        ("", "은(는)", "(으)로"),
    ],
)
def test_particles_follow_the_last_syllable(word, topic, direction):
    assert answers.topic(word) == topic
    assert answers.direction(word) == direction


def test_the_template_sentence():
    text = answers.sentence("우유팩", {"major": "재활용폐기물", "middle": "종이팩"}, ["헹궈요."])
    assert text == "우유팩은 '종이팩'으로 분리배출해요. 헹궈요."
    assert answers.sentence("병", {"major": "x", "middle": "유리병"}, []).startswith(
        "병은 '유리병'으로 분리배출해요. 지자체"
    )

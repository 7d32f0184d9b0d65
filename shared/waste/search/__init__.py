"""Item search: finding the guide a person means, and how sure that is.

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

The modules, each using only those above it:

- `spelling`: words as letters: normalising, jamo, letter pairs, edit distance, slips.
- `index`: every name a guide answers to, built once per edition of the dictionary from it
  and the team's tables (aliases.yaml, uses.yaml, words.yaml).
- `reading`: a query read as a person writes it, into the readings to look up.
- `ranking`: every guide the readings find, scored and fused: `rank`.
- `confidence`: the calibrated chance that the first guide is right (calibration.json,
  fitted by bench/calibrate.py), and the words that put a query outside household waste.

shared/waste/rules.py puts them together as `search`, the function behind the item search.
"""

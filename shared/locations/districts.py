"""Districts as identities: one canonical 시도 + 시군구 for whatever form a person types.

Waste is collected, charged and priced per 시군구 (a 자치구, 시 or 군). The canonical name is
"<시도> <시군구>" as the national tables write it today ("서울특별시 강남구", "경기도 수원시"),
with the 개방자치단체코드 where the data has one. Input may leave the 시도 out or shorten it
("강남구", "서울 강남구"), or name a 일반구 (a city's non-autonomous district: "수원시 장안구",
"장안구"), which is its city, since the city keeps the schedule, fees and bags. A name several
시도 share ("중구") is ambiguous: the caller gets the choices, never a guess.

The districts that exist are the data's (the schedule table's 시도명/시군구명): this module
only reads names; callers pass the known districts in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.core.errors import ApiError, validation_failed

# 시도 as addresses and files shorten or used to name them -> the name in use today.
PROVINCE_NAMES = {
    "서울": "서울특별시",
    "서울시": "서울특별시",
    "부산": "부산광역시",
    "부산시": "부산광역시",
    "대구": "대구광역시",
    "대구시": "대구광역시",
    "인천": "인천광역시",
    "인천시": "인천광역시",
    "광주": "광주광역시",
    "대전": "대전광역시",
    "대전시": "대전광역시",
    "울산": "울산광역시",
    "울산시": "울산광역시",
    "세종": "세종특별자치시",
    "세종시": "세종특별자치시",
    "경기": "경기도",
    "강원": "강원특별자치도",
    "강원도": "강원특별자치도",
    "충북": "충청북도",
    "충남": "충청남도",
    "전북": "전북특별자치도",
    "전라북도": "전북특별자치도",
    "전남": "전라남도",
    "경북": "경상북도",
    "경남": "경상남도",
    "제주": "제주특별자치도",
    "제주도": "제주특별자치도",
}
PROVINCES = frozenset(PROVINCE_NAMES.values())

# 일반구: districts of a city that are no 시군구 of their own (the city keeps waste matters).
# Team-kept from the 행정구역 list (행정안전부); 화성시's four date from 2026-02.
GENERAL_DISTRICTS = {
    ("경기도", "수원시"): ("장안구", "권선구", "팔달구", "영통구"),
    ("경기도", "성남시"): ("수정구", "중원구", "분당구"),
    ("경기도", "안양시"): ("만안구", "동안구"),
    ("경기도", "부천시"): ("원미구", "소사구", "오정구"),
    ("경기도", "안산시"): ("상록구", "단원구"),
    ("경기도", "고양시"): ("덕양구", "일산동구", "일산서구"),
    ("경기도", "용인시"): ("처인구", "기흥구", "수지구"),
    ("경기도", "화성시"): ("만세구", "효행구", "병점구", "동탄구"),
    ("충청북도", "청주시"): ("상당구", "서원구", "흥덕구", "청원구"),
    ("충청남도", "천안시"): ("동남구", "서북구"),
    ("전북특별자치도", "전주시"): ("완산구", "덕진구"),
    ("경상북도", "포항시"): ("남구", "북구"),
    ("경상남도", "창원시"): ("의창구", "성산구", "마산합포구", "마산회원구", "진해구"),
}


@dataclass(frozen=True)
class District:
    province: str
    district: str
    code: str | None = None

    @property
    def name(self) -> str:
        return f"{self.province} {self.district}"


class Ambiguous(ValueError):
    """A name several districts answer to; `choices` are their canonical names."""

    def __init__(self, text: str, choices: list[str]) -> None:
        super().__init__(f"{text!r} names {len(choices)} districts: {', '.join(choices)}")
        self.choices = choices


class Unknown(ValueError):
    """A name no district answers to."""


def province_name(name: str | None) -> str | None:
    """The 시도 as it is called today ("서울" -> 서울특별시); unknown names kept as given."""
    if not name:
        return None
    return PROVINCE_NAMES.get(name, name)


def resolve(text: str, known: Iterable[District]) -> District:
    """The one district `text` names among `known`; Ambiguous or Unknown otherwise."""
    tokens = " ".join(text.split()).split(" ")
    province = None
    if tokens and (tokens[0] in PROVINCES or tokens[0] in PROVINCE_NAMES):
        province = province_name(tokens.pop(0))
    rest = " ".join(tokens)
    if not rest:
        raise Unknown(f"{text!r} names a 시도, not a 시군구")
    by_key = {(d.province, d.district): d for d in known}
    found = {
        d for d in by_key.values() if d.district in (rest, rest + "구", rest + "시", rest + "군")
    }
    parts = rest.split(" ")
    for (city_province, city), wards in GENERAL_DISTRICTS.items():
        parent = by_key.get((city_province, city))
        if parent is None:
            continue
        if parts[-1] in wards and (len(parts) == 1 or parts[:-1] == [city]):
            found.add(parent)
    if province:
        found = {d for d in found if d.province == province}
    if not found:
        raise Unknown(f"no 시군구 named {text!r} in the data")
    if len(found) > 1:
        raise Ambiguous(text, sorted(d.name for d in found))
    return found.pop()


def lookup(
    text: str, known: Iterable[District], missing: ApiError | None = None, field: str = "district"
) -> District:
    """resolve() for an endpoint: an ambiguous name is 422 with the choices in details; an
    unknown one is `missing` (say, a 404 for data that covers only some districts), else 422."""
    try:
        return resolve(text, known)
    except Ambiguous as exc:
        error = validation_failed({field: f"ambiguous: say which of {', '.join(exc.choices)}"})
        error.details["choices"] = exc.choices
        raise error from None
    except Unknown:
        raise missing or validation_failed(
            {field: f"no 시군구 named {text!r} in the data"}
        ) from None

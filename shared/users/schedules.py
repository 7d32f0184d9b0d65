"""When and where household waste goes out, per district: the MOIS national standard table.

전국생활쓰레기배출정보 (행정안전부) lists, per municipality and management area, the weekdays
and hours for household, food and recyclable waste, the non-collection days and the
department to call. It is read as published (cp949) once per process, on first use. A
district is a 시군구 name ("강남구"); names shared by several provinces ("중구") can be
qualified with the province ("서울특별시 중구").
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).parents[1] / "data" / "schedules" / "mois_household_waste_disposal_info.csv"
SOURCE = "행정안전부 전국생활쓰레기배출정보 표준데이터 (data.go.kr 15075534)"
WASTE_KINDS = {"household": "생활쓰레기", "food": "음식물쓰레기", "recyclables": "재활용품"}


def _days(text: str) -> list[str]:
    return [day for day in (text or "").split("+") if day]


def _area(row: dict[str, str]) -> dict[str, Any]:
    kinds = {
        kind: {
            "how": row[f"{label}배출방법"] or None,
            "days": _days(row[f"{label}배출요일"]),
            "from": row[f"{label}배출시작시각"] or None,
            "until": row[f"{label}배출종료시각"] or None,
        }
        for kind, label in WASTE_KINDS.items()
    }
    area = row["관리구역대상지역명"]
    return {
        "province": row["시도명"],
        "district": row["시군구명"],
        "area": None if area in ("", "없음") else area,
        "place": row["배출장소"] or None,
        **kinds,
        "no_collection": _days(row["미수거일"]),
        "department": row["관리부서명"] or None,
        "phone": row["관리부서전화번호"] or None,
        "data_date": row["데이터기준일자"] or None,
    }


@cache
def _table() -> dict[str, list[dict[str, Any]]]:
    """Areas by district name and by "province district", from the cp949 file as it is."""
    text = TABLE.read_bytes().decode("cp949")
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO(text)):
        if not row.get("시군구명"):
            continue
        area = _area(row)
        by_name[row["시군구명"]].append(area)
        by_name[f"{row['시도명']} {row['시군구명']}"].append(area)
    return dict(by_name)


def known(district: str) -> bool:
    return district.strip() in _table()


def for_district(district: str) -> list[dict[str, Any]]:
    """Every management area of the district, as the mobile app shows a schedule."""
    return _table().get(district.strip(), [])

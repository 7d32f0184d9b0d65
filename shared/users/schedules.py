"""When and where household waste goes out, per district: the MOIS national standard table.

전국생활쓰레기배출정보 (행정안전부) lists, per municipality and management area, the weekdays
and hours for household, food and recyclable waste, the non-collection days and the
department to call. `growbin import` reads it as published (cp949) from the datasets folder
into the database; functions read it from there, built once per edition in each process. Its
시도명/시군구명 pairs (with the 개방자치단체코드) are the districts growbin knows: any form a
person types is resolved to one of them by shared.locations.districts.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from sqlalchemy import JSON, Column, Integer, String, Table, delete, insert, select
from sqlalchemy.engine import Connection

from shared.core import datasets, db
from shared.locations import districts
from shared.locations.districts import District

TABLE = "schedules/mois_household_waste_disposal_info.csv"
SOURCE = "행정안전부 전국생활쓰레기배출정보 표준데이터 (data.go.kr 15075534)"
WASTE_KINDS = {"household": "생활쓰레기", "food": "음식물쓰레기", "recyclables": "재활용품"}

schedule_areas = Table(
    "schedule_areas",
    db.metadata,
    Column(
        "id", Integer, primary_key=True, autoincrement=False
    ),  # the row's place in the published table
    Column("province", String(40), nullable=False),
    Column("district", String(40), nullable=False),
    Column("area", JSON, nullable=False),
)


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
        "district_code": row.get("개방자치단체코드") or None,
    }


def _store(conn: Connection, data: bytes) -> dict[str, Any]:
    rows, skipped, dates = [], {}, set()
    records = list(csv.DictReader(io.StringIO(data.decode("cp949"))))
    for number, row in enumerate(records, start=1):
        if not row.get("시군구명") or not row.get("시도명"):
            skipped["no 시도명/시군구명"] = skipped.get("no 시도명/시군구명", 0) + 1
            continue
        area = _area(row)
        if area["data_date"]:
            dates.add(area["data_date"])
        rows.append(
            {"id": number, "province": row["시도명"], "district": row["시군구명"], "area": area}
        )
    conn.execute(delete(schedule_areas))
    conn.execute(insert(schedule_areas), rows)
    edition = max(dates) if dates else None  # the newest 데이터기준일자 the table states
    return {"read": len(records), "imported": len(rows), "skipped": skipped, "edition": edition}


def import_table(only_if_changed: bool = True) -> dict[str, Any]:
    report = datasets.ingest(TABLE, _store, only_if_changed=only_if_changed)
    datasets.forget()
    return report


def _table() -> dict[str, list[dict[str, Any]]]:
    """Areas by district name and by "province district", from the stored edition."""

    def load() -> dict[str, list[dict[str, Any]]]:
        by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
        query = select(schedule_areas).order_by(schedule_areas.c.id)
        with db.reading() as conn:
            for row in conn.execute(query):
                by_name[row.district].append(row.area)
                by_name[f"{row.province} {row.district}"].append(row.area)
        return dict(by_name)

    return datasets.current(TABLE, load)


def source() -> str:
    """The table named with the edition the answer came from."""

    def load() -> str:
        stored = datasets.edition(TABLE) or {}
        return f"{SOURCE}, {stored['edition']} 기준" if stored.get("edition") else SOURCE

    return datasets.current(TABLE, load)


def known_districts() -> list[District]:
    """Every 시도 + 시군구 of the table, with its code where a row states one."""

    def load() -> list[District]:
        found: dict[tuple[str, str], str | None] = {}
        for key, areas in _table().items():
            if " " not in key:
                continue
            province, name = key.split(" ", 1)
            found[(province, name)] = next(
                (a.get("district_code") for a in areas if a.get("district_code")), None
            )
        return [District(p, d, code) for (p, d), code in sorted(found.items())]

    return datasets.current(TABLE, load)


def resolve(text: str) -> District:
    """The canonical district `text` names; 422 naming the choices when several answer, or
    saying none does."""
    return districts.lookup(text, known_districts())


def for_district(district: District) -> list[dict[str, Any]]:
    """Every management area of the district, as the mobile app shows a schedule."""
    return _table().get(district.name, [])

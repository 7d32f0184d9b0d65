"""What it costs, per district: bulky-waste collection fees and volume-rate bag prices.

Two national standard tables, imported by `growbin import` as published: 전국대형폐기물수거
수수료정보 (item, kind, size, fee per 시군구; UTF-8 with BOM) and 전국종량제봉투가격 (bag
kind, use, target and a price per litre size; JSON with `fields` and `records`). A district is
resolved among the districts each table covers (shared.locations.districts), so "강남구",
"서울 강남구" and "서울특별시 강남구" are one, and "중구" is ambiguous. Item names are matched
as forgivingly as item search: spaces, a parenthesised note and misspellings do not matter
("쇼파" finds 소파).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text, delete, insert, select
from sqlalchemy.engine import Connection

from shared.core import datasets, db
from shared.core.batching import chunked
from shared.locations import districts
from shared.locations.districts import District
from shared.waste.search import spelling

FEES = "fees/bulky_waste_fees.csv"
BAGS = "fees/bag_prices.json"
MATCH = 0.55  # the least similarity an item name must have to be listed for a query
PRICE_COLUMN = re.compile(r"^([\d.]+)ℓ가격$")

bulky_fees = Table(
    "bulky_fees",
    db.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # row in the published table
    Column("province", String(40), nullable=False),
    Column("district", String(40), nullable=False),
    Column("code", String(10)),  # 제공기관코드
    Column("name", Text, nullable=False),
    Column("category", Text),
    Column("size", Text),
    Column("fee_krw", Integer, nullable=False),
    Column("data_date", String(10)),
    Index("ix_bulky_fees_place", "province", "district"),
)
bag_prices = Table(
    "bag_prices",
    db.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("province", String(40), nullable=False),
    Column("district", String(40), nullable=False),
    Column("code", String(10)),
    Column("use", Text),  # 생활쓰레기 | 음식물쓰레기
    Column("kind", Text),  # 규격봉투, 재사용규격봉투, ...
    Column("method", Text),  # 소각용, 매립용, ...
    Column("target", Text),  # 가정용, 사업장용, ...
    Column("prices", JSON, nullable=False),  # {"<litres>": won}, sizes the district sells
    Column("data_date", String(10)),
    Index("ix_bag_prices_place", "province", "district"),
)


def _place(row: dict[str, str]) -> tuple[str, str] | None:
    province = districts.province_name((row.get("시도명") or "").strip())
    district = (row.get("시군구명") or "").strip()
    return (province, district) if province and district else None


def _won(text: str) -> int | None:
    digits = re.sub(r"[,\s원]", "", text or "")
    return int(digits) if digits.isdigit() else None


def _standard(number: int, row: dict[str, Any], place: tuple[str, str]) -> dict[str, Any]:
    """The columns every row of a standard-data table shares: where, whose, and as of when."""
    return {
        "id": number,
        "province": place[0],
        "district": place[1],
        "code": (row.get("제공기관코드") or "").strip() or None,
        "data_date": (row.get("데이터기준일자") or "").strip() or None,
    }


def _report(read: int, rows: list[dict[str, Any]], skipped: dict[str, int]) -> dict[str, Any]:
    """What an import says: read, imported, skipped by reason, and the edition (the newest
    date the imported rows state)."""
    dates = [row["data_date"] for row in rows if row["data_date"]]
    return {
        "read": read,
        "imported": len(rows),
        "skipped": dict(skipped),
        "edition": max(dates) if dates else None,
    }


def _store_fees(conn: Connection, data: bytes) -> dict[str, Any]:
    records = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    rows, skipped = [], defaultdict(int)
    for number, row in enumerate(records, start=1):
        place = _place(row)
        fee = 0 if (row.get("유무료여부") or "").strip() == "무료" else _won(row.get("수수료", ""))
        if place is None:
            skipped["no 시도명/시군구명"] += 1
            continue
        if fee is None or not (row.get("대형폐기물명") or "").strip():
            skipped["no item name or fee"] += 1
            continue
        rows.append(
            {
                **_standard(number, row, place),
                "name": " ".join(row["대형폐기물명"].split()),
                "category": (row.get("대형폐기물구분명") or "").strip() or None,
                "size": (row.get("대형폐기물규격") or "").strip() or None,
                "fee_krw": fee,
            }
        )
    conn.execute(delete(bulky_fees))
    for chunk in chunked(rows, 2000):
        conn.execute(insert(bulky_fees), chunk)
    return _report(len(records), rows, skipped)


def _store_bags(conn: Connection, data: bytes) -> dict[str, Any]:
    document = json.loads(data.decode("utf-8-sig"))
    records = document["records"] if isinstance(document, dict) else document
    rows, skipped = [], defaultdict(int)
    for number, row in enumerate(records, start=1):
        place = _place(row)
        prices = {
            match.group(1): won
            for column, value in row.items()
            if (match := PRICE_COLUMN.match(column)) and (won := _won(str(value)))
        }
        if place is None:
            skipped["no 시도명/시군구명"] += 1
            continue
        if not prices:
            skipped["no price above 0"] += 1
            continue
        rows.append(
            {
                **_standard(number, row, place),
                "use": row.get("종량제봉투용도") or None,
                "kind": row.get("종량제봉투종류") or None,
                "method": row.get("종량제봉투처리방식") or None,
                "target": row.get("종량제봉투사용대상") or None,
                "prices": prices,
            }
        )
    conn.execute(delete(bag_prices))
    conn.execute(insert(bag_prices), rows)
    return _report(len(records), rows, skipped)


def import_all(only_if_changed: bool = True) -> list[dict[str, Any]]:
    """Import the fee and bag tables; each report says what was read and skipped."""
    reports = [
        datasets.ingest(FEES, _store_fees, only_if_changed=only_if_changed),
        datasets.ingest(BAGS, _store_bags, only_if_changed=only_if_changed),
    ]
    datasets.forget()
    return reports


# ---- what functions read ------------------------------------------------------------------


def _covered(table: Table) -> list[District]:
    query = select(table.c.province, table.c.district, table.c.code).distinct()
    with db.reading() as conn:
        found = {(p, d): c for p, d, c in conn.execute(query)}
    return [District(p, d, c) for (p, d), c in sorted(found.items())]


def fee_districts() -> list[District]:
    """The districts the fee table covers."""

    def load() -> list[District]:
        return _covered(bulky_fees)

    return datasets.current(FEES, load)


def bag_districts() -> list[District]:
    """The districts the bag table covers."""

    def load() -> list[District]:
        return _covered(bag_prices)

    return datasets.current(BAGS, load)


def _key(name: str) -> str:
    """An item name as compared: no parenthesised note, no spaces or punctuation."""
    return spelling.normalize(re.sub(r"\(.*?\)", "", name)) or spelling.normalize(name)


def similarity(query: str, name: str) -> float:
    """1 for the same name; a name inside the other by how much it covers; a misspelling a
    letter or two away; else how many letter pairs they share."""
    q, n = _key(query), _key(name)
    if not q or not n:
        return 0.0
    if q == n:
        return 1.0
    score = 0.0
    if q in n or n in q:
        score = 0.6 + 0.3 * min(len(q), len(n)) / max(len(q), len(n))
    ql, nl = spelling.jamo(q), spelling.jamo(n)
    a, b = spelling.grams(ql), spelling.grams(nl)
    score = max(score, 0.85 * spelling.dice(a, b))
    distance = spelling.edit_distance(ql, nl)
    longest = max(len(ql), len(nl))
    if distance <= max(1, longest // 4):
        score = max(score, 0.9 * (1 - distance / longest) + 0.02)
    return score


def fees_for(district: District, query: str | None) -> dict[str, Any]:
    """The district's bulky-waste fee rows matching `query` (best first), or all of them."""
    table = bulky_fees
    where = (table.c.province == district.province, table.c.district == district.district)
    with db.reading() as conn:
        rows = conn.execute(select(table).where(*where).order_by(table.c.id)).mappings().all()
    scored = [(similarity(query, r["name"]) if query else 1.0, r) for r in rows]
    kept = sorted((pair for pair in scored if pair[0] >= MATCH), key=lambda p: -p[0])
    return {
        "district": district.name,
        "district_code": district.code,
        "items": [{k: r[k] for k in ("name", "category", "size", "fee_krw")} for _score, r in kept],
        "data_date": max((r["data_date"] for r in rows if r["data_date"]), default=None),
    }


def bags_for(district: District) -> dict[str, Any]:
    """The district's volume-rate bags and their price per litre size."""
    table = bag_prices
    where = (table.c.province == district.province, table.c.district == district.district)
    with db.reading() as conn:
        rows = conn.execute(select(table).where(*where).order_by(table.c.id)).mappings().all()
    return {
        "district": district.name,
        "district_code": district.code,
        "bags": [{k: r[k] for k in ("use", "kind", "method", "target", "prices")} for r in rows],
        "data_date": max((r["data_date"] for r in rows if r["data_date"]), default=None),
    }

"""The disposal knowledge as growbin stores it: imported from the datasets folder, not shipped.

The Ministry of Environment's item dictionary (품목사전, 730 guides), its 19 representative
guides (one per category: what belongs there and what must go elsewhere instead, which search
reads as names), and the vision prompt's taxonomy (middle categories and situation tags) are
read by `growbin import` from the datasets folder (shared/core/datasets.py) into the
database. Functions read them from there, built once per edition in each process, so a new
edition of the dictionary is an import, not a release.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, Column, Integer, String, Table, Text, delete, insert, select
from sqlalchemy.engine import Connection

from shared.core import datasets, db

GUIDES = "rules/moe_item_disposal_guides.json"
REPRESENTATIVE = "rules/moe_representative_guide_details.json"
CLASSES = "taxonomy/item_class_list.yaml"
TAGS = "taxonomy/situation_tags.yaml"
FILES = (GUIDES, REPRESENTATIVE, CLASSES, TAGS)

TITLE = "기후에너지환경부 생활폐기물 분리배출 누리집 품목사전"
DATASET_ID = "data.go.kr 15156866"
ATTRIBUTION = (
    "기후에너지환경부 생활폐기물 분리배출 누리집과 분리배출 정보조회 서비스의 텍스트 정보를 "
    "가공한 데이터입니다."
)

guides = Table(
    "guides",
    db.metadata,
    Column("guide_id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("body", JSON, nullable=False),  # the entry as published
)

# The 19 per-category guides (종이, 플라스틱류, ...): sections such as "대상품목" (what the
# category takes) and "...로 배출해야 하는 품목" (what looks alike but goes elsewhere).
representative_guides = Table(
    "representative_guides",
    db.metadata,
    Column("category", String(100), primary_key=True),
    Column("guide_id", String(40), nullable=False),
    Column("body", JSON, nullable=False),  # the entry as published
)

taxonomy_terms = Table(
    "taxonomy_terms",
    db.metadata,
    Column("kind", String(20), primary_key=True),  # "middle" category or situation "tag"
    Column("position", Integer, primary_key=True),
    Column("term", Text, nullable=False),
)

REQUIRED = ("id", "name", "categoryPaths", "dischargeMethods")


# ---- import -------------------------------------------------------------------------------


def _store_guides(conn: Connection, data: bytes) -> dict[str, Any]:
    entries = json.loads(data.decode("utf-8"))
    rows, skipped, seen = [], {}, set()
    for entry in entries:
        reason = next((f"no {field}" for field in REQUIRED if not entry.get(field)), None)
        if reason is None and entry["id"] in seen:
            reason = "repeated id"
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        seen.add(entry["id"])
        rows.append({"guide_id": entry["id"], "name": entry["name"], "body": entry})
    conn.execute(delete(guides))
    conn.execute(insert(guides), rows)
    return {"read": len(entries), "imported": len(rows), "skipped": skipped}


def _store_representative(conn: Connection, data: bytes) -> dict[str, Any]:
    document = json.loads(data.decode("utf-8"))
    rows, skipped = [], {}
    for category, entry in document.items():
        reason = next((f"no {f}" for f in ("id", "sections") if not entry.get(f)), None)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        rows.append({"category": category, "guide_id": entry["id"], "body": entry})
    conn.execute(delete(representative_guides))
    if rows:
        conn.execute(insert(representative_guides), rows)
    return {"read": len(document), "imported": len(rows), "skipped": skipped}


def _terms_store(kind: str, parse):
    def store(conn: Connection, data: bytes) -> dict[str, Any]:
        import yaml

        terms = parse(yaml.safe_load(data.decode("utf-8")))
        conn.execute(delete(taxonomy_terms).where(taxonomy_terms.c.kind == kind))
        rows = [{"kind": kind, "position": i, "term": t} for i, t in enumerate(terms)]
        conn.execute(insert(taxonomy_terms), rows)
        return {"read": len(terms), "imported": len(rows), "skipped": {}}

    return store


def _middles(document: dict[str, Any]) -> list[str]:
    return [m for majors in document["item_class_list"].values() for m in (majors or {})]


def _tags(document: dict[str, Any]) -> list[str]:
    return [str(tag) for tag in document["situation_tags"]]


def import_all(only_if_changed: bool = True) -> list[dict[str, Any]]:
    """Import the dictionary, its representative guides and the taxonomy; each report says
    what was read and skipped."""
    stores = {
        GUIDES: _store_guides,
        REPRESENTATIVE: _store_representative,
        CLASSES: _terms_store("middle", _middles),
        TAGS: _terms_store("tag", _tags),
    }
    reports = [datasets.ingest(k, s, only_if_changed=only_if_changed) for k, s in stores.items()]
    datasets.forget()
    return reports


# ---- what functions read ------------------------------------------------------------------


def entries() -> list[dict[str, Any]]:
    """Every guide as published, from the stored edition (empty before the first import)."""

    def load() -> list[dict[str, Any]]:
        with db.reading() as conn:
            return [row.body for row in conn.execute(select(guides.c.body))]

    return datasets.current(GUIDES, load)


def representative() -> dict[str, dict[str, Any]]:
    """The per-category guides by category name (종이, 플라스틱류, ...), as published."""

    def load() -> dict[str, dict[str, Any]]:
        with db.reading() as conn:
            rows = conn.execute(
                select(representative_guides.c.category, representative_guides.c.body)
            )
            return {row.category: row.body for row in rows}

    return datasets.current(REPRESENTATIVE, load)


def terms(kind: str) -> list[str]:
    """The taxonomy's `middle` categories or situation `tag`s, in the published order."""

    def load() -> list[str]:
        with db.reading() as conn:
            query = (
                select(taxonomy_terms.c.term)
                .where(taxonomy_terms.c.kind == kind)
                .order_by(taxonomy_terms.c.position)
            )
            return list(conn.execute(query).scalars())

    return datasets.current(CLASSES if kind == "middle" else TAGS, load)


def source() -> dict[str, str | None]:
    """What every answer grounded in the dictionary cites: the dataset and its edition."""

    def load() -> dict[str, Any]:
        return datasets.edition(GUIDES) or {}

    stored = datasets.current(GUIDES, load)
    return {
        "title": TITLE,
        "dataset": DATASET_ID,
        "edition": stored.get("edition"),
        "attribution": ATTRIBUTION,
    }

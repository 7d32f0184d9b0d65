"""Bins: where waste can go (clothing bins, street bins, collection sites), stored and searched.

Each bin comes from one imported dataset (a file) and keeps what its source knows. Its id is
derived from the dataset and the row's stable source id, so re-importing a file updates the
same bins in place.

Nearby search prunes by area before it measures: every bin with coordinates carries its
latitude band (`band`, 0.01 degrees, about 1.1 km), and the B-tree indexes (band, lng, lat) and
(type, band, lng, lat) turn a bounding box into one short index range per band, on SQLite and
PostgreSQL alike (no extension needed; PostgreSQL here has none installed beyond plpgsql).
Exact great-circle distances are then computed for the few candidates. The search first
looks where the nearest `limit` would be in a dense city (250 m for 20) and widens toward the
radius by what the density it has seen promises, each widening reading only the ring outside
the box already read, so "the 20 nearest within 20 km" in central Seoul reads a few dozen rows,
once each, not the thousands inside the full circle.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    not_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Select

from shared.core import db
from shared.core.batching import chunked
from shared.core.times import rfc3339
from shared.locations import geo, kakao_local

TYPES = (
    "clothing",
    "recycling",
    "general",
    "battery",
    "lamp",
    "medicine",
    "small_appliance",
    "recycle_center",
)
LABELS = {  # what a bin is called on the street and on the map
    "clothing": "의류수거함",
    "recycling": "재활용 쓰레기통",
    "general": "일반 쓰레기통",
    "battery": "폐건전지 수거함",
    "lamp": "폐형광등 수거함",
    "medicine": "폐의약품 수거함",
    "small_appliance": "소형가전 수거함",
    "recycle_center": "재활용 수거 거점",
}
BAND_DEG = 0.01  # latitude band height of the area index
CITY_DENSITY = 100.0  # bins per km² in a dense city centre: nearby first looks where the
# `limit` nearest would be at that density (250 m for 20), then widens as the density says
MARGIN = 1.1  # ... to where the density seen promises `limit` bins, this much farther
WIDEN = 4.0  # at most this much per step
PLACE_MATCH_M = 60.0  # a Kakao place this close to one of our sites is that site
PLACE_NAME_MATCH_M = 300.0  # ... or this close with the same name
MERGE_M = 10.0  # two sources' points of one type this close are one point (a few metres:
# coordinates of one box differ by geocoder and rounding, while neighbouring boxes of one
# register stand 30 m or more apart)
_MERGE_CELL = 0.0002  # grid cell of the merge pass, in degrees (about 22 m north-south)

bin_datasets = Table(
    "bin_datasets",
    db.metadata,
    Column("key", String(200), primary_key=True),  # "<folder>/<file name>"
    Column("kind", String(20), nullable=False),  # register | keco | street
    Column("title", Text, nullable=False),
    Column("publisher", Text),
    Column("date", String(10)),  # as precise as the source says: YYYY-MM-DD or YYYY-MM
    Column("attribution", Text),
    Column("sha256", String(64), nullable=False),
    Column("geocoder", String(20)),  # "kakao" when addresses were geocoded in this import
    Column("report", JSON, nullable=False),
    Column("imported_at", db.UtcDateTime, nullable=False),
)

bins = Table(
    "bins",
    db.metadata,
    Column("id", String(16), primary_key=True),
    Column(
        "dataset",
        String(200),
        ForeignKey("bin_datasets.key", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("source_id", Text, nullable=False),
    Column("type", String(20), nullable=False),
    Column("name", Text, nullable=False),
    Column("address", Text),
    Column("city", String(40)),  # 시도, e.g. 서울특별시
    Column("district", String(40)),  # 시군구 as the source names it
    Column("location_detail", Text),
    Column("lat", Double),
    Column("lng", Double),
    Column("band", Integer),
    Column("opening_hours", JSON),
    Column("accepted_items", JSON),
    Column("phone", Text),
    Column("source_date", String(10)),
    Column("properties", JSON, nullable=False),  # the source row as published
    Column("accepts", Text),  # the types it takes, space-padded: " battery lamp "
    Column("merged_into", String(16)),  # the newer point of another source it is
    Column("updated_at", db.UtcDateTime, nullable=False),
    UniqueConstraint("dataset", "source_id"),
    Index("ix_bins_band_lng_lat", "band", "lng", "lat"),
    Index("ix_bins_merged_into", "merged_into"),
)


def accepts_text(types: Iterable[str]) -> str:
    """The stored form of a set of types: found by LIKE '% type %' on any database."""
    return " " + " ".join(sorted(set(types), key=TYPES.index)) + " "


def accepts_list(text: str | None, primary: str) -> list[str]:
    return text.split() if text else [primary]


def bin_id(dataset: str, source_id: str) -> str:
    """The public id: the same for the same row of the same dataset, on every import."""
    return hashlib.blake2b(f"{dataset}\n{source_id}".encode(), digest_size=8).hexdigest()


def band_of(lat: float) -> int:
    return math.floor(lat / BAND_DEG)


# ---- search -------------------------------------------------------------------------------


@cache
def _area_statement(typed: bool, beyond: bool = False) -> Select:
    """Bins inside a bounding box, through the area index: one index range per latitude band.
    `beyond` leaves out those inside a smaller box read before, so widening fetches only the
    new ring (SQLite drops the others on the index entry alone, PostgreSQL on the row; neither
    sends them again). A type is matched against what a point accepts (a battery-and-lamp box
    answers both), on the rows the area index found. A point that is another source's point
    too (merged) answers once, as the newer one. Built once; each search only binds its values
    (statement building costs more than the query itself)."""
    conditions = [
        bins.c.band.in_(bindparam("bands", expanding=True)),
        bins.c.lng.between(bindparam("min_lng"), bindparam("max_lng")),
        bins.c.lat.between(bindparam("min_lat"), bindparam("max_lat")),
        # Nearly every point is unmerged: as `merged_into IS NULL` SQLite's planner took
        # ix_bins_merged_into for a wide box, a scan of the table (35 ms at 20 km); as an
        # expression it can only filter the rows the area index found.
        func.coalesce(bins.c.merged_into, "") == "",
    ]
    if typed:
        conditions.append(bins.c.accepts.like(bindparam("accepts")))
    if beyond:
        read = and_(
            bins.c.lng.between(bindparam("read_min_lng"), bindparam("read_max_lng")),
            bins.c.lat.between(bindparam("read_min_lat"), bindparam("read_max_lat")),
        )
        conditions.append(not_(read))
    # In the order nearest() unpacks them.
    columns = (bins.c.id, bins.c.name, bins.c.type, bins.c.address, bins.c.lat, bins.c.lng)
    return select(*columns, bins.c.dataset, bins.c.accepts).where(*conditions)


def _area_params(box: geo.Box, bin_type: str | None, read: geo.Box | None = None) -> dict[str, Any]:
    params = {
        "bands": list(range(band_of(box.min_lat), band_of(box.max_lat) + 1)),
        **box._asdict(),
    }
    if bin_type:
        params["accepts"] = f"% {bin_type} %"
    if read:
        params.update({f"read_{bound}": value for bound, value in read._asdict().items()})
    return params


def area_query(box: geo.Box, bin_type: str | None = None) -> Select:
    """The area search with its values bound (to EXPLAIN it)."""
    return _area_statement(bool(bin_type)).params(**_area_params(box, bin_type))


def nearest(
    lat: float, lng: float, radius_m: float, bin_type: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Our bins within `radius_m`, nearest first, at most `limit`."""
    reach = min(radius_m, 1000.0 * math.sqrt(limit / (math.pi * CITY_DENSITY)))
    seen: list[tuple[float, str, Row]] = []  # (distance, id, row) of every bin read so far
    read: geo.Box | None = None  # ... which are all those inside this box
    with db.reading() as conn:
        while True:
            box = geo.bounding_box(lat, lng, reach)
            statement = _area_statement(bool(bin_type), read is not None)
            for row in conn.execute(statement, _area_params(box, bin_type, read)).all():
                # Unpacked, not row.lat: a Row's attribute lookup costs more than the distance.
                bin_id, _name, _type, _address, bin_lat, bin_lng, _source, _accepts = row
                seen.append((geo.haversine_m(lat, lng, bin_lat, bin_lng), bin_id, row))
            read = box
            within = sum(1 for distance, _id, _row in seen if distance <= reach)
            # Everything within `reach` has been seen; enough of them means none farther
            # can be among the nearest `limit`.
            if within >= limit or reach >= radius_m:
                break
            # Widen to where the density seen so far promises `limit` bins, with a margin.
            # It is small: falling short costs one more round of only the new ring, while
            # overshooting reads every bin in the excess, and that is most of a search's time.
            grow = MARGIN * math.sqrt(limit / within) if within else WIDEN
            reach = min(radius_m, reach * min(WIDEN, max(1.25, grow)))
    # Ids are unique and each bin was read once: the rows themselves are never compared.
    found = sorted(hit for hit in seen if hit[0] <= reach)
    return [
        {
            "id": bin_id,
            "name": name,
            "type": kind,
            "address": address,
            "lat": bin_lat,
            "lng": bin_lng,
            "distance_m": distance,
            "source": source,
            "accepts": accepts_list(accepts, kind),
        }
        for distance, _id, row in found[:limit]
        for bin_id, name, kind, address, bin_lat, bin_lng, source, accepts in (row,)
    ]


def nearby(
    lat: float, lng: float, radius_m: float, bin_type: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Nearest bins first; with a Kakao key, recycling places from Kakao Local join them."""
    found = nearest(lat, lng, radius_m, bin_type, limit)
    if bin_type in (None, "recycle_center") and kakao_local.configured():
        places = kakao_local.recycling_places(lat, lng, radius_m)
        if places:
            ours = nearest(lat, lng, radius_m + PLACE_NAME_MATCH_M, "recycle_center", 1000)
            found = merge_places(found, places, ours)[:limit]
    return [
        {"accepts": [item["type"]], **item, "distance_m": round(item["distance_m"], 1)}
        for item in found
    ]


def _same_name(a: str, b: str) -> bool:
    def squeeze(s: str) -> str:
        return "".join(s.split()).lower()

    return squeeze(a) == squeeze(b)


def merge_places(
    found: list[dict[str, Any]], places: list[dict[str, Any]], ours: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Add the Kakao places that are not already our recycling sites, keeping distance order."""
    ours = list(ours)
    fresh = []
    for place in places:
        duplicate = any(
            (gap := geo.haversine_m(place["lat"], place["lng"], site["lat"], site["lng"]))
            <= PLACE_MATCH_M
            or (gap <= PLACE_NAME_MATCH_M and _same_name(place["name"], site["name"]))
            for site in ours
        )
        if not duplicate:
            fresh.append(place)
    return sorted(found + fresh, key=lambda item: (item["distance_m"], item["id"]))


# ---- one bin ------------------------------------------------------------------------------


def get(bin_id_: str) -> dict[str, Any] | None:
    """Everything its source knows about one bin, or None."""
    if bin_id_.startswith(kakao_local.PLACE_PREFIX):
        place = kakao_local.place(bin_id_)
        return {"accepts": [place["type"]], **place} if place else None
    query = (
        select(
            bins,
            bin_datasets.c.title,
            bin_datasets.c.publisher,
            bin_datasets.c.date,
            bin_datasets.c.attribution,
        )
        .join(bin_datasets, bin_datasets.c.key == bins.c.dataset)
        .where(bins.c.id == bin_id_)
    )
    with db.engine().connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return None
    own = ("id", "name", "type", "address", "lat", "lng", "city", "district", "location_detail")
    return {
        **{k: row[k] for k in own},
        "accepts": accepts_list(row["accepts"], row["type"]),
        "merged_into": row["merged_into"],
        "also_in": _also_in(row["id"]),
        "opening_hours": row["opening_hours"],
        "accepted_items": row["accepted_items"] or [],
        "phone": row["phone"],
        "source": {
            "dataset": row["dataset"],
            "title": row["title"],
            "publisher": row["publisher"],
            "date": row["source_date"] or row["date"],
            "attribution": row["attribution"],
            "row": row["properties"],
        },
        "updated_at": rfc3339(row["updated_at"]),
    }


def _also_in(bin_id_: str) -> list[dict[str, Any]]:
    """The other sources' rows that are this same point (merged into it)."""
    query = (
        select(bins.c.id, bins.c.dataset, bin_datasets.c.title, bins.c.source_date)
        .join(bin_datasets, bin_datasets.c.key == bins.c.dataset)
        .where(bins.c.merged_into == bin_id_)
        .order_by(bins.c.dataset, bins.c.id)
    )
    with db.engine().connect() as conn:
        return [
            {"id": r.id, "dataset": r.dataset, "title": r.title, "date": r.source_date}
            for r in conn.execute(query)
        ]


# ---- writing an import --------------------------------------------------------------------

_COLUMNS = (
    "dataset",
    "source_id",
    "type",
    "name",
    "address",
    "city",
    "district",
    "location_detail",
    "opening_hours",
    "accepted_items",
    "phone",
    "source_date",
    "properties",
    "updated_at",
)


def _upsert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(bins)
    updates: dict[str, Any] = {c: stmt.excluded[c] for c in _COLUMNS}
    # A row imported without coordinates (an address not geocoded this time) keeps the ones
    # an earlier import found; coordinates a source states always win.
    for column in ("lat", "lng", "band"):
        updates[column] = func.coalesce(stmt.excluded[column], bins.c[column])
    return stmt.on_conflict_do_update(index_elements=["id"], set_=updates)


def save_dataset(
    dataset: dict[str, Any], records: list[dict[str, Any]], types: Iterable[str]
) -> int:
    """Write one dataset and its bins in one transaction: upsert every record, then drop the
    bins of `types` the file no longer lists. Returns how many were dropped."""
    now = db.now()
    rows = []
    for record in records:
        lat = record.get("lat")
        row = {c: record.get(c) for c in _COLUMNS}
        row.update(
            accepts=accepts_text(record.get("accepts") or [record["type"]]),
            id=bin_id(dataset["key"], record["source_id"]),
            dataset=dataset["key"],
            lat=lat,
            lng=record.get("lng"),
            band=band_of(lat) if lat is not None else None,
            updated_at=now,
        )
        rows.append(row)
    with db.transaction() as conn:
        db.upsert(
            conn,
            bin_datasets,
            {**dataset, "imported_at": now},
            keys=["key"],
            update=[c for c in dataset if c != "key"] + ["imported_at"],
        )
        for chunk in chunked(rows, 1000):
            conn.execute(_upsert(conn), chunk)
        existing = conn.execute(
            select(bins.c.id).where(bins.c.dataset == dataset["key"], bins.c.type.in_(list(types)))
        ).scalars()
        stale = sorted(set(existing) - {row["id"] for row in rows})
        for chunk in chunked(stale, 500):
            conn.execute(delete(bins).where(bins.c.id.in_(chunk)))
        if stale:
            conn.execute(
                update(bin_datasets)
                .where(bin_datasets.c.key == dataset["key"])
                .values(report={**dataset["report"], "removed": len(stale)})
            )
    return len(stale)


def merge_duplicates() -> int:
    """Mark every point that another dataset's newer point of the same type stands within
    MERGE_M of as merged into it; returns how many points are merged. One pass over all
    points with coordinates, newest data first, on a grid, so each point is compared with the
    few kept points of its own and the neighbouring cells only. Points of one dataset never
    merge with each other: a register's true repeats are separate boxes."""
    query = select(
        bins.c.id,
        bins.c.dataset,
        bins.c.type,
        bins.c.lat,
        bins.c.lng,
        func.coalesce(bins.c.source_date, bin_datasets.c.date, "").label("date"),
        bins.c.merged_into,
    ).join(bin_datasets, bin_datasets.c.key == bins.c.dataset)
    with db.engine().connect() as conn:
        rows = conn.execute(query.where(bins.c.lat.is_not(None))).all()
    rows.sort(key=lambda r: (r.date, r.dataset, r.id), reverse=True)
    kept: dict[tuple[str, int, int], list[Row]] = {}
    changes = []
    merged = 0
    for row in rows:
        cell_lat, cell_lng = math.floor(row.lat / _MERGE_CELL), math.floor(row.lng / _MERGE_CELL)
        target, best = None, MERGE_M
        for d_lat in (-1, 0, 1):
            for d_lng in (-1, 0, 1):
                for other in kept.get((row.type, cell_lat + d_lat, cell_lng + d_lng), ()):
                    if other.dataset == row.dataset:
                        continue
                    gap = geo.haversine_m(row.lat, row.lng, other.lat, other.lng)
                    if gap <= best:
                        target, best = other.id, gap
        if target is None:
            kept.setdefault((row.type, cell_lat, cell_lng), []).append(row)
        else:
            merged += 1
        if target != row.merged_into:
            changes.append({"bin": row.id, "into": target})
    if changes:
        statement = (
            update(bins).where(bins.c.id == bindparam("bin")).values(merged_into=bindparam("into"))
        )
        with db.transaction() as conn:
            for chunk in chunked(changes, 1000):
                conn.execute(statement, chunk)
    return merged


def coverage(dataset: str | None = None) -> dict[str, dict[str, int]]:
    """Points with coordinates per "시도 시군구" and each type they accept (a battery-and-lamp
    box counts under both; merged points once), all datasets or one."""
    query = (
        select(bins.c.city, bins.c.district, bins.c.accepts, func.count())
        .where(bins.c.lat.is_not(None), bins.c.merged_into.is_(None))
        .group_by(bins.c.city, bins.c.district, bins.c.accepts)
    )
    if dataset:
        query = query.where(bins.c.dataset == dataset)
    table: dict[str, dict[str, int]] = {}
    with db.engine().connect() as conn:
        for city, district, accepts, n in conn.execute(query):
            place = " ".join(p for p in (city, district) if p) or "(unknown)"
            counts = table.setdefault(place, {})
            for kind in (accepts or "").split():
                counts[kind] = counts.get(kind, 0) + n
    return dict(sorted(table.items()))


def merged_count(dataset: str) -> int:
    """A dataset's points that are one point with another dataset's (either way round)."""
    other = bins.alias("other")
    into_other = select(func.count()).where(
        bins.c.dataset == dataset, bins.c.merged_into.is_not(None)
    )
    absorbed = (
        select(func.count(func.distinct(bins.c.id)))
        .select_from(bins.join(other, other.c.merged_into == bins.c.id))
        .where(bins.c.dataset == dataset)
    )
    with db.engine().connect() as conn:
        return conn.execute(into_other).scalar_one() + conn.execute(absorbed).scalar_one()


def store_report(key: str, report: dict[str, Any]) -> None:
    """Keep a dataset's report as completed after the import (the merge pass's counts)."""
    with db.transaction() as conn:
        conn.execute(update(bin_datasets).where(bin_datasets.c.key == key).values(report=report))


def dataset_state(key: str) -> dict[str, Any] | None:
    """What the last import of a dataset recorded (hash, geocoder, report), or None."""
    with db.engine().connect() as conn:
        row = conn.execute(select(bin_datasets).where(bin_datasets.c.key == key)).mappings()
        found = row.first()
    return dict(found) if found else None

"""Importing public bin data as it is published: district registers, KECO sites, street bins.

Files are taken as they are. Encoding: UTF-8 (with or without BOM) or cp949. Kind, from the
content: KECO's API field names (positnSn, positnPstnLat, ...), the street-bin JSON
(자치구, 도로명주소, 쓰레기통종류), or a register: any table with latitude and longitude
columns. Register columns are recognised by meaning, whatever their order or wording
(위도/latitude/Y좌표, 경도/longitude/X좌표, 도로명주소/주소/설치장소, 상세위치, 관리번호,
데이터기준일...). A row with missing, unparseable, zero, swapped or non-Korean coordinates is
skipped and counted under its reason, with the first few examples; nothing is dropped silently.

Every row gets a stable source id (a management number, else its address and place, with a
counter for true repeats), so re-importing a file updates its bins in place, and bins the
file no longer lists are removed. Street bins have addresses only: they are geocoded through
Kakao Local when a key is configured (see shared.locations.kakao_local) and kept without coordinates
otherwise, so they show in bin detail but not in nearby.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import date, timedelta
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

from shared.core import datasets
from shared.core.errors import log_event
from shared.locations import bins, districts, geo, kakao_local

FOLDER = "locations"  # inside the datasets folder
# The team's word on each public file: which ones growbin imports, and what they cannot say
# about themselves (title, publisher, date, attribution).
MANIFEST = Path(__file__).with_name("datasets.json")
EXAMPLES = 5  # examples kept per skip reason
# What the importer makes of a file; raised when it reads files differently (2: 시도, what a
# point accepts, merging), so a file imported by an older version is imported again.
VERSION = 2

SEOUL = "서울특별시"
# The 25 districts of Seoul, for files that name them only in their file name (bins_mapo.csv).
SEOUL_DISTRICTS = {
    "jongno": "종로구",
    "jung": "중구",
    "yongsan": "용산구",
    "seongdong": "성동구",
    "gwangjin": "광진구",
    "dongdaemun": "동대문구",
    "jungnang": "중랑구",
    "seongbuk": "성북구",
    "gangbuk": "강북구",
    "dobong": "도봉구",
    "nowon": "노원구",
    "eunpyeong": "은평구",
    "seodaemun": "서대문구",
    "mapo": "마포구",
    "yangcheon": "양천구",
    "gangseo": "강서구",
    "guro": "구로구",
    "geumcheon": "금천구",
    "yeongdeungpo": "영등포구",
    "dongjak": "동작구",
    "gwanak": "관악구",
    "seocho": "서초구",
    "gangnam": "강남구",
    "songpa": "송파구",
    "gangdong": "강동구",
}
# First address tokens that name a province or metropolitan city, in full or short.
PROVINCE = re.compile(
    r"^(\S+(특별시|광역시|특별자치시|특별자치도|도)|서울|부산|대구|인천|광주|대전|울산|세종"
    r"|경기|강원|충북|충남|전북|전남|경북|경남|제주)$"
)

# Register columns by meaning: (role, pattern on the header without spaces, lower case).
# Exact patterns see the header without a parenthesised suffix ("위도(Y)" -> "위도").
EXACT_ROLES = (
    ("lat", re.compile(r"^(위도|latitude|lat|y좌표|y좌표값|y)$")),
    ("lng", re.compile(r"^(경도|longitude|lng|lon|long|x좌표|x좌표값|x)$")),
    ("city", re.compile(r"^(시도|시도명|광역시도|광역시도명)$")),
    ("district", re.compile(r"^(구|자치구|시군구|구명|시군구명)$")),
    ("items", re.compile(r"^(유형|종류|품목|수거품목)$")),
    ("seq", re.compile(r"^(연번|순번|번호|no)$")),
)
CONTAINS_ROLES = (
    ("items", re.compile(r"(수거품목|휴지통종류|쓰레기통종류|취급품목|수거대상)")),
    ("place_name", re.compile(r"(설치장소명|센터명|시설명|장소명|수거함명)")),
    ("road_address", re.compile(r"도로명")),
    ("lot_address", re.compile(r"지번")),
    ("detail", re.compile(r"(상세|세부)(위치|주소|장소)")),
    ("address", re.compile(r"^(주소|소재지|설치장소|설치위치|설치주소|위치|장소)")),
    ("dong", re.compile(r"(행정동|법정동|읍면동|동명)")),
    ("manage_id", re.compile(r"(관리번호|관리코드|고유번호)")),
    ("date", re.compile(r"기준일")),
    ("manager", re.compile(r"(관리단체|관리기관|관리주체|운영기관)")),
    ("phone", re.compile(r"(전화|연락처)")),
)
TYPE_CLUES = (
    ("clothing", ("의류", "헌옷", "clothing", "clothes")),
    ("battery", ("건전지", "배터리", "battery")),
    ("lamp", ("형광등", "lamp")),
    ("medicine", ("의약품", "medicine")),
)
# Words of a free-text item column ("형광등+건전지", "폐형광등+폐LED+폐전지류",
# "일반쓰레기+재활용쓰" cut short) and the type each says a point takes.
ITEM_CLUES = (
    ("battery", ("전지", "배터리", "battery")),
    ("lamp", ("형광", "led", "램프", "조명", "lamp")),
    ("medicine", ("의약품", "약품", "medicine")),
    ("clothing", ("의류", "헌옷", "clothing")),
    ("small_appliance", ("소형가전", "소형전자", "소형 가전")),
    ("general", ("일반쓰레기", "일반", "general")),
    ("recycling", ("재활용", "플라스틱", "캔", "종이", "고철", "병류", "폐지", "recycl")),
)
CLOSED = re.compile(r"\((운영)?(중단|폐쇄|휴업)\)")  # "통영시 재활용품 상설판매장(운영중단)"

KECO_FIELDS = {"positnSn", "positnNm", "positnPstnLat", "positnPstnLot"}
KECO_HOURS = (
    ("mon", "monSalsHrExplnCn"),
    ("tue", "tuesSalsHrExplnCn"),
    ("wed", "wedSalsHrExplnCn"),
    ("thu", "thurSalsHrExplnCn"),
    ("fri", "friSalsHrExplnCn"),
    ("sat", "satSalsHrExplnCn"),
    ("sun", "sunSalsHrExplnCn"),
    ("holiday", "lhldySalsHrExplnCn"),
)
STREET_FIELDS = {"자치구", "도로명주소", "쓰레기통종류"}
STREET_TYPES = {"일반쓰레기": "general", "재활용쓰레기": "recycling"}
STREET_NOT_SERVED = {"담배꽁초"}  # cigarette-butt bins: not for sorted waste


class BinFileError(ValueError):
    """A file that cannot be imported at all (unknown layout, undecodable)."""


@dataclass
class Report:
    """What one import did: rows read = imported + every skip reason's count."""

    file: str
    dataset: str
    kind: str = ""
    encoding: str = ""
    types: list[str] = field(default_factory=list)
    rows_read: int = 0
    imported: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    bins: int = 0  # bins written: a row may hold two (일반쓰레기+재활용쓰레기)
    without_coordinates: int = 0
    removed: int = 0
    merged: int = 0  # points that are one point with another dataset's (a few metres, same type)
    version: int = VERSION
    coverage: dict[str, dict[str, int]] = field(default_factory=dict)  # "시도 시군구" -> type -> n
    geocoding: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    unchanged: bool = False

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        sample = self.examples.setdefault(reason, [])
        if len(sample) < EXAMPLES:
            sample.append(f"{where}: {detail}" if detail else where)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- small readers ------------------------------------------------------------------------


def decode(raw: bytes) -> tuple[str, str]:
    """Text and the encoding it was in: UTF-8 (BOM or not), UTF-16 with BOM, or cp949."""
    if raw.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8-sig", raw[len(codecs.BOM_UTF8) :], "utf-8")]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = [("utf-16", raw, "utf-16")]
    else:
        candidates = [("utf-8", raw, "utf-8"), ("cp949", raw, "cp949")]
    for name, data, codec in candidates:
        try:
            return data.decode(codec), name
        except UnicodeDecodeError:
            continue
    raise BinFileError(f"the file is not {' or '.join(c[0] for c in candidates)} text")


def _clean(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) per record; quoted fields may span lines."""
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for cells in reader:
        yield reader.line_num, cells


def parse_date(value: str) -> str | None:
    """An ISO date from 2024-04-12, 2024.04.12, 20240412 or an Excel day number (44911.0)."""
    text = _clean(value).rstrip(".")
    separated = re.fullmatch(r"(\d{4})([-./])\s*(\d{1,2})\2\s*(\d{1,2})", text)
    compact = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text)
    serial = re.fullmatch(r"(\d{5})(\.0+)?", text)  # Excel's days since 1899-12-30
    try:
        if separated:
            year, _sep, month, day = separated.groups()
            return date(int(year), int(month), int(day)).isoformat()
        if compact:
            return date(*(int(g) for g in compact.groups())).isoformat()
        if serial:
            return (date(1899, 12, 30) + timedelta(days=int(serial.group(1)))).isoformat()
    except ValueError:
        return None
    return None


def coordinates(lat_text: str, lng_text: str) -> tuple[float, float] | str:
    """(lat, lng) when the pair is a place in Korea, else the reason it is not."""
    lat_text, lng_text = _clean(lat_text), _clean(lng_text)
    if not lat_text or not lng_text:
        return "missing_coordinates"
    try:
        lat, lng = float(lat_text), float(lng_text)
    except ValueError:
        return "unparseable_coordinates"
    if not (math.isfinite(lat) and math.isfinite(lng)):
        return "unparseable_coordinates"
    if lat == 0 or lng == 0:
        return "zero_coordinates"
    if geo.in_korea(lat, lng):
        return lat, lng
    if geo.in_korea(lng, lat):
        return "swapped_coordinates"
    return "outside_korea"


def split_address(address: str) -> tuple[str | None, str | None]:
    """(province or metropolitan city, 시군구) named at the start of an address, if any."""
    tokens = _clean(address).split(" ")
    city = tokens.pop(0) if tokens and PROVINCE.match(tokens[0]) else None
    district = tokens[0] if tokens and re.fullmatch(r"\S+[시군구]", tokens[0]) else None
    return city, district


def full_address(address: str, city: str | None, district: str | None) -> str | None:
    """The address with the city and district in front when the source left them out."""
    text = _clean(address)
    if not text:
        return None
    own_city, own_district = split_address(text)
    if own_city:
        return text
    if district and not own_district:
        text = f"{district} {text}"
    return f"{city} {text}" if city else text


def _unique(seen: Counter, base: str) -> str:
    """A source id for `base`, counting true repeats so each keeps its own id."""
    seen[base] += 1
    return base if seen[base] == 1 else f"{base}#{seen[base]}"


@cache
def _manifest() -> dict[str, dict[str, Any]]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def dataset_key(path: Path) -> str:
    """Names a dataset by its folder and file, wherever the file is read from."""
    return f"{path.parent.name}/{path.name}"


def _known(key: str) -> dict[str, Any]:
    """What the manifest says of a public file (title, publisher, date, attribution)."""
    for pattern, entry in _manifest().items():
        if not pattern.startswith("_") and fnmatch(key, pattern):
            return entry
    return {}


# ---- the kinds ----------------------------------------------------------------------------


def _roles(header: list[str]) -> dict[str, int]:
    """Which column holds what, by meaning; the first column of a meaning wins."""
    roles: dict[str, int] = {}
    for index, name in enumerate(header):
        full = re.sub(r"\s+", "", name).lower().lstrip("\ufeff")
        base = re.sub(r"\(.*?\)", "", full)
        role = next((r for r, p in EXACT_ROLES if p.match(base)), None) or next(
            (r for r, p in CONTAINS_ROLES if p.search(full)), None
        )
        if role and role not in roles:
            roles[role] = index
    return roles


def _json_table(data: Any) -> list[dict[str, Any]] | None:
    """The list of records a JSON file holds, at the top or under one key."""
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        return data
    return None


def detect(text: str) -> tuple[str, Any]:
    """The file's kind (register, keco, street) and its parsed JSON records, if JSON."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            records = _json_table(json.loads(stripped))
        except json.JSONDecodeError as exc:
            raise BinFileError(f"looks like JSON but is not: {exc}") from None
        if records is None:
            raise BinFileError("a JSON file without a list of records")
        keys = set(records[0])
        if keys >= STREET_FIELDS:
            return "street", records
        if {"lat", "lng"} <= set(_roles(list(keys))):
            return "register", records
        raise BinFileError(f"JSON records with no known layout: fields {sorted(keys)}")
    for _line, cells in _head(text):
        if {c.strip().lstrip("\ufeff") for c in cells} >= KECO_FIELDS:
            return "keco", None
        if {"lat", "lng"} <= set(_roles(cells)):
            return "register", None
    first = next(_csv_rows(text), (0, []))[1]
    unplaced = _coordinate_like(text)
    if unplaced:
        name, sample = unplaced
        raise BinFileError(
            f"cannot place column {name!r} (values like {sample!r}): it looks like coordinates "
            "but is neither a latitude nor a longitude column; give them a column each"
        )
    raise BinFileError(
        f"cannot tell what this file holds: no latitude/longitude columns among {first}"
    )


POINT_TEXT = re.compile(r"-?\d{1,3}\.\d+\s*[,; ]\s*-?\d{1,3}\.\d+")
POINT_HEADER = re.compile(r"(좌표|coord|gps|point|geom)", re.IGNORECASE)


def _coordinate_like(text: str) -> tuple[str, str] | None:
    """The first column that holds coordinates in a form no role takes ("37.56, 126.97" in
    one cell, or a header saying 좌표/coordinates), with a sample value."""
    rows = [cells for _line, cells in _head(text, 6)]
    if not rows:
        return None
    header, body = rows[0], rows[1:]
    for index, name in enumerate(header):
        values = [r[index] for r in body if index < len(r) and r[index].strip()]
        if any(POINT_TEXT.fullmatch(v.strip()) for v in values) or POINT_HEADER.search(name):
            return name.strip().lstrip("\ufeff"), values[0] if values else ""
    return None


def _head(text: str, rows: int = 10) -> Iterator[tuple[int, list[str]]]:
    for count, item in enumerate(_csv_rows(text)):
        if count >= rows:
            return
        yield item


@cache  # a file repeats a handful of item texts over thousands of rows
def _item_types(text: str) -> tuple[str, ...]:
    lowered = text.lower()
    found = []
    for kind, clues in ITEM_CLUES:
        at = min((i for c in clues if (i := lowered.find(c)) >= 0), default=-1)
        if at >= 0:
            found.append((at, kind))
    return tuple(kind for _at, kind in sorted(found))


def item_types(text: str) -> list[str]:
    """The types a free-text item cell names, in the order it names them."""
    return list(_item_types(text))


def register_type(path: Path, header: list[str], text: str, has_items: bool) -> str | None:
    """What kind of bins a register lists: the manifest's word, else its name, header and
    content. A file with an item column may list several kinds: it needs no single one."""
    stated = _known(dataset_key(path)).get("type")
    if stated:
        return stated
    places = (dataset_key(path).lower(),)
    if not has_items:
        places += (" ".join(header).lower(), text.lower())
    for haystack in places:
        found = {t for t, clues in TYPE_CLUES if any(c in haystack for c in clues)}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            break
    if has_items:
        return None
    raise BinFileError("cannot tell which bins this register lists: say --type")


def _register_rows(text: str, records: list[dict[str, Any]] | None):
    """(header, [(where, cells)], lines before the header) of a register, CSV or JSON. Cells
    come with their whitespace collapsed, once, as every reader of them wants."""
    if records is not None:
        header = list(records[0])
        rows = [(f"item {n}", [_clean(r.get(h)) for h in header]) for n, r in enumerate(records, 1)]
        return header, rows, 0
    rows_iter = _csv_rows(text)
    for before, (_line, cells) in enumerate(rows_iter):
        if {"lat", "lng"} <= set(_roles(cells)):
            header = [c.strip().lstrip("\ufeff") for c in cells]
            rows = [(f"line {line}", [_clean(c) for c in row]) for line, row in rows_iter]
            return header, rows, before
    raise BinFileError("no header row with latitude and longitude columns")


def parse_register(
    path: Path,
    text: str,
    records: list[dict[str, Any]] | None,
    report: Report,
    bin_type: str | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Bins from a register: place its columns by meaning, find where the file is, then read
    its rows into bins."""
    header, rows, before = _register_rows(text, records)
    if before:
        report.notes.append(f"{before} line(s) before the header row ignored")
    roles = _place_columns(header, rows, report)
    bin_type = bin_type or register_type(path, header, text, "items" in roles)
    place = _file_place(path, rows, roles)
    out = _read_register(header, rows, roles, bin_type, place, report)
    report.types = sorted({t for b in out for t in b["accepts"]}, key=bins.TYPES.index)
    if bin_type and bin_type not in report.types:
        report.types.insert(0, bin_type)
    return out, _register_meta(path, place, [bin_type] if bin_type else report.types, out)


def _cell(row: list[str], roles: dict[str, int], role: str) -> str:
    index = roles.get(role)
    return row[index] if index is not None and index < len(row) else ""


def _row_address(row: list[str], roles: dict[str, int]) -> str:
    return (
        _cell(row, roles, "road_address")
        or _cell(row, roles, "address")
        or _cell(row, roles, "lot_address")
    )


def _place_columns(header: list[str], rows: list, report: Report) -> dict[str, int]:
    """Which column holds what, by meaning, with latitude and longitude as the values say."""
    roles = _roles(header)
    report.notes.append(
        "columns: " + ", ".join(f"{role}={header[i]}" for role, i in sorted(roles.items()))
    )
    # The header may say 위도 over a column of longitudes: trust the values when most rows
    # agree, and say so.
    straight = swapped = 0
    for _where, row in rows:
        found = coordinates(_cell(row, roles, "lat"), _cell(row, roles, "lng"))
        straight += isinstance(found, tuple)
        swapped += found == "swapped_coordinates"
    if swapped > straight:
        roles["lat"], roles["lng"] = roles["lng"], roles["lat"]
        report.notes.append(
            f"columns {header[roles['lng']]}/{header[roles['lat']]} hold longitude/latitude "
            "in most rows: read the other way round"
        )
    return roles


def _file_place(path: Path, rows: list, roles: dict[str, int]) -> tuple[str | None, str | None]:
    """(city, district) of the whole file: its addresses, its own district column, or its
    Seoul file name; rows that name neither take it."""
    places = Counter(split_address(_row_address(row, roles)) for _where, row in rows)
    places.pop((None, None), None)
    (city, district), _n = places.most_common(1)[0] if places else ((None, None), 0)
    column = Counter(
        _cell(r, roles, "district") for _w, r in rows if _cell(r, roles, "district")
    ).most_common(1)
    district = district or (column[0][0] if column else None)
    if not district:
        district = next(
            (ko for en, ko in SEOUL_DISTRICTS.items() if re.search(rf"(^|_){en}(_|$)", path.stem)),
            None,
        )
    if not city and district in SEOUL_DISTRICTS.values():
        city = SEOUL
    return city, district


def _read_register(
    header: list[str],
    rows: list,
    roles: dict[str, int],
    bin_type: str | None,
    place: tuple[str | None, str | None],
    report: Report,
) -> list[dict[str, Any]]:
    """One bin per row with a place in Korea that takes a known kind of waste; every other row
    is counted under its reason."""
    out: list[dict[str, Any]] = []
    seen: Counter = Counter()
    for where, row in rows:
        report.rows_read += 1
        if not any(row):
            report.skip("blank_row", where)
            continue
        lat, lng = _cell(row, roles, "lat"), _cell(row, roles, "lng")
        found = coordinates(lat, lng)
        if isinstance(found, str):
            report.skip(found, where, f"{lat!r}, {lng!r}")
            continue
        if CLOSED.search(_cell(row, roles, "place_name")):
            report.skip("closed", where, _cell(row, roles, "place_name"))
            continue
        items = _cell(row, roles, "items")
        accepts = list(dict.fromkeys(([bin_type] if bin_type else []) + item_types(items)))
        if not accepts:
            report.skip("unknown_bin_kind", where, repr(items))
            continue
        out.append(_register_bin(header, row, roles, accepts, place, found, seen))
        report.imported += 1
    return out


def _register_bin(
    header: list[str],
    row: list[str],
    roles: dict[str, int],
    accepts: list[str],
    place: tuple[str | None, str | None],
    found: tuple[float, float],
    seen: Counter,
) -> dict[str, Any]:
    """The bin a row describes, keeping every cell the source gave under `properties`. Its
    type is the file's, else the first its item cell names; `accepts` is all of them."""
    file_city, file_district = place
    raw_address = _row_address(row, roles)
    detail = _cell(row, roles, "detail")
    own_city, own_district = split_address(raw_address)
    city = districts.province_name(_cell(row, roles, "city") or own_city or file_city)
    district = _cell(row, roles, "district") or own_district or file_district
    place_name = _cell(row, roles, "place_name")
    base = _cell(
        row, roles, "manage_id"
    ) or f"{raw_address}|{detail}|{_cell(row, roles, 'dong')}" + (
        f"|{place_name}" if place_name else ""
    )
    label = bins.LABELS[accepts[0]]
    items = _cell(row, roles, "items")
    return {
        "source_id": _unique(seen, base),
        "type": accepts[0],
        "accepts": accepts,
        "name": place_name or (f"{label} ({detail})" if detail else label),
        "address": full_address(raw_address, city, district),
        "city": city,
        "district": district,
        "location_detail": detail or None,
        "lat": found[0],
        "lng": found[1],
        "accepted_items": [p.strip() for p in re.split(r"[+·,/]", items) if p.strip()],
        "phone": _cell(row, roles, "phone") or None,
        "source_date": parse_date(_cell(row, roles, "date")),
        "properties": {h: v for h, v in zip(header, row, strict=False) if h.strip()},
    }


def _register_meta(
    path: Path, place: tuple[str | None, str | None], types: list[str], out: list[dict[str, Any]]
) -> dict[str, Any]:
    """Title, publisher and date of a register the manifest does not know."""
    named = " ".join(p for p in place if p)
    dates = [b["source_date"] for b in out if b["source_date"]]
    return {
        "title": f"{named}_{'·'.join(bins.LABELS[t] for t in types)} 현황" if named else path.stem,
        "publisher": named or None,
        "date": max(dates) if dates else None,
    }


def parse_keco(
    path: Path, text: str, report: Report, bin_type: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    bin_type = bin_type or "recycle_center"
    report.types = [bin_type]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    reader.fieldnames = [name.strip().lstrip("\ufeff") for name in reader.fieldnames or []]
    out: list[dict[str, Any]] = []
    seen: Counter = Counter()
    for record in reader:
        where = f"line {reader.line_num}"
        report.rows_read += 1
        record = {k: (v or "") for k, v in record.items() if k}
        serial = _clean(record.get("positnSn"))
        if not serial:
            report.skip("missing_id", where)
            continue
        found = coordinates(record.get("positnPstnLat", ""), record.get("positnPstnLot", ""))
        if isinstance(found, str):
            detail = f"{serial} {_clean(record.get('positnNm'))}: {record.get('positnPstnLat')!r}, "
            report.skip(found, where, detail + repr(record.get("positnPstnLot")))
            continue
        road = _clean(record.get("positnRdnmAddr"))
        lot = _clean(record.get("positnLotnoAddr"))
        road = "" if road == "없음" else road
        lot_city, _lot_district = split_address(lot)
        address = full_address(road, lot_city, None) if road else (lot or None)
        city, district = split_address(address or "")
        hours = {day: _clean(record.get(column)) or None for day, column in KECO_HOURS}
        items = [line.strip() for line in record.get("clctItemCn", "").splitlines() if line.strip()]
        name = _clean(record.get("positnNm")) or bins.LABELS[bin_type]
        phone = _clean(record.get("rprsTelnoCn")) or _clean(record.get("bscTelnoCn"))
        out.append(
            {
                "source_id": _unique(seen, serial),
                "type": bin_type,
                "name": name,
                "address": address,
                "city": districts.province_name(city),
                "district": district or _clean(record.get("positnRgnNm")) or None,
                "location_detail": _clean(record.get("positnPstnAddExpln")) or None,
                "lat": found[0],
                "lng": found[1],
                "opening_hours": hours if any(hours.values()) else None,
                "accepted_items": items,
                "phone": phone or None,
                "properties": record,
            }
        )
        report.imported += 1
    if any(n > 1 for n in seen.values()):
        report.notes.append("some positnSn values repeat: repeats numbered #2, #3, ...")
    return out, {"title": path.stem, "publisher": None, "date": None}


def parse_street(
    path: Path, items: list[dict[str, Any]], report: Report, bin_type: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: Counter = Counter()
    covered: set[str] = set()
    for number, item in enumerate(items, 1):
        where = f"item {number}"
        report.rows_read += 1
        kind = _clean(item.get("쓰레기통종류"))
        parts = [p.strip() for p in kind.split("+") if p.strip()]
        types = [STREET_TYPES[p] for p in parts if p in STREET_TYPES]
        if not types:
            served = parts and all(p in STREET_NOT_SERVED for p in parts)
            report.skip("cigarette_bin" if served else "unknown_bin_kind", where, repr(kind))
            continue
        if bin_type:
            if bin_type not in types:
                report.skip("other_type", where, repr(kind))
                continue
            types = [bin_type]
        raw_address = _clean(item.get("도로명주소"))
        if not raw_address:
            report.skip("missing_address", where)
            continue
        district = _clean(item.get("자치구")) or None
        city = SEOUL if district in SEOUL_DISTRICTS.values() else None
        detail = _clean(item.get("세부위치"))
        detail = "" if detail in ("-", "") else detail
        place_kind = _clean(item.get("설치장소유형"))
        for bin_kind in types:
            covered.add(bin_kind)
            base = f"{district}|{raw_address}|{detail}|{place_kind}|{bin_kind}"
            label = bins.LABELS[bin_kind]
            out.append(
                {
                    "source_id": _unique(seen, base),
                    "type": bin_kind,
                    "name": f"{label} ({detail})" if detail else label,
                    "address": full_address(raw_address, city, district),
                    "city": city,
                    "district": district,
                    "location_detail": detail or place_kind or None,
                    "lat": None,
                    "lng": None,
                    "properties": item,
                }
            )
        report.imported += 1
    report.types = sorted(covered) if not bin_type else [bin_type]
    if len(out) > report.imported:
        report.notes.append(f"{len(out) - report.imported} row(s) hold two bins (one per kind)")
    _geocode(out, report)
    return out, {"title": path.stem, "publisher": None, "date": None}


def _geocode(records: list[dict[str, Any]], report: Report) -> None:
    """Coordinates for address-only bins: known ones from the table, new ones from Kakao."""
    addresses = {r["address"] for r in records if r["address"]}
    result = kakao_local.geocode(addresses)
    found = result["coordinates"]
    for record in records:
        point = found.get(record["address"])
        if point:
            record["lat"], record["lng"] = point
    report.geocoding = {
        "addresses": len(addresses),
        "located": len(found),
        "not_found": len(result["not_found"]),
        "pending": len(result["pending"]),
        "kakao_calls": result["calls"],
        "error": result["error"],
    }
    if not kakao_local.configured() and result["pending"]:
        report.notes.append(
            f"{len(result['pending'])} address(es) not geocoded: set KAKAO_REST_API_KEY to place "
            "them on the map; until then they show in bin detail, not in nearby"
        )


# ---- importing ----------------------------------------------------------------------------


def import_file(
    path: str | Path,
    bin_type: str | None = None,
    only_if_changed: bool = False,
    merge: bool = True,
):
    """Import one file; with `only_if_changed`, a file imported before as it is now is left
    alone (a street file is retried once a Kakao key appears). `merge` runs the pass that
    makes two sources' copies of one point one point (import_public runs it once at the end)."""
    path = Path(path)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    report = Report(file=str(path), dataset=dataset_key(path))
    if only_if_changed:
        state = bins.dataset_state(report.dataset)
        if (
            state
            and state["sha256"] == digest
            and state["report"].get("version") == VERSION
            and (state["kind"] != "street" or state["geocoder"] or not kakao_local.configured())
        ):
            names = {f.name for f in fields(Report)}  # a report stored by an older version
            kept = {k: v for k, v in state["report"].items() if k in names}
            return Report(**{**kept, "unchanged": True})
    if bin_type is not None and bin_type not in bins.TYPES:
        raise BinFileError(f"unknown type {bin_type!r}; one of {', '.join(bins.TYPES)}")
    text, report.encoding = decode(raw)
    report.kind, records = detect(text)
    if report.kind == "street":
        out, meta = parse_street(path, records, report, bin_type)
    elif report.kind == "keco":
        out, meta = parse_keco(path, text, report, bin_type)
    else:
        out, meta = parse_register(path, text, records, report, bin_type)
    report.bins = len(out)
    report.without_coordinates = sum(r["lat"] is None for r in out)
    report.coverage = _coverage(out)
    known = _known(report.dataset)
    dataset = {
        "key": report.dataset,
        "kind": report.kind,
        "title": known.get("title") or meta["title"],
        "publisher": known.get("publisher") or meta["publisher"],
        "date": known.get("date") or meta["date"],
        "attribution": known.get("attribution"),
        "sha256": digest,
        "geocoder": "kakao" if report.kind == "street" and kakao_local.configured() else None,
        "report": report.as_dict(),
    }
    report.removed = bins.save_dataset(dataset, out, report.types)
    if merge:
        bins.merge_duplicates()
        _record_merged(report)
    log_event(
        "info",
        "bins_imported",
        dataset=report.dataset,
        rows_read=report.rows_read,
        imported=report.imported,
        skipped=report.skipped,
        removed=report.removed,
        merged=report.merged,
    )
    return report


def _coverage(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Points with coordinates per "시도 시군구" and each type they accept, as the file places
    them."""
    table: dict[str, Counter] = {}
    for record in records:
        if record["lat"] is None:
            continue
        place = " ".join(p for p in (record.get("city"), record.get("district")) if p)
        table.setdefault(place or "(unknown)", Counter()).update(
            record.get("accepts") or [record["type"]]
        )
    return {place: dict(counts) for place, counts in sorted(table.items())}


def _record_merged(report: Report) -> None:
    report.merged = bins.merged_count(report.dataset)
    bins.store_report(report.dataset, report.as_dict())


def summary(report: Report) -> str:
    """The report as a few lines for a terminal."""
    if report.unchanged:
        return f"{report.dataset}: unchanged since the last import"
    skipped = sum(report.skipped.values())
    lines = [
        f"{report.dataset}: {report.kind} ({report.encoding}), {'/'.join(report.types)}: "
        f"read {report.rows_read}, imported {report.imported}, merged {report.merged}, "
        f"skipped {skipped}; {report.bins} bins, {report.without_coordinates} without "
        f"coordinates, {report.removed} removed"
    ]
    for reason, n in sorted(report.skipped.items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped {n} x {reason}, e.g. " + "; ".join(report.examples[reason]))
    if report.geocoding:
        lines.append("  geocoding: " + ", ".join(f"{k} {v}" for k, v in report.geocoding.items()))
    lines.extend(f"  note: {note}" for note in report.notes)
    for place, counts in report.coverage.items():
        lines.append(f"  coverage {place}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return "\n".join(lines)


def public_files() -> list[Path]:
    """The datasets folder's bin files that the manifest names."""
    folder = datasets.root() / FOLDER
    patterns = [p for p in _manifest() if not p.startswith("_")]
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and any(fnmatch(dataset_key(path), p) for p in patterns)
    )


def import_public(only_if_changed: bool = True) -> list[Report]:
    """Every bin file the manifest names; unchanged files are skipped by default. The merge
    pass runs once, after the last file, when any changed."""
    reports = [
        import_file(path, only_if_changed=only_if_changed, merge=False) for path in public_files()
    ]
    if any(not r.unchanged for r in reports):
        bins.merge_duplicates()
        for report in reports:
            if not report.unchanged:
                _record_merged(report)
    return reports

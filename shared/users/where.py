"""The answer where you stand: what a completed result means in the user's district.

A result says how an item goes out in general; this adds, for one district, when its kind is
collected (days, hours, place, and the next date), the nearest drop-off point that takes it
(battery -> a battery box, medicine -> a medicine box, clothing -> a clothing bin), the bag to
use and its prices, and the bulky-waste fees for it. The district is where the app says the
user stands (the district of the nearest point with a known district, within DISTRICT_REACH_M
of `lat`/`lng`), else the profile's. Every fact the data does not hold for that district is
null: a guess about someone's own street is worse than saying nothing.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.core import db
from shared.core.errors import ApiError
from shared.locations import bins
from shared.locations.districts import District
from shared.users import schedules
from shared.waste import fees

DISTRICT_REACH_M = 1000.0  # a point this close names the district the user stands in
DROP_OFF_REACH_M = 3000.0  # the nearest drop-off point is looked for this far
# Words of a category (the dictionary's "재활용폐기물 > 전지류", the vision taxonomy's
# "의류및원단") and what they mean here: the collection (schedule column) it goes out with, the
# drop-off point that takes it. Checked in order against the middle, then the major category.
COLLECTION = (("음식물", "food"), ("일반종량제", "household"), ("재활용", "recyclables"))
DROP_OFF = (
    ("전지", "battery"),
    ("조명", "lamp"),
    ("형광등", "lamp"),
    ("의약품", "medicine"),
    ("의류", "clothing"),
    ("전기전자", "small_appliance"),
)
BAG_USE = {"household": "생활쓰레기", "food": "음식물쓰레기"}
KST = ZoneInfo("Asia/Seoul")
WEEKDAYS = "월화수목금토일"  # as the schedule table writes them, Monday first


def _meaning(table: tuple[tuple[str, str], ...], *names: str | None) -> str | None:
    for name in names:
        for word, meaning in table:
            if name and word in name.replace(" ", ""):
                return meaning
    return None


def _district_at(lat: float, lng: float) -> District | None:
    for point in bins.nearest(lat, lng, DISTRICT_REACH_M, None, 5):
        detail = bins.get(point["id"]) or {}
        if detail.get("city") and detail.get("district"):
            try:
                return schedules.resolve(f"{detail['city']} {detail['district']}")
            except ApiError:
                continue
    return None


def district_for(profile_district: str | None, lat: float | None, lng: float | None):
    """Where the user stands, else the profile's district; None when neither is known."""
    if lat is not None and lng is not None:
        found = _district_at(lat, lng)
        if found:
            return found
    if profile_district:
        try:
            return schedules.resolve(profile_district)
        except ApiError:
            return None
    return None


def _collection(district: District, kind: str | None) -> dict[str, Any] | None:
    """Days, hours and place of the kind's collection, when every area of the district agrees
    (several areas that differ: which one is the user's is unknown, so none is said)."""
    if kind is None:
        return None
    answers = {
        (
            tuple(area[kind]["days"]),
            f"{area[kind]['from']}-{area[kind]['until']}" if area[kind]["from"] else None,
            area.get("place"),
        )
        for area in schedules.for_district(district)
        if area.get(kind) and area[kind]["days"]
    }
    if len(answers) != 1:
        return None
    days, hours, place = answers.pop()
    now = db.now().astimezone(KST)
    upcoming = next_collection(days, hours, now)
    return {
        "days": list(days),
        "hours": hours,
        "place": place,
        "next": upcoming.isoformat() if upcoming else None,
    }


def next_collection(days: tuple[str, ...], hours: str | None, now: datetime) -> date | None:
    """The next date (Korea time) the kind goes out: today while its window is still open,
    else the next of its weekdays; None when the days are not weekdays ("기타")."""
    weekdays = {WEEKDAYS.index(d) for d in days if d and d in WEEKDAYS}
    if not weekdays:
        return None
    closes = _closing(hours)
    for ahead in range(8):
        day = now.date() + timedelta(days=ahead)
        if day.weekday() not in weekdays:
            continue
        if ahead == 0 and closes is not None and now.time() >= closes:
            continue  # today's window has passed
        return day
    return None


def _closing(hours: str | None) -> time | None:
    """When a same-day window ("06:00-09:00") closes; None when it runs past midnight or is
    not stated (then today still counts)."""
    if not hours or "-" not in hours:
        return None
    start, _, end = hours.partition("-")
    try:
        opens, closes = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        return None
    return closes if closes > opens else None


def _drop_off(point_type: str | None, lat: float | None, lng: float | None):
    if point_type is None or lat is None or lng is None:
        return None
    found = bins.nearby(lat, lng, DROP_OFF_REACH_M, point_type, 1)
    return found[0] if found else None


def _bag(district: District, kind: str | None) -> tuple[dict[str, Any] | None, str | None]:
    use = BAG_USE.get(kind or "")
    if use is None:
        return None, None
    answer = fees.bags_for(district)
    household = [b for b in answer["bags"] if b["use"] == use and "가정" in (b["target"] or "")]
    standard = [b for b in household if b["kind"] == "규격봉투"] or household
    if not standard:
        return None, answer["data_date"]
    return {"kind": standard[0]["kind"], "prices": standard[0]["prices"]}, answer["data_date"]


def _fees(district: District, major: str | None, item: str) -> tuple[list | None, str | None]:
    if "대형폐기물" not in (major or ""):
        return None, None
    answer = fees.fees_for(district, item)
    rows = [{k: r[k] for k in ("name", "size", "fee_krw")} for r in answer["items"]]
    return (rows or None), answer["data_date"]


def answer(district: District, result: dict[str, Any], lat: float | None, lng: float | None):
    """The `where` of a completed result in `district`."""
    category = result.get("category") or {}
    major, middle = category.get("major"), category.get("middle")
    item = (result.get("item") or {}).get("name") or ""
    kind = _meaning(COLLECTION, middle, major)
    point_type = _meaning(DROP_OFF, middle, item)
    bag, bag_date = _bag(district, kind)
    fee_rows, fee_date = _fees(district, major, item)
    drop_off = _drop_off(point_type, lat, lng)
    return {
        "district": district.name,
        "district_code": district.code,
        # A battery, lamp, medicine or clothing item goes to its point, not out with the
        # district's collection of its major category.
        "collection": None if point_type else _collection(district, kind),
        "drop_off": drop_off,
        "bag": bag,
        "fees": fee_rows,
        "data_dates": {
            "schedule": schedules.source(),
            "bags": bag_date,
            "fees": fee_date,
        },
    }

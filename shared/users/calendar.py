"""A district's collection schedule as an iCalendar (RFC 5545) a phone calendar subscribes to.

One weekly event series per management area and waste kind (household, food, recyclables):
RRULE FREQ=WEEKLY on the table's weekdays, from the start to the end of the put-out hours in
Asia/Seoul (an end before the start is the next morning). Non-collection weekdays (미수거일
"토+일") are taken out of the rule; the table names holidays only as words ("명절", "공휴일"),
never as dates, so those stay in the description rather than becoming invented EXDATEs. A
series starts on the first of its weekdays on or after the data's date, so the same data
writes the same calendar.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from shared.locations.districts import District
from shared.users import schedules

if TYPE_CHECKING:
    from icalendar import Event

SEOUL = ZoneInfo("Asia/Seoul")
WEEKDAYS = {"월": "MO", "화": "TU", "수": "WE", "목": "TH", "금": "FR", "토": "SA", "일": "SU"}
ORDER = list(WEEKDAYS.values())
FALLBACK_START = date(2025, 1, 1)  # for areas whose data states no date


def _time(text: str | None) -> time | None:
    """ "19:00", "1900", "24:00" (the end of the day) as a time, else None."""
    digits = (text or "").replace(":", "").strip()
    if len(digits) != 4 or not digits.isdigit():
        return None
    hour, minute = int(digits[:2]), int(digits[2:])
    if (hour, minute) == (24, 0):
        return time(23, 59)
    return time(hour, minute) if hour < 24 and minute < 60 else None


def _skipped_weekdays(no_collection: list[str]) -> set[str]:
    """Weekdays the data says are no collection days: "토", "일요일"."""
    return {
        WEEKDAYS[word[0]] for word in no_collection if word[:1] in WEEKDAYS and len(word) in (1, 3)
    }


def _first_on_or_after(start: date, days: list[str]) -> date:
    for offset in range(7):
        candidate = start + timedelta(days=offset)
        if ORDER[candidate.weekday()] in days:
            return candidate
    return start


def _event(
    district: District, number: int, area: dict[str, Any], kind: str, several: bool
) -> Event | None:
    """The weekly series of one waste kind in one area, or None when the data gives no days.
    The area is named in the title only when the district has several."""
    plan = area.get(kind) or {}
    skipped = _skipped_weekdays(area.get("no_collection") or [])
    days = [WEEKDAYS[d] for d in plan.get("days") or [] if d in WEEKDAYS]
    days = sorted({d for d in days if d not in skipped}, key=ORDER.index)
    if not days:
        return None
    try:
        anchor = date.fromisoformat(area.get("data_date") or "")
    except ValueError:
        anchor = FALLBACK_START
    from icalendar import Event  # on first use: a cold start of users functions skips it

    first = _first_on_or_after(anchor, days)
    begin, end = _time(plan.get("from")), _time(plan.get("until"))
    event = Event()
    label = schedules.WASTE_KINDS[kind]
    where = area.get("area")
    event.add("summary", f"{label} 배출" + (f" ({where})" if where and several else ""))
    if begin:
        start = datetime.combine(first, begin, SEOUL)
        finish = datetime.combine(first, end or time(23, 59), SEOUL)
        if finish <= start:
            finish += timedelta(days=1)  # 19:00-07:00: out in the evening, collected by morning
        event.add("dtstart", start)
        event.add("dtend", finish)
    else:
        event.add("dtstart", first)  # no hours in the data: the whole day
        event.add("dtend", first + timedelta(days=1))
    event.add("rrule", {"freq": "weekly", "byday": days})
    notes = [
        plan.get("how"),
        f"대상 지역: {where}" if where else None,
        f"배출장소: {area['place']}" if area.get("place") else None,
        f"미수거일: {'+'.join(area['no_collection'])}" if area.get("no_collection") else None,
        f"문의: {area.get('department') or ''} {area.get('phone') or ''}".strip()
        if area.get("phone")
        else None,
        f"{schedules.source()}",
    ]
    event.add("description", "\n".join(n for n in notes if n))
    if area.get("place"):
        event.add("location", area["place"])
    seed = f"{district.code or district.name}|{number}|{kind}"
    event.add("uid", hashlib.sha1(seed.encode()).hexdigest()[:20] + "@growbin")
    event.add("dtstamp", datetime.combine(anchor, time(0, 0), SEOUL).astimezone(UTC))
    return event


def for_district(district: District) -> bytes:
    """The district's calendar as RFC 5545 text, with the VTIMEZONE its times refer to."""
    from icalendar import Calendar

    calendar = Calendar()
    calendar.add("prodid", "-//growbin//waste schedule//KO")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{district.name} 쓰레기 배출")
    calendar.add("x-wr-timezone", "Asia/Seoul")
    areas = schedules.for_district(district)
    for number, area in enumerate(areas, 1):
        for kind in schedules.WASTE_KINDS:
            event = _event(district, number, area, kind, len(areas) > 1)
            if event is not None:
                calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()

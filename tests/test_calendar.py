"""The schedule as a calendar: RFC 5545 written with icalendar and read back with it, weekly
rules per area and kind with the district's hours in Asia/Seoul."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from conftest import error_code, login
from dateutil.rrule import rrulestr
from icalendar import Calendar

ICS = "/api/v1/users/schedule.ics"
SEOUL = ZoneInfo("Asia/Seoul")


def _calendar(client, headers, **query) -> Calendar:
    response = client.get(ICS, headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/calendar")
    return Calendar.from_ical(response.get_data())


def test_a_district_calendar_has_a_weekly_series_per_kind(client):
    headers = login(client)
    schedule = client.get(
        "/api/v1/users/schedule", headers=headers, query_string={"district": "강남구"}
    ).get_json()
    [area] = schedule["areas"]
    calendar = _calendar(client, headers, district="서울 강남구")
    assert str(calendar["x-wr-calname"]) == "서울특별시 강남구 쓰레기 배출"
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["Asia/Seoul"]
    events = {str(e["summary"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {"생활쓰레기 배출", "음식물쓰레기 배출", "재활용품 배출"}

    household = events["생활쓰레기 배출"]
    start, end = household.decoded("dtstart"), household.decoded("dtend")
    # 강남구: 일~금 20:00 until 05:00 the next morning.
    assert (start.tzinfo.key, start.time(), end.time()) == ("Asia/Seoul", time(20), time(5))
    assert (end - start).total_seconds() == 9 * 3600
    rule = household["rrule"]
    assert rule["freq"] == ["WEEKLY"]
    assert rule["byday"] == ["MO", "TU", "WE", "TH", "FR", "SU"]
    korean = dict(zip("월화수목금토일", range(7), strict=True))
    assert {korean[d] for d in area["household"]["days"]} == {0, 1, 2, 3, 4, 6}
    # The series as a calendar app expands it: never a Saturday, always at 20:00 Seoul.
    expanded = rrulestr(household["rrule"].to_ical().decode(), dtstart=start)
    upcoming = expanded.between(
        datetime(2027, 1, 1, tzinfo=SEOUL), datetime(2027, 1, 15, tzinfo=SEOUL)
    )
    assert len(upcoming) == 12 and all(d.weekday() != 5 and d.hour == 20 for d in upcoming)
    assert "명절" in str(household["description"])  # holidays as words, not invented dates
    assert len({str(e["uid"]) for e in events.values()}) == 3


def test_non_collection_weekdays_leave_the_rule_and_the_profile_is_the_default(client):
    headers = login(client)
    assert error_code(client.get(ICS, headers=headers)) == "VALIDATION_FAILED"
    assert client.get(ICS, headers=headers, query_string={"district": "중구"}).status_code == 422
    client.put("/api/v1/users/profile", headers=headers, json={"district": "종로구"})
    calendar = _calendar(client, headers)
    assert str(calendar["x-wr-calname"]).startswith("서울특별시 종로구")
    schedule = client.get("/api/v1/users/schedule", headers=headers).get_json()
    skipped = {d[0] for d in schedule["areas"][0]["no_collection"] if len(d) in (1, 3)}
    assert "토" in skipped
    for event in calendar.walk("VEVENT"):
        assert "SA" not in event["rrule"]["byday"]
    # Written identically for the same data: a subscribed calendar does not churn.
    again = client.get(ICS, headers=headers).get_data()
    assert again == client.get(ICS, headers=headers).get_data()


def test_a_weekday_without_collection_is_not_in_the_rule_and_hours_may_be_missing(env):
    from shared.locations.districts import District
    from shared.users import calendar

    area = {
        "area": None,
        "place": "집 앞",
        "household": {"how": "규격봉투", "days": ["월", "토"], "from": "2400", "until": None},
        "food": {"how": None, "days": ["토"], "from": None, "until": None},
        "no_collection": ["토요일", "명절"],
        "data_date": "2026-06-03",  # a Wednesday
        "phone": None,
    }
    district = District("서울특별시", "종로구", "3000000")
    household = calendar._event(district, 1, area, "household", several=False)
    assert household["rrule"]["byday"] == ["MO"]
    start = household.decoded("dtstart")
    assert (start.date().isoformat(), start.time()) == ("2026-06-08", time(23, 59))  # "2400"
    assert calendar._event(district, 1, area, "food", several=False) is None  # only 토, skipped
    area["no_collection"] = []
    food = calendar._event(district, 1, area, "food", several=False)
    assert food.decoded("dtstart").isoformat() == "2026-06-06"  # no hours: the whole Saturday

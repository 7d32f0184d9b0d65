"""Local cron fires the declared PingSource schedules, in Seoul time, as PingSource events."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from eventing.cron import Cron, due, parse
from shared.core.registry import PING_TYPE, Function

SEOUL = ZoneInfo("Asia/Seoul")


def test_parse_and_due():
    assert parse("*/15 3 * * 1-5")[0] == {0, 15, 30, 45}
    monday_3am = datetime(2026, 11, 23, 3, 15, tzinfo=SEOUL)
    assert due("*/15 3 * * 1-5", monday_3am)
    assert not due("*/15 3 * * 1-5", monday_3am.replace(day=22))  # Sunday
    assert due("0 0 * * 7", datetime(2026, 11, 22, 0, 0, tzinfo=SEOUL))  # 7 is Sunday too
    for bad in ("* * *", "61 * * * *", "5-1 * * * *"):
        with pytest.raises(ValueError):
            parse(bad)


def test_cron_publishes_pings_with_the_task_attribute():
    published = []
    daily = Function(
        name="analytics_daily",
        module="functions.batch",
        kind="event",
        summary="",
        handler=lambda e: None,
        filter={"type": PING_TYPE, "task": "analytics.daily"},
        schedule="10 0 * * *",
    )
    cron = Cron([daily], lambda e: published.append(e) or 1)
    assert cron.fire_due(datetime(2026, 11, 26, 0, 10, tzinfo=SEOUL)) == ["analytics_daily"]
    assert cron.fire_due(datetime(2026, 11, 26, 0, 11, tzinfo=SEOUL)) == []
    [ping] = published
    assert ping["type"] == PING_TYPE and ping["task"] == "analytics.daily"
    assert ping["source"] == "/apis/v1/namespaces/growbin/pingsources/analytics-daily"


def test_processes_firing_the_same_slot_send_the_same_ping_id():
    """Dev servers sharing a RabbitMQ broker each fire a schedule; one id lets it run once."""
    published = []
    hourly = Function(
        name="cleanup_cache",
        module="functions.batch",
        kind="event",
        summary="",
        handler=lambda e: None,
        filter={"type": PING_TYPE, "task": "cleanup.cache"},
        schedule="0 * * * *",
    )
    first, second = (Cron([hourly], lambda e: published.append(e["id"]) or 1) for _ in range(2))
    for cron in (first, second):
        cron.fire_due(datetime(2026, 11, 26, 4, 0, tzinfo=SEOUL))
    first.fire_due(datetime(2026, 11, 26, 5, 0, tzinfo=SEOUL))
    assert published[0] == published[1] != published[2]

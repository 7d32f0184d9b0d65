"""Batch functions: each idempotent for its period, cleanups never touch running jobs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import error_code, login
from sqlalchemy import func, select, update
from test_waste import run, start

from eventing.cron import ping
from knative.cli import main as cli
from shared.core import cache, db, storage
from shared.core.events import make
from shared.core.registry import PING_TYPE
from shared.ops import analytics, reports
from shared.waste import jobs, progress, retention

KST = analytics.KST


def me(client, headers) -> str:
    return client.get("/api/v1/auth/me", headers=headers).get_json()["id"]


def fire(system, name: str, **data) -> None:
    """Deliver a ping for one batch function, as the PingSource would, and wait."""
    function = system.registry[name]
    event = ping(function, datetime.now(KST))  # a distinct slot each time: it really runs again
    if data:
        event = make(PING_TYPE, data, source=event["source"], task=function.filter["task"])
    assert system.broker.publish(event) == 1
    assert system.broker.wait_idle(30)


def _move_to(job_id: str, when: datetime) -> None:
    """Shift a job's timestamps so it happened at `when` (tests need yesterday's jobs)."""
    with db.transaction() as conn:
        shift = conn.execute(select(jobs.jobs.c.queued_at).where(jobs.jobs.c.id == job_id)).scalar()
        delta = when - shift
        conn.execute(
            update(jobs.jobs)
            .where(jobs.jobs.c.id == job_id)
            .values(
                queued_at=when,
                created_at=when - timedelta(seconds=1),
                updated_at=jobs.jobs.c.updated_at,
            )
        )
        for stage, at in conn.execute(
            select(jobs.job_stages.c.stage, jobs.job_stages.c.at).where(
                jobs.job_stages.c.job_id == job_id
            )
        ).all():
            conn.execute(
                update(jobs.job_stages)
                .where(jobs.job_stages.c.job_id == job_id, jobs.job_stages.c.stage == stage)
                .values(at=at + delta)
            )
        conn.execute(
            update(jobs.results)
            .where(jobs.results.c.job_id == job_id)
            .values(completed_at=when + timedelta(seconds=2))
        )


@pytest.fixture
def yesterday_jobs(system):
    """Three analyses yesterday (KST) by a user in 강남구: two completed, one failed."""
    client = system.app.test_client()
    headers = login(client, "daily")
    client.put("/api/v1/users/profile", headers=headers, json={"district": "강남구"})
    day = (datetime.now(KST) - timedelta(days=1)).date()
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=KST)
    ids = [run(client, system, headers, hint=hint)[0] for hint in ("우유팩", "페트병", "zzzq")]
    for n, job_id in enumerate(ids):
        _move_to(job_id, noon + timedelta(minutes=n))
    return day, ids, client, headers


def test_analytics_daily_replaces_its_day(system, yesterday_jobs):
    day, _, _, _ = yesterday_jobs
    fire(system, "analytics_daily")
    fire(system, "analytics_daily")  # the same period again
    fire(system, "analytics_daily", day=day.isoformat())  # a backfill of the same day
    with db.engine().connect() as conn:
        rows = conn.execute(select(analytics.daily_analytics)).all()
    assert len(rows) == 1 and rows[0].day == day
    figures = rows[0].figures
    assert figures["total"] == 3 and figures["completed"] == 2 and figures["failed"] == 1
    assert figures["completion_rate"] == round(2 / 3, 4)
    assert figures["by_category"] == {"종이팩 일반팩": 1, "무색페트병": 1}
    assert figures["by_district"] == {"서울특별시 강남구": 3}  # the profile stores it canonical
    assert figures["failure_reasons"] == {"ITEM_NOT_RECOGNIZED": 1}
    assert figures["hint_only"] == 3 and figures["model_calls"] == 0
    total = figures["stage_latency"]["queued->done"]
    assert total["n"] == 2 and 0 <= total["p50_s"] <= total["p95_s"]


def test_report_renders_real_charts_from_real_rows(system, yesterday_jobs):
    day, _, client, headers = yesterday_jobs
    fire(system, "analytics_daily")
    fire(system, "report_generate")
    fire(system, "report_generate")
    assert storage.list_keys(reports.PREFIX) == [reports.key_for(day)]
    html = storage.read(reports.key_for(day)).decode()
    week = html[html.index("id='last-7-days'") : html.index("id='last-30-days'")]
    assert re.search(r"data-total='3' data-completed='2' data-failed='1'", week)
    bars = dict(re.findall(r"class='bar' data-label='([^']+)' data-value='([^']+)'", week))
    assert bars["종이팩 일반팩"] == "1" and bars["무색페트병"] == "1"
    assert bars[day.isoformat()] == "3" and bars["ITEM_NOT_RECOGNIZED"] == "1"
    assert "<svg" in week and "class='point'" in week
    listed = client.get("/api/v1/waste/reports", headers=headers)
    assert listed.status_code == 403 and error_code(listed) == "FORBIDDEN"
    assert cli(["grant-admin", me(client, headers)]) == 0
    admin = login(client, "daily")
    items = client.get("/api/v1/waste/reports", headers=admin).get_json()["items"]
    assert [i["day"] for i in items] == [day.isoformat()]
    page = client.get(items[0]["url"].replace("http://localhost", ""))
    assert page.status_code == 200 and b"growbin report" in page.data


def test_cleanup_images_spares_running_jobs(system):
    client = system.app.test_client()
    headers = login(client, "keeper")
    done_id, _ = run(client, system, headers, hint="우유팩")
    running_id = start(client, headers, hint="페트병")["job_id"]
    abandoned_id = start(client, headers, hint="페트병")["job_id"]
    fresh_id = start(client, headers, hint="페트병")["job_id"]
    jobs.advance(running_id, "analyze")
    old = db.now() - timedelta(days=31)
    with db.transaction() as conn:
        conn.execute(
            update(jobs.jobs)
            .where(jobs.jobs.c.id.in_([done_id, running_id]))
            .values(created_at=old)
        )
        conn.execute(
            update(jobs.jobs)
            .where(jobs.jobs.c.id == abandoned_id)
            .values(created_at=db.now() - timedelta(hours=2))
        )
    user = me(client, headers)
    fire(system, "cleanup_images")
    fire(system, "cleanup_images")
    assert storage.head(jobs.image_key(user, done_id)) is None
    assert storage.head(jobs.image_key(user, abandoned_id)) is None
    assert storage.head(jobs.image_key(user, running_id)) is not None
    assert storage.head(jobs.image_key(user, fresh_id)) is not None
    result = client.get(f"/api/v1/waste/result/{done_id}", headers=headers).get_json()
    assert result["status"] == "completed" and result["image_url"] is None
    abandoned = client.get(f"/api/v1/waste/status/{abandoned_id}", headers=headers).get_json()
    assert abandoned["status"] == "failed" and abandoned["error"]["code"] == "UPLOAD_EXPIRED"
    late = client.post(f"/api/v1/waste/upload-complete/{abandoned_id}", headers=headers)
    assert late.status_code == 409 and error_code(late) == "UPLOAD_EXPIRED"
    running = client.get(f"/api/v1/waste/status/{running_id}", headers=headers).get_json()
    assert running["status"] == "processing"


def test_cleanup_images_removes_stored_images_no_job_accounts_for(system):
    """An upload that lands while its account is being deleted leaves an image without a row;
    a delete that once failed leaves one whose row says it is gone. The daily cleanup removes
    both, and nothing a job still accounts for, uploads not yet completed included."""
    client = system.app.test_client()
    headers = login(client, "tidy")
    user = me(client, headers)
    done_id, _ = run(client, system, headers, hint="우유팩")
    waiting_id = start(client, headers, hint="페트병")["job_id"]  # uploaded, not completed
    storage.put(jobs.image_key(user, "no-such-job"), b"\xff\xd8 late upload", "image/jpeg")
    marked_id, _ = run(client, system, headers, hint="페트병")
    with db.transaction() as conn:
        conn.execute(
            update(jobs.jobs).where(jobs.jobs.c.id == marked_id).values(image_deleted_at=db.now())
        )

    fire(system, "cleanup_images")
    fire(system, "cleanup_images")  # a second run finds nothing more to do

    assert storage.head(jobs.image_key(user, "no-such-job")) is None
    assert storage.head(jobs.image_key(user, marked_id)) is None
    assert storage.head(jobs.image_key(user, done_id)) is not None
    assert storage.head(jobs.image_key(user, waiting_id)) is not None
    assert retention.orphaned_images() == 0


def test_sweep_times_out_stuck_jobs_once(system):
    client = system.app.test_client()
    headers = login(client)
    stuck_id = start(client, headers, hint="페트병")["job_id"]
    moving_id = start(client, headers, hint="페트병")["job_id"]
    jobs.advance(stuck_id, "classify")
    jobs.advance(moving_id, "classify")
    with db.transaction() as conn:
        conn.execute(
            update(jobs.jobs)
            .where(jobs.jobs.c.id == stuck_id)
            .values(updated_at=db.now() - progress.DEADLINE - timedelta(minutes=1))
        )
    fire(system, "jobs_sweep")
    fire(system, "jobs_sweep")
    with db.engine().connect() as conn:
        rows = dict(conn.execute(select(jobs.jobs.c.id, jobs.jobs.c.error_code)).all())
    assert rows[stuck_id] == "TIMED_OUT" and rows[moving_id] is None


def test_cleanup_cache_removes_only_what_ttls_cannot(system):
    client = system.app.test_client()
    headers = login(client)
    live_id = start(client, headers, hint="페트병")["job_id"]
    c = cache.client()
    c.set("job:ghost-job:status", "{}", ex=3600)
    c.set("user:ghost-user:stats", "{}", ex=3600)
    c.set("ratelimit:analyze:stuck", "5")  # no TTL: it would never reset
    c.set("ratelimit:analyze:fine", "1", ex=60)
    fire(system, "cleanup_cache")
    fire(system, "cleanup_cache")
    assert c.get("job:ghost-job:status") is None and c.get("user:ghost-user:stats") is None
    assert c.get("ratelimit:analyze:stuck") is None and c.get("ratelimit:analyze:fine") == "1"
    assert c.get(f"job:{live_id}:status") is not None


def test_schedules_are_declared_once_and_fired_by_the_dev_cron(system):
    scheduled = {f.name: f.schedule for f in system.cron.scheduled}
    assert scheduled == {
        "analytics_daily": "10 0 * * *",
        "report_generate": "30 0 * * *",
        "cleanup_cache": "15 * * * *",
        "cleanup_images": "0 4 * * *",
        "jobs_sweep": "*/5 * * * *",
        "datasets_import": "40 4 * * *",
    }
    fired = system.cron.fire_due(datetime(2026, 11, 26, 0, 10, tzinfo=KST))
    assert sorted(fired) == ["analytics_daily", "jobs_sweep"]
    assert system.broker.wait_idle(30)
    with db.engine().connect() as conn:
        days = conn.execute(select(func.count()).select_from(analytics.daily_analytics)).scalar()
    assert days == 1


def test_previous_kst_day():
    assert (
        analytics.previous_kst_day(datetime(2026, 11, 25, 15, 10, tzinfo=UTC)).isoformat()
        == "2026-11-25"
    )  # 00:10 KST on the 26th

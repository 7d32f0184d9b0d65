"""Users: profile validation, history pages, stats and streaks, and deleting an account for real."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import error_code, login
from sqlalchemy import func, select, update
from test_waste import run, start

from shared.core import cache, db, storage
from shared.waste import history, jobs


def me(client, headers) -> str:
    return client.get("/api/v1/auth/me", headers=headers).get_json()["id"]


def test_profile_reads_and_updates_with_validation(client):
    headers = login(client, "mina")
    profile = client.get("/api/v1/users/profile", headers=headers).get_json()
    assert profile["nickname"] == "mina" and profile["district"] is None
    assert profile["language"] == "ko" and profile["preferences"] == {}

    changed = client.put(
        "/api/v1/users/profile",
        headers=headers,
        json={
            "nickname": "미나",
            "district": "강남구",
            "language": "en",
            "preferences": {"notifications": True},
        },
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["district"] == "서울특별시 강남구"  # stored canonical
    assert client.get("/api/v1/users/profile", headers=headers).get_json()["nickname"] == "미나"
    assert (
        client.put(
            "/api/v1/users/profile", headers=headers, json={"district": "서울특별시 중구"}
        ).status_code
        == 200
    )
    assert (
        client.put("/api/v1/users/profile", headers=headers, json={"district": None}).get_json()[
            "district"
        ]
        is None
    )

    cases = [
        ({"nickname": ""}, 422, "nickname"),
        ({"nickname": "x" * 31}, 422, "nickname"),
        ({"nickname": "   "}, 422, "nickname"),
        ({"district": "아틀란티스구"}, 422, "district"),
        ({"language": "korean"}, 422, "language"),
        ({"preferences": {"blob": "x" * 3000}}, 422, "preferences"),
        ({"role": "admin"}, 422, "role"),
        ({"nickname": 5}, 400, "nickname"),
        ({"preferences": []}, 400, "preferences"),
    ]
    for body, status, field in cases:
        response = client.put("/api/v1/users/profile", headers=headers, json=body)
        assert response.status_code == status, (body, response.get_json())
        assert field in response.get_json()["error"]["details"]["fields"], body
    assert client.put("/api/v1/users/profile", headers=headers, json={}).status_code == 422


def test_district_schedule_from_the_mois_table(client):
    headers = login(client)
    response = client.get("/api/v1/users/schedule?district=종로구", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    area = body["areas"][0]
    assert area["province"] == "서울특별시" and area["district"] == "종로구"
    assert area["household"]["days"] and area["household"]["from"] == "19:00"
    assert "토" in area["no_collection"] and area["phone"]
    assert error_code(client.get("/api/v1/users/schedule", headers=headers)) == "VALIDATION_FAILED"
    client.put("/api/v1/users/profile", headers=headers, json={"district": "강남구"})
    own = client.get("/api/v1/users/schedule", headers=headers).get_json()
    assert own["district"] == "서울특별시 강남구" and own["areas"]


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("강남구", "서울특별시 강남구"),
        ("서울 강남구", "서울특별시 강남구"),
        ("서울특별시   강남구", "서울특별시 강남구"),
        ("수원시 장안구", "경기도 수원시"),  # a 일반구 is its city: the city keeps the schedule
        ("장안구", "경기도 수원시"),
        ("경기 수원시", "경기도 수원시"),
        ("부산 중구", "부산광역시 중구"),
        ("강원도 고성군", "강원특별자치도 고성군"),  # named as it is today
    ],
)
def test_a_district_in_any_unambiguous_form_is_stored_canonical(client, typed, canonical):
    headers = login(client)
    changed = client.put("/api/v1/users/profile", headers=headers, json={"district": typed})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["district"] == canonical
    assert changed.get_json()["district_code"]
    schedule = client.get("/api/v1/users/schedule", headers=headers).get_json()
    assert schedule["district"] == canonical
    assert {(a["province"], a["district"]) for a in schedule["areas"]} == {
        tuple(canonical.split(" ", 1))
    }


def test_an_ambiguous_district_is_422_with_the_choices(client):
    headers = login(client)
    for where in ("profile", "schedule"):
        if where == "profile":
            response = client.put(
                "/api/v1/users/profile", headers=headers, json={"district": "중구"}
            )
        else:
            response = client.get("/api/v1/users/schedule?district=중구", headers=headers)
        assert response.status_code == 422, where
        details = response.get_json()["error"]["details"]
        assert "서울특별시 중구" in details["choices"] and "부산광역시 중구" in details["choices"]
        assert len(details["choices"]) == 6 and "district" in details["fields"]
    response = client.get("/api/v1/users/schedule?district=고성군", headers=headers)
    assert response.get_json()["error"]["details"]["choices"] == [
        "강원특별자치도 고성군",
        "경상남도 고성군",
    ]
    assert client.get("/api/v1/users/profile", headers=headers).get_json()["district"] is None


def _queued_jobs(user_id: str, count: int, start_at: datetime) -> list[str]:
    ids = []
    for n in range(count):
        job = jobs.create(user_id, "image/jpeg", 100, None)
        with db.transaction() as conn:
            conn.execute(
                update(jobs.jobs)
                .where(jobs.jobs.c.id == job["id"])
                .values(
                    status="queued",
                    stage="queued",
                    progress=10,
                    queued_at=start_at + timedelta(seconds=n),
                )
            )
        ids.append(job["id"])
    return ids


def test_history_pages_stay_correct_while_analyses_arrive(client):
    headers = login(client, "pager")
    user = me(client, headers)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    existing = _queued_jobs(user, 7, base)
    _queued_jobs(me(client, login(client, "someone-else")), 3, base)
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/users/history", query_string=query, headers=headers)
        assert page.status_code == 200
        body = page.get_json()
        seen += [item["job_id"] for item in body["items"]]
        pages += 1
        _queued_jobs(user, 2, db.now() + timedelta(minutes=pages))  # new ones arrive meanwhile
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(existing)), "newest first, no duplicates, no gaps"
    assert pages == 3
    bad = client.get("/api/v1/users/history?cursor=%%%", headers=headers)
    assert bad.status_code == 400 and error_code(bad) == "BAD_REQUEST"
    assert client.get("/api/v1/users/history?limit=101", headers=headers).status_code == 422


def test_history_and_stats_show_finished_analyses(system):
    client = system.app.test_client()
    headers = login(client, "sorter")
    run(client, system, headers, hint="우유팩")
    run(client, system, headers, hint="qqqq zzzz")  # fails: nothing matches
    start(client, headers, hint="페트병")  # never completed: not an analysis yet
    items = client.get("/api/v1/users/history", headers=headers).get_json()["items"]
    assert [i["status"] for i in items] == ["failed", "completed"]
    assert items[1]["item_name"] == "우유팩" and items[1]["category"]["middle"] == "종이팩 일반팩"
    assert items[1]["image_url"]
    stats = client.get("/api/v1/users/stats", headers=headers).get_json()
    assert stats["total_analyses"] == 2 and stats["completed"] == 1 and stats["failed"] == 1
    assert stats["by_category"] == {"종이팩 일반팩": 1} and stats["streak_days"] == 1
    assert stats["last_analysis_at"].endswith("Z")
    run(client, system, headers, hint="페트병")  # result.save invalidates the cached stats
    again = client.get("/api/v1/users/stats", headers=headers).get_json()
    assert again["completed"] == 2 and again["by_category"]["무색페트병"] == 1
    other = login(client, "stranger")
    assert client.get("/api/v1/users/history", headers=other).get_json()["items"] == []
    assert client.get("/api/v1/users/stats", headers=other).get_json()["total_analyses"] == 0


def test_streak_counts_kst_days_across_midnight_and_gaps():
    today = date(2026, 11, 26)
    assert history.streak({today, today - timedelta(days=1)}, today) == 2
    assert history.streak({today - timedelta(days=1), today - timedelta(days=2)}, today) == 2
    assert history.streak({today, today - timedelta(days=2)}, today) == 1  # a gap breaks it
    assert history.streak({today - timedelta(days=2)}, today) == 0
    assert history.streak(set(), today) == 0


def test_streak_uses_korean_days_not_utc(client):
    headers = login(client, "night-owl")
    user = me(client, headers)
    ids = _queued_jobs(user, 2, db.now() - timedelta(days=2))
    # 23:50 KST the day before yesterday and 00:10 KST yesterday are two days in Korea but one
    # day in UTC (14:50 and 15:10 UTC): a UTC streak would be 1. Both lie in the past, and
    # today has none yet, which does not break the streak.
    today = datetime.now(history.KST).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight = today - timedelta(days=1)
    times = [midnight - timedelta(minutes=10), midnight + timedelta(minutes=10)]
    with db.transaction() as conn:
        for job_id, at in zip(ids, times, strict=True):
            conn.execute(
                jobs.results.insert().values(
                    job_id=job_id,
                    user_id=user,
                    guide_id="item-guide-0001",
                    item_name="종이",
                    major="재활용폐기물",
                    middle="종이",
                    confidence=1.0,
                    body={},
                    completed_at=at.astimezone(UTC),
                )
            )
    cache.client().delete(jobs.stats_key(user))
    stats = client.get("/api/v1/users/stats", headers=headers).get_json()
    assert stats["streak_days"] == 2


@pytest.mark.parametrize("backend", ["embedded", "services"], indirect=True)
def test_deleting_the_account_leaves_nothing(system_on, backend):
    system = system_on
    client = system.app.test_client()
    headers = login(client, "leaver")
    user = me(client, headers)
    job_id, _ = run(client, system, headers, hint="우유팩")
    client.get("/api/v1/users/stats", headers=headers)  # something cached
    keeper = login(client, "keeper")
    kept_job, _ = run(client, system, keeper, hint="페트병")

    assert client.delete("/api/v1/users/profile", headers=headers).status_code == 204

    from shared.auth import accounts, sessions

    tables = [
        (accounts.users, accounts.users.c.id),
        (jobs.jobs, jobs.jobs.c.user_id),
        (jobs.results, jobs.results.c.user_id),
        (sessions.sessions, sessions.sessions.c.user_id),
        (accounts.login_audit, accounts.login_audit.c.user_id),
    ]
    with db.engine().connect() as conn:
        for table, column in tables:
            count = conn.execute(
                select(func.count()).select_from(table).where(column == user)
            ).scalar()
            assert count == 0, table.name
        assert (
            conn.execute(
                select(func.count())
                .select_from(jobs.job_stages)
                .where(jobs.job_stages.c.job_id == job_id)
            ).scalar()
            == 0
        )
    leftovers = [k for k in cache.client().scan_iter(match="*") if user in k or job_id in k]
    assert leftovers == []
    assert storage.list_keys(jobs.image_key(user, "")) == []
    assert storage.list_keys(jobs.image_key(me(client, keeper), ""))  # others keep theirs
    response = client.get("/api/v1/users/profile", headers=headers)
    assert response.status_code == 401 and error_code(response) == "TOKEN_REVOKED"
    again = login(client, "leaver")
    assert me(client, again) != user
    fresh = client.get("/api/v1/users/stats", headers=again).get_json()
    assert fresh["total_analyses"] == 0
    assert client.get(f"/api/v1/waste/result/{kept_job}", headers=keeper).status_code == 200

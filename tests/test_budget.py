"""The model budget guard: a small budget exhausted with the fake model (160 tokens a call)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from conftest import ROOT, _free_port, error_code, login, reset_clients
from test_waste import MILK, _job_row, run, start
from test_waste import fake_model as fake_model  # a fixture, shared

from shared.core import cache
from shared.waste import budget

NOW = 1_700_000_010  # 30 s into a UTC minute, 80,010 s into a UTC day
ANALYSIS = 3 * 160  # describe, choose, phrase


@pytest.fixture
def clock(monkeypatch):
    """The budget's clock stopped at NOW: its windows do not roll over mid-test."""
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: NOW))


def _limit(env, per_minute=None, per_day=None) -> None:
    if per_minute:
        env.setenv("MODEL_TOKENS_PER_MINUTE", str(per_minute))
    if per_day:
        env.setenv("MODEL_TOKENS_PER_DAY", str(per_day))
    reset_clients()


ANALYZE = {"content_type": "image/jpeg", "content_length": 100}


def _trips(caplog) -> list[dict]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "growbin"]
    return [line for line in lines if line["event"] == "model_budget_exhausted"]


def test_a_spent_minute_refuses_new_analyses_until_it_frees_up(
    env, fake_model, clock, system, caplog
):
    _limit(env, per_minute=ANALYSIS)
    client = system.app.test_client()
    headers = login(client)
    job_id, response = run(client, system, headers)
    assert response.get_json()["status"] == "completed"
    assert _job_row(job_id)["model_tokens"] == ANALYSIS
    calls = len(fake_model.requests)
    with caplog.at_level(logging.WARNING, logger="growbin"):
        refused = [client.post("/api/v1/waste/analyze", json=ANALYZE, headers=headers)]
        refused.append(client.post("/api/v1/waste/analyze", json=ANALYZE, headers=headers))
    for answer in refused:
        assert answer.status_code == 503 and error_code(answer) == "MODEL_BUDGET_EXHAUSTED"
        assert answer.headers["Retry-After"] == "30"  # the rest of the minute
        assert answer.get_json()["error"]["details"] == {"window": "minute"}
    assert len(fake_model.requests) == calls
    # One log line for the window, not one per refusal.
    assert _trips(caplog) == [
        {
            "severity": "WARNING",
            "event": "model_budget_exhausted",
            "window": "minute",
            "used": ANALYSIS,
            "limit": ANALYSIS,
            "retry_after": 30,
        }
    ]


def test_the_day_window_says_when_the_day_frees_up(env, fake_model, clock, system):
    _limit(env, per_minute=10 * ANALYSIS, per_day=ANALYSIS)
    client = system.app.test_client()
    headers = login(client)
    run(client, system, headers)
    refused = client.post("/api/v1/waste/analyze", json=ANALYZE, headers=headers)
    assert error_code(refused) == "MODEL_BUDGET_EXHAUSTED"
    assert refused.headers["Retry-After"] == str(86_400 - 80_010)


def test_with_a_hint_a_spent_budget_answers_from_the_hint_alone(env, fake_model, clock, system):
    _limit(env, per_minute=ANALYSIS)
    client = system.app.test_client()
    headers = login(client)
    run(client, system, headers)
    calls = len(fake_model.requests)
    job_id, response = run(client, system, headers, hint="우유팩", data=MILK)
    body = response.get_json()
    assert body["status"] == "completed", body
    assert body["source"]["chosen_by"] == "search" and body["detected_name"] == "우유팩"
    assert _job_row(job_id)["vision_source"] == "hint"
    assert _job_row(job_id)["model_tokens"] == 0
    assert len(fake_model.requests) == calls  # no model call at all


@pytest.mark.parametrize("hint", [None, "우유팩"])
def test_a_job_running_when_the_budget_trips_finishes_on_its_hint_or_fails_clearly(
    env, fake_model, clock, system, hint
):
    _limit(env, per_minute=ANALYSIS)
    client = system.app.test_client()
    headers = login(client)
    job_id = start(client, headers, hint=hint)["job_id"]  # accepted while the budget lasts
    budget.spend(ANALYSIS)  # other jobs spend it meanwhile
    completed = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
    assert completed.status_code == 202
    assert system.broker.wait_idle(30)
    body = client.get(f"/api/v1/waste/result/{job_id}", headers=headers).get_json()
    assert fake_model.requests == []
    if hint:
        assert body["status"] == "completed" and body["source"]["chosen_by"] == "search"
        assert _job_row(job_id)["vision_source"] == "hint"
    else:
        assert body["status"] == "failed"
        assert body["error"]["code"] == "MODEL_BUDGET_EXHAUSTED"
        assert "minute" in body["error"]["message"]


def test_a_budget_spent_between_stages_leaves_the_rest_to_search_and_template(
    env, fake_model, clock, system
):
    """The vision answer spends the whole budget: choosing and phrasing are not asked for."""
    _limit(env, per_minute=160)
    client = system.app.test_client()
    headers = login(client)
    job_id, response = run(client, system, headers)
    body = response.get_json()
    assert body["status"] == "completed" and body["source"]["chosen_by"] == "search"
    assert len(fake_model.requests) == 1 and _job_row(job_id)["vision_source"] == "model"


def test_without_limits_nothing_is_counted_or_refused(env, fake_model, system):
    client = system.app.test_client()
    headers = login(client)
    for _ in range(2):
        _, response = run(client, system, headers)
        assert response.get_json()["status"] == "completed"
    assert list(cache.client().scan_iter("model-budget:*")) == []
    assert budget.exhausted() is None


def test_counts_expire_with_their_window(env, clock):
    _limit(env, per_minute=1000, per_day=100_000)
    budget.spend(160)
    budget.spend(160)
    c = cache.client()
    minute, day = f"model-budget:minute:{NOW // 60}", f"model-budget:day:{NOW // 86_400}"
    assert c.get(minute) == "320" and c.get(day) == "320"
    assert 0 < c.ttl(minute) <= 31 and 0 < c.ttl(day) <= 86_400 - 80_010 + 1


SPENDER = """
import sys
from shared.waste import budget
for _ in range(int(sys.argv[1])):
    budget.spend(160)
"""


def test_processes_sharing_redis_count_every_token(env, tmp_path):
    """Several processes spend at once on one Redis (a private one: the count is
    deployment-wide, so the shared server's would mix with other runs): nothing is lost."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    redis = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        env.setenv("REDIS_URL", url)
        _limit(env, per_minute=10**9, per_day=10**9)
        deadline = time.monotonic() + 10
        while True:
            try:
                cache.client().ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        spenders = [
            subprocess.Popen(
                [sys.executable, "-c", SPENDER, "50"],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for _ in range(4)
        ]
        assert [p.wait(60) for p in spenders] == [0] * 4
        c = cache.client()
        for window in ("minute", "day"):  # a window may roll over meanwhile: its keys add up
            counts = [int(c.get(k)) for k in c.scan_iter(f"model-budget:{window}:*")]
            assert sum(counts) == 4 * 50 * 160, window
        assert all(c.ttl(k) > 0 for k in c.scan_iter("model-budget:*"))
    finally:
        reset_clients()
        redis.terminate()
        redis.wait(10)


def test_the_contract_names_the_refusal_on_analyze_only(client):
    document = client.get("/api/v1/openapi.json").get_json()
    analyze = document["paths"]["/api/v1/waste/analyze"]["post"]["responses"]["503"]
    assert "MODEL_BUDGET_EXHAUSTED" in analyze["description"]
    assert "Retry-After" in analyze["headers"]
    others = [
        operation["responses"]["503"]["description"]
        for path, operations in document["paths"].items()
        for operation in operations.values()
        if path != "/api/v1/waste/analyze"
    ]
    assert others and not any("MODEL_BUDGET" in text for text in others)


def test_a_job_read_from_its_hint_asks_nothing_when_the_budget_frees_up_midway(
    env, fake_model, system, monkeypatch
):
    """Spent at the vision call, free again by the phrasing: the hint-only job stays so."""
    spent = [budget.Spent("minute", 480, 480, 30)]
    monkeypatch.setattr(budget, "exhausted", lambda: spent.pop() if spent else None)
    client = system.app.test_client()
    job_id, response = run(client, system, login(client), hint="우유팩", data=MILK)
    assert response.get_json()["status"] == "completed" and spent == []
    assert _job_row(job_id)["vision_source"] == "hint" and fake_model.requests == []

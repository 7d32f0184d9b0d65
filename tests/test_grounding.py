"""The model chooses from the dictionary; an answer nobody vouches for asks the user; a
user's correction of a photo sticks. The real openai client talks to the local fake."""

from __future__ import annotations

import json

import pytest
from conftest import login
from test_waste import MILK, PHOTO, run, start
from test_waste import fake_model as fake_model  # a fixture, shared

from shared.waste import answers, rules


def _choose_calls(fake) -> list[dict]:
    return [
        r
        for r in fake.requests
        if isinstance(r["messages"][1]["content"], str)
        and '"candidates"' in r["messages"][1]["content"]
    ]


def _describes(fake, name: str, tags: list[str] | None = None) -> None:
    fake.default = (
        "json",
        {"name": name, "material": None, "category": None, "tags": tags or [], "confidence": 0.9},
    )


def test_the_model_picks_one_of_the_candidates(system, fake_model):
    client = system.app.test_client()
    headers = login(client)
    _describes(fake_model, "맥주병")
    offered = [m["guide_id"] for m in rules.search("맥주병", limit=5)]
    fake_model.answer("json", {"name": "맥주병", "tags": [], "confidence": 0.9})  # describe
    fake_model.answer("json", {"guide_id": offered[1]})  # choose: not the search's first
    _, response = run(client, system, headers)
    body = response.get_json()
    [choosing] = _choose_calls(fake_model)
    shown = [c["guide_id"] for c in json.loads(choosing["messages"][1]["content"])["candidates"]]
    assert shown == offered
    assert body["item"]["guide_id"] == offered[1] and body["needs_confirmation"] is False
    assert body["detected_name"] == "맥주병" and body["source"]["chosen_by"] == "model"


def test_an_id_outside_the_candidates_or_none_asks_the_user(system, fake_model):
    client = system.app.test_client()
    headers = login(client)
    _describes(fake_model, "맥주병")
    for refusal in ({"guide_id": "item-guide-0001"}, {"guide_id": "none"}, "not json"):
        fake_model.answer("json", {"name": "맥주병", "tags": [], "confidence": 0.9})
        fake_model.answer(*(("text", refusal) if isinstance(refusal, str) else ("json", refusal)))
        _, response = run(client, system, headers, data=PHOTO + refusal.__repr__().encode())
        body = response.get_json()
        assert body["status"] == "completed", body
        assert body["needs_confirmation"] is True, refusal
        assert body["source"]["chosen_by"] == "search"
        expected = [m["guide_id"] for m in rules.search("맥주병", limit=5)]
        assert [c["guide_id"] for c in body["candidates"]] == expected
        assert "item-guide-0001" not in expected  # the model's own id was not taken
        first = rules.guide(expected[0])
        assert body["candidates"][0] == answers.candidate(
            first, body["candidates"][0]["confidence"]
        )
        assert body["feedback"] == answers.question("맥주병")  # it asks, states no rule


def test_a_state_tag_moves_the_answer(system, fake_model):
    """A broken beer bottle goes in the 불연성 bag, not to glass recycling."""
    client = system.app.test_client()
    headers = login(client)
    _describes(fake_model, "맥주병", tags=["유리병_깨짐"])
    _, response = run(client, system, headers)
    body = response.get_json()
    assert body["item"]["name"] == "깨진 유리", body
    [choosing] = _choose_calls(fake_model)
    assert json.loads(choosing["messages"][1]["content"])["item"]["tags"] == ["유리병_깨짐"]


def test_a_hint_that_matches_weakly_needs_confirmation(system):
    client = system.app.test_client()
    headers = login(client)
    hint = "이상한 물건"
    assert not rules.confident(rules.search(hint))
    _, response = run(client, system, headers, hint=hint, data=MILK)
    body = response.get_json()
    assert body["status"] == "completed" and body["needs_confirmation"] is True
    assert 1 <= len(body["candidates"]) <= 5
    assert all(set(c) >= {"guide_id", "name", "category", "summary"} for c in body["candidates"])
    assert body["feedback"] == answers.question(hint)


def test_a_confident_hint_states_the_rule(system):
    client = system.app.test_client()
    headers = login(client)
    _, response = run(client, system, headers, hint="우유팩", data=MILK)
    body = response.get_json()
    assert body["needs_confirmation"] is False and body["candidates"] == []
    assert body["source"]["chosen_by"] == "search"
    assert body["feedback"].startswith("우유팩은 '종이팩 일반팩'으로 분리배출해요.")


def test_the_same_photo_gets_the_users_correction_next_time(system):
    client = system.app.test_client()
    alice, bob = login(client, "alice"), login(client, "bob")
    job_id, first = run(client, system, alice, hint="우유팩", data=MILK)
    chosen = next(g for g in (rules.guide(m["guide_id"]) for m in rules.search("종이팩")) if g)
    assert chosen["id"] != first.get_json()["item"]["guide_id"]
    confirm = f"/api/v1/waste/result/{job_id}/confirm"
    assert client.post(confirm, json={"guide_id": chosen["id"]}, headers=alice).status_code == 200

    _, again = run(client, system, alice, hint="우유팩", data=MILK)
    body = again.get_json()
    assert body["item"]["guide_id"] == chosen["id"] and body["source"]["chosen_by"] == "user"
    assert body["confidence"] == 1.0 and body["needs_confirmation"] is False
    _, other = run(client, system, bob, hint="우유팩", data=MILK)  # another user's photo
    assert other.get_json()["item"] == first.get_json()["item"]
    _, different = run(client, system, alice, hint="우유팩", data=MILK + b"\0")
    assert different.get_json()["item"] == first.get_json()["item"]


def test_a_redelivered_classify_step_does_not_ask_the_model_again(system, fake_model):
    """A classify step redelivered (the database down after the model answered) reads the
    stored choice: the same answer, paid for once (issue 18)."""
    from shared.waste import jobs, pipeline
    from shared.waste.messages import Analyzed

    client = system.app.test_client()
    headers = login(client)
    _describes(fake_model, "맥주병")
    offered = [m["guide_id"] for m in rules.search("맥주병", limit=5)]
    fake_model.answer("json", {"name": "맥주병", "tags": [], "confidence": 0.9})  # describe
    fake_model.answer("json", {"guide_id": offered[1]})  # choose
    job_id, response = run(client, system, headers)
    assert response.get_json()["item"]["guide_id"] == offered[1]
    job = jobs.get(me_id(client, headers), job_id)
    tokens = job["model_tokens"]
    description = pipeline._cached_description(job["image_sha256"], "gpt-4o")  # as analyzed
    again = pipeline.classify(Analyzed(job_id, description, "model"))
    assert again.guide_id == offered[1] and again.chosen_by == "model"
    assert len(_choose_calls(fake_model)) == 1
    assert jobs.get(me_id(client, headers), job_id)["model_tokens"] == tokens


def me_id(client, headers) -> str:
    return client.get("/api/v1/auth/me", headers=headers).get_json()["id"]


def test_the_vision_answer_is_kept_before_a_later_step_fails(system, fake_model, monkeypatch):
    """The database fails right after the model described the photo: the retry reads the
    stored description instead of paying for the same photo again (issue 18)."""
    from shared.waste import jobs, pipeline
    from shared.waste.messages import Uploaded

    client = system.app.test_client()
    headers = login(client)
    created = start(client, headers)
    job_id = created["job_id"]
    pipeline.submit(jobs.get(me_id(client, headers), job_id))
    assert system.broker.wait_idle(30)

    real = jobs.record_vision  # the write after the model's answer, with its tokens
    failures = iter([True])

    def record_vision(job, *args):
        if next(failures, False):
            raise RuntimeError("the database went away")
        real(job, *args)

    monkeypatch.setattr(jobs, "record_vision", record_vision)
    with pipeline.db.transaction() as conn:  # a fresh photo hash: nothing cached yet
        conn.execute(pipeline.vision_cache.delete())
    before = len(_photo_calls(fake_model))
    with pytest.raises(RuntimeError):
        pipeline.analyze(Uploaded(job_id))
    pipeline.analyze(Uploaded(job_id))  # the redelivery
    assert len(_photo_calls(fake_model)) == before + 1


def _photo_calls(fake) -> list[dict]:
    return [
        r
        for r in fake.requests
        if any(
            isinstance(part, dict) and part.get("type") == "image_url"
            for message in r["messages"]
            if isinstance(message["content"], list)
            for part in message["content"]
        )
    ]

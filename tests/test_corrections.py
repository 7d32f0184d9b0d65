"""Corrections that stick: confirming a guide rewrites the result, history and stats follow,
the same choice twice changes nothing, and operators see the frequent pairs."""

from __future__ import annotations

from conftest import error_code, login
from test_waste import MILK, run

from shared.waste import corrections, rules

GLASS_BOTTLE = "음료수병"


def _confirm(client, headers, job_id, guide_id):
    return client.post(
        f"/api/v1/waste/result/{job_id}/confirm", json={"guide_id": guide_id}, headers=headers
    )


def _a_guide_named(name: str) -> dict:
    found = [g for g in (rules.guide(m["guide_id"]) for m in rules.search(name, limit=5))]
    guide = next((g for g in found if g["name"] == name), None)
    assert guide is not None, f"the dictionary has no guide named {name}"
    return guide


def test_confirm_makes_the_chosen_guide_the_answer(system):
    client = system.app.test_client()
    headers = login(client)
    job_id, first = run(client, system, headers, hint="우유팩", data=MILK)
    proposed = first.get_json()
    chosen = _a_guide_named(GLASS_BOTTLE)
    assert proposed["item"]["guide_id"] != chosen["id"]

    response = _confirm(client, headers, job_id, chosen["id"])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["item"] == {"name": chosen["name"], "guide_id": chosen["id"]}
    assert body["disposal_steps"] == chosen["dischargeMethods"]
    assert body["cautions"] == chosen["notes"]
    assert body["category"] == rules.category(chosen)
    assert body["source"]["chosen_by"] == "user" and body["source"]["guide_id"] == chosen["id"]
    assert body["confidence"] == 1.0 and body["needs_confirmation"] is False
    assert body["completed_at"] == proposed["completed_at"]
    assert body["image_url"]
    assert chosen["name"] in body["feedback"]

    again = client.get(f"/api/v1/waste/result/{job_id}", headers=headers).get_json()
    assert again == {**body, "image_url": again["image_url"]}
    history = client.get("/api/v1/users/history", headers=headers).get_json()["items"]
    assert [h["item_name"] for h in history] == [chosen["name"]]
    stats = client.get("/api/v1/users/stats", headers=headers).get_json()
    assert stats["by_category"] == {rules.category(chosen)["middle"]: 1}

    # The same choice again is harmless; another choice replaces it and keeps the proposal.
    assert _confirm(client, headers, job_id, chosen["id"]).get_json()["item"] == body["item"]
    assert corrections.frequent() == [
        {
            "detected_name": "우유팩",
            "proposed": {"guide_id": proposed["item"]["guide_id"], "name": "우유팩"},
            "chosen": {"guide_id": chosen["id"], "name": chosen["name"]},
            "count": 1,
        }
    ]
    back = _confirm(client, headers, job_id, proposed["item"]["guide_id"]).get_json()
    assert back["item"] == proposed["item"]
    assert corrections.frequent() == []  # the user went back to what growbin proposed


def test_confirm_refuses_what_it_cannot_do(system):
    client = system.app.test_client()
    alice, bob = login(client, "alice"), login(client, "bob")
    job_id, _ = run(client, system, alice, hint="우유팩", data=MILK)
    guide_id = _a_guide_named(GLASS_BOTTLE)["id"]

    assert error_code(_confirm(client, bob, job_id, guide_id)) == "NOT_FOUND"
    unknown = _confirm(client, alice, job_id, "item-guide-9999")
    assert unknown.status_code == 422 and error_code(unknown) == "VALIDATION_FAILED"
    empty = client.post(f"/api/v1/waste/result/{job_id}/confirm", json={}, headers=alice)
    assert empty.status_code == 422
    assert _confirm(client, alice, job_id, guide_id).status_code == 200

    pending = client.post(
        "/api/v1/waste/analyze",
        json={"content_type": "image/jpeg", "content_length": len(MILK), "hint": "우유팩"},
        headers=alice,
    ).get_json()
    early = _confirm(client, alice, pending["job_id"], guide_id)
    assert early.status_code == 409 and error_code(early) == "JOB_NOT_COMPLETED"


def test_operators_see_the_frequent_corrections(system, capsys):
    from datetime import date

    from knative import cli
    from shared.ops import reports

    client = system.app.test_client()
    chosen = _a_guide_named(GLASS_BOTTLE)
    for name in ("ana", "ben"):
        headers = login(client, name)
        job_id, _ = run(client, system, headers, hint="우유팩", data=MILK)
        assert _confirm(client, headers, job_id, chosen["id"]).status_code == 200

    assert cli.main(["corrections"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].split()[0] == "2"
    assert "우유팩: 우유팩" in printed[0] and f"-> {chosen['name']} ({chosen['id']})" in printed[0]
    page = reports.render(date.today())
    assert "<tr class='correction' data-count='2'><td>우유팩</td>" in page

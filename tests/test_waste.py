"""Waste analysis end to end: upload through the presigned form, the four stages, the answer."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time

import pillow_heif
import pytest
import requests
from conftest import IMAGES, error_code, login, reset_clients
from fake_openai import FakeOpenAI, completion
from PIL import Image, ImageChops, ImageStat

from shared.core import storage
from shared.waste import images, jobs, messages, progress, rules

PHOTO = (IMAGES / "plastic" / "plastic1.jpg").read_bytes()
MILK = (IMAGES / "cardboard" / "cardboard2.jpg").read_bytes()


def upload(client, form, data=PHOTO, content_type="image/jpeg"):
    """POST the image through the presigned form, as the mobile app does (local or S3)."""
    if not form["url"].startswith("http://localhost"):
        files = {"file": ("photo.jpg", data, content_type)}
        return _Sent(requests.post(form["url"], data=form["fields"], files=files, timeout=10))
    fields = dict(form["fields"])
    fields["file"] = (io.BytesIO(data), "photo.jpg", content_type)
    path = form["url"].replace("http://localhost", "")
    return client.post(path, data=fields, content_type="multipart/form-data")


class _Sent:
    """A requests response seen through the test client's attribute names."""

    def __init__(self, response) -> None:
        self.status_code = response.status_code
        self.data = response.content


def fetch(client, url):
    if url.startswith("http://localhost"):
        return client.get(url.replace("http://localhost", ""))
    return _Sent(requests.get(url, timeout=10))


def start(client, headers, hint=None, data=PHOTO, content_type="image/jpeg"):
    body = {"content_type": content_type, "content_length": len(data)}
    if hint:
        body["hint"] = hint
    response = client.post("/api/v1/waste/analyze", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert upload(client, created["upload"], data, content_type).status_code == 204
    return created


def run(client, system, headers, **kwargs):
    """Analyze, upload, complete, wait for the broker; returns (job_id, result response)."""
    created = start(client, headers, **kwargs)
    job_id = created["job_id"]
    response = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert system.broker.wait_idle(30)
    return job_id, client.get(f"/api/v1/waste/result/{job_id}", headers=headers)


@pytest.fixture
def fake_model(env):
    with FakeOpenAI() as fake:
        env.setenv("OPENAI_API_KEY", "sk-test")
        env.setenv("OPENAI_BASE_URL", fake.base_url)
        env.setenv("OPENAI_TIMEOUT", "1")
        reset_clients()
        yield fake


def test_hint_flow_end_to_end_without_a_model(system_on):
    """The README's flow: no keys, a hint, a real photo, and an official answer."""
    client = system_on.app.test_client()
    headers = login(client)
    created = start(client, headers, hint="우유팩", data=MILK)
    job_id = created["job_id"]
    assert created["status"] == "awaiting_upload"
    assert created["status_url"] == f"/api/v1/waste/status/{job_id}"
    response = client.post(
        "/api/v1/waste/upload-complete", json={"job_id": job_id}, headers=headers
    )
    assert response.status_code == 202 and response.get_json()["job_id"] == job_id
    deadline = time.monotonic() + 30
    seen = []
    while True:
        status = client.get(f"/api/v1/waste/status/{job_id}", headers=headers)
        view = status.get_json()
        seen.append(view["progress"])
        if view["status"] in ("completed", "failed") or time.monotonic() > deadline:
            break
        assert int(status.headers["Retry-After"]) >= 1
        time.sleep(0.02)
    assert view["status"] == "completed" and view["stage"] == "done" and view["progress"] == 100
    assert "Retry-After" not in status.headers
    assert seen == sorted(seen)
    result = client.get(f"/api/v1/waste/result/{job_id}", headers=headers)
    assert result.status_code == 200
    body = result.get_json()
    guide = rules.guide(body["item"]["guide_id"])
    assert guide is not None and guide["name"] == "우유팩"
    assert body["disposal_steps"] == guide["dischargeMethods"]
    assert body["cautions"] == guide["notes"]
    assert body["category"] == {"major": "재활용폐기물", "middle": "종이팩 일반팩"}
    assert body["source"]["guide_id"] == guide["id"] and body["source"]["title"]
    assert "우유팩" in body["feedback"]
    image = fetch(client, body["image_url"])
    assert image.status_code == 200 and image.data == MILK


def test_vision_model_reads_the_image_by_key(system, fake_model):
    client = system.app.test_client()
    headers = login(client)
    fake_model.default = (
        "json",
        {
            "name": "페트병",
            "material": "PET",
            "category": "무색페트병",
            "tags": ["내용물_없음", "not-a-tag"],
            "confidence": 0.9,
        },
    )
    _job_id, response = run(client, system, headers)
    body = response.get_json()
    assert response.status_code == 200, body
    assert rules.guide(body["item"]["guide_id"])["categoryPaths"][0][1] == "무색페트병"
    assert body["situation_tags"] == ["내용물_없음"]
    assert 0 < body["confidence"] <= 1 and len(body["alternatives"]) <= 3
    vision, choosing, phrasing = fake_model.requests
    image_part = vision["messages"][1]["content"][1]["image_url"]
    assert image_part["detail"] == "low"
    assert _sent_image(fake_model) == ("image/jpeg", PHOTO)  # small enough: sent untouched
    assert vision["max_tokens"] <= 300 and vision["response_format"] == {"type": "json_object"}
    asked = json.loads(choosing["messages"][1]["content"])
    assert asked["candidates"][0]["guide_id"] == body["item"]["guide_id"]  # chosen from them
    assert choosing["max_tokens"] <= 60
    assert "배출방법" in phrasing["messages"][1]["content"]
    assert body["needs_confirmation"] is False and body["candidates"] == []
    assert _job_row(_job_id)["model_tokens"] == 3 * 160  # the fake's usage, per call


def _vision_calls(fake_model) -> list[dict]:
    """The calls that carried the photo (the others choose a guide, or phrase the answer)."""
    return [r for r in fake_model.requests if isinstance(r["messages"][1]["content"], list)]


def test_the_same_image_reuses_the_earlier_vision_answer(system, fake_model):
    client = system.app.test_client()
    headers = login(client)
    run(client, system, headers)
    calls = len(fake_model.requests)
    _, second = run(client, system, headers)
    assert second.status_code == 200
    assert len(_vision_calls(fake_model)) == 1 and len(fake_model.requests) > calls


def _sent_image(fake_model) -> tuple[str, bytes]:
    """(content type, bytes) of the image in the one vision call the model received."""
    [vision] = _vision_calls(fake_model)
    url = vision["messages"][1]["content"][1]["image_url"]["url"]
    header, encoded = url.split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64")
    return header.removeprefix("data:").removesuffix(";base64"), base64.b64decode(encoded)


def _stored_sideways(picture: Image.Image, format: str, **options) -> bytes:
    """The picture as a phone stores a portrait shot: pixels turned, EXIF saying turn back.
    Given as bytes, the orientation becomes the HEIF rotation box in a HEIC, as iPhones write."""
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    out = io.BytesIO()
    turned = picture.transpose(Image.Transpose.ROTATE_90)
    turned.save(out, format, exif=exif.tobytes(), **options)
    return out.getvalue()


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two same-size pictures, 0 (same) to 255."""
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def test_a_heic_photo_reaches_the_model_as_an_upright_jpeg(system, fake_model):
    """The iPhone default: HEIC, stored sideways. The model reads neither, so it gets a JPEG."""
    client = system.app.test_client()
    headers = login(client)
    photo = Image.open(io.BytesIO(MILK))
    heic = _stored_sideways(photo, "HEIF", quality=90)
    assert Image.open(io.BytesIO(heic)).format == "HEIF"
    job_id, response = run(client, system, headers, data=heic, content_type="image/heic")
    assert response.get_json()["status"] == "completed", response.get_json()
    content_type, sent = _sent_image(fake_model)
    assert content_type == "image/jpeg"
    picture = Image.open(io.BytesIO(sent))
    assert picture.format == "JPEG" and picture.size == photo.size == (384, 512)
    assert _difference(picture, photo) < 8  # the photo itself, the right way up
    assert _difference(picture, photo.transpose(Image.Transpose.ROTATE_180)) > 30
    # the vision cache is keyed by what was stored, not by the conversion
    assert _job_row(job_id)["image_sha256"] == hashlib.sha256(heic).hexdigest()


def test_a_large_photo_is_sent_downscaled_and_upright(system, fake_model):
    client = system.app.test_client()
    headers = login(client)
    photo = Image.open(io.BytesIO(MILK))
    large = _stored_sideways(photo.resize((3072, 4096)), "JPEG", quality=95)
    _, response = run(client, system, headers, data=large)
    assert response.get_json()["status"] == "completed"
    content_type, sent = _sent_image(fake_model)
    picture = Image.open(io.BytesIO(sent))
    assert content_type == "image/jpeg" and picture.format == "JPEG"
    assert max(picture.size) <= images.MAX_SIDE and picture.size == (768, 1024)  # portrait
    assert len(sent) < len(large) / 4
    assert _difference(picture.resize(photo.size), photo) < 8


@pytest.mark.parametrize(
    ("damage", "content_type"),
    [
        (lambda heic: heic[: len(heic) // 2], "image/heic"),  # cut off mid-upload
        (lambda heic: b"\x00\x00\x00\x18ftypheic" + bytes(1000), "image/heic"),  # no image
        (lambda _: PHOTO[: len(PHOTO) // 2], "image/jpeg"),
        (lambda _: b"GIF89a" + bytes(100), "image/png"),  # not a format uploads may be
    ],
    ids=["truncated-heic", "empty-heic", "truncated-jpeg", "gif"],
)
def test_an_image_that_does_not_decode_is_refused_as_unreadable(
    system, fake_model, damage, content_type
):
    """Refused at upload-complete, before any stage runs (the job waits for a new upload)."""
    client = system.app.test_client()
    headers = login(client)
    heic = _stored_sideways(Image.open(io.BytesIO(PHOTO)), "HEIF")
    created = start(client, headers, data=damage(heic), content_type=content_type)
    response = client.post(f"/api/v1/waste/upload-complete/{created['job_id']}", headers=headers)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "IMAGE_UNREADABLE" and "not a usable image" in error["message"]
    assert system.broker.wait_idle(30)
    assert [r for r in fake_model.requests if "response_format" in r] == []  # no call wasted


def test_an_image_the_check_passes_but_the_stage_cannot_read_fails_the_job(
    system, fake_model, monkeypatch
):
    """The analyze stage keeps its own refusal (an image stored before the upload check)."""
    client = system.app.test_client()
    headers = login(client)
    monkeypatch.setattr(images, "check", lambda image, content_type: None)
    _, response = run(client, system, headers, data=PHOTO[: len(PHOTO) // 2])
    error = response.get_json()["error"]
    assert error["code"] == "IMAGE_UNREADABLE" and "photo could not be read" in error["message"]
    assert [r for r in fake_model.requests if "response_format" in r] == []  # no call wasted


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (("status", 429), "MODEL_RATE_LIMITED"),
        (("status", 500), "VISION_FAILED"),
        (("sleep", 3), "VISION_TIMEOUT"),
        (("text", "I think it is a bottle"), "VISION_MALFORMED"),
        (("json", {"material": "PET"}), "VISION_MALFORMED"),
        (("status", 400), "IMAGE_UNREADABLE"),
    ],
)
def test_model_failures_fail_the_job_with_a_specific_code(system, fake_model, answer, code):
    client = system.app.test_client()
    headers = login(client)
    fake_model.answer(*answer, times=3)  # the first try and the client's two retries
    job_id, response = run(client, system, headers)
    assert response.status_code == 200
    assert response.get_json() == {
        "job_id": job_id,
        "status": "failed",
        "error": response.get_json()["error"],
    }
    assert response.get_json()["error"]["code"] == code
    status = client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()
    assert status["status"] == "failed" and status["error"]["code"] == code


def _without_usage() -> dict:
    reply = completion(json.dumps({"name": "페트병", "material": "PET", "tags": []}))
    del reply["usage"]
    return reply


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("<html>502 Bad Gateway</html>", "not JSON"),
        ('{"choices": [', "not JSON"),
        ("null", "no choices"),
        ([1, 2, 3], "no choices"),
        ({"id": "chatcmpl-x", "object": "chat.completion"}, "no choices"),
        ({"choices": {"0": "페트병"}}, "no choices"),
        ({"choices": []}, "no answer"),
        ({"choices": ["페트병"]}, "no answer"),
        ({"choices": [{"message": "페트병"}]}, "no answer"),
        ({"choices": [{"message": {"content": {"name": "페트병"}}}]}, "no answer"),
    ],
)
def test_a_reply_that_is_not_a_chat_completion_fails_the_job(system, fake_model, reply, reason):
    """The real client hands the reply over as it came (no pydantic models): whatever shape
    it has, the job fails with VISION_FAILED and says what was wrong, in time."""
    client = system.app.test_client()
    headers = login(client)
    fake_model.answer("reply", reply)
    job_id, response = run(client, system, headers)
    error = response.get_json()["error"]
    assert error["code"] == "VISION_FAILED" and reason in error["message"], error
    assert len(fake_model.requests) == 1  # a reply came: nothing retried, nothing else asked
    assert _job_row(job_id)["status"] == "failed"


def test_a_reply_without_usage_is_kept_and_counts_no_tokens(system, fake_model):
    client = system.app.test_client()
    headers = login(client)
    fake_model.answer("reply", _without_usage())  # the vision call's; the two others report
    job_id, response = run(client, system, headers)
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "completed", body
    assert body["item"]["name"]
    assert _job_row(job_id)["model_tokens"] == 2 * 160


def test_transient_model_errors_are_retried_by_the_client(system, fake_model):
    client = system.app.test_client()
    headers = login(client)
    fake_model.answer("status", 503)
    fake_model.answer("status", 429)
    _, response = run(client, system, headers)
    assert response.get_json()["status"] == "completed"


def test_no_model_and_no_hint_fails_with_how_to_fix_it(system, monkeypatch):
    """A job made while a model was configured, run after it was removed: the stage fails it
    with how to fix it (analyze itself refuses such a job up front: HINT_REQUIRED)."""
    from shared.waste import ai

    client = system.app.test_client()
    headers = login(client)
    with monkeypatch.context() as configured:
        configured.setattr(ai, "configured", lambda: True)
        created = start(client, headers)
    job_id = created["job_id"]
    assert (
        client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers).status_code == 202
    )
    assert system.broker.wait_idle(30)
    response = client.get(f"/api/v1/waste/result/{job_id}", headers=headers)
    error = response.get_json()["error"]
    assert error["code"] == "VISION_UNAVAILABLE"
    assert "OPENAI_API_KEY" in error["message"] and "hint" in error["message"]


def test_nothing_in_the_dictionary_fails_clearly(system):
    client = system.app.test_client()
    headers = login(client)
    _, response = run(client, system, headers, hint="qqqq zzzz")
    assert response.get_json()["error"]["code"] == "ITEM_NOT_RECOGNIZED"


def test_replayed_events_at_every_stage_change_nothing(system_on):
    system = system_on
    client = system.app.test_client()
    headers = login(client)
    published = []
    original = system.broker.publish
    system.broker.publish = lambda e: published.append(e) or original(e)
    from shared.core import events

    events.connect(system.broker.publish)
    job_id, first = run(client, system, headers, hint="페트병")
    assert {e["type"] for e in published} == {
        messages.Uploaded.TYPE,
        messages.Analyzed.TYPE,
        messages.Classified.TYPE,
        messages.Answered.TYPE,
    }
    rows_before = _rows(job_id)
    for event in list(published):
        system.broker.publish(event)  # the broker delivering each event again
    # a stage redelivered under a fresh id (a replay from outside) still changes nothing
    from shared.core.events import make

    for event in list(published):
        system.broker.publish(make(event["type"], event.data, subject=event["subject"]))
    assert system.broker.wait_idle(30)
    assert _rows(job_id) == rows_before
    again = client.get(f"/api/v1/waste/result/{job_id}", headers=headers).get_json()
    first_body = first.get_json()
    assert {k: v for k, v in again.items() if k != "image_url"} == {
        k: v for k, v in first_body.items() if k != "image_url"
    }


def _job_row(job_id):
    from sqlalchemy import select

    from shared.core import db

    with db.engine().connect() as conn:
        return conn.execute(select(jobs.jobs).where(jobs.jobs.c.id == job_id)).one()._asdict()


def _rows(job_id):
    from sqlalchemy import select

    from shared.core import db

    with db.engine().connect() as conn:
        job = conn.execute(select(jobs.jobs).where(jobs.jobs.c.id == job_id)).one()._asdict()
        result = conn.execute(select(jobs.results).where(jobs.results.c.job_id == job_id)).all()
        stages = conn.execute(
            select(jobs.job_stages).where(jobs.job_stages.c.job_id == job_id)
        ).all()
    return json.dumps(
        [job, [r._asdict() for r in result], [s._asdict() for s in stages]],
        default=str,
        sort_keys=True,
    )


def test_upload_complete_twice_is_one_job(system, fake_model):
    client = system.app.test_client()
    headers = login(client)
    created = start(client, headers)
    job_id = created["job_id"]
    first = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
    second = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
    assert first.status_code == second.status_code == 202
    assert system.broker.wait_idle(30)
    third = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
    assert third.status_code == 202 and third.get_json()["job_id"] == job_id
    assert len(_vision_calls(fake_model)) == 1


def test_bad_uploads_get_their_contract_errors(client):
    headers = login(client)
    analyze = "/api/v1/waste/analyze"
    too_big = client.post(
        analyze,
        json={"content_type": "image/jpeg", "content_length": 10 * 1024 * 1024 + 1},
        headers=headers,
    )
    assert too_big.status_code == 413 and error_code(too_big) == "PAYLOAD_TOO_LARGE"
    wrong = client.post(
        analyze, json={"content_type": "image/gif", "content_length": 10}, headers=headers
    )
    assert wrong.status_code == 415 and error_code(wrong) == "UNSUPPORTED_MEDIA_TYPE"
    invalid = client.post(
        analyze, json={"content_type": "image/png", "content_length": 0}, headers=headers
    )
    assert invalid.status_code == 422 and error_code(invalid) == "VALIDATION_FAILED"

    created = client.post(
        analyze,
        json={"content_type": "image/jpeg", "content_length": 1000, "hint": "페트병"},
        headers=headers,
    ).get_json()
    job_id = created["job_id"]
    missing = client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)
    assert missing.status_code == 409 and error_code(missing) == "UPLOAD_MISSING"
    larger = upload(client, created["upload"], PHOTO)
    assert larger.status_code == 413 and error_code(larger) == "PAYLOAD_TOO_LARGE"
    png = upload(client, created["upload"], PHOTO[:500], "image/png")
    assert png.status_code == 415

    expired = storage.presign_upload(jobs.image_key("u", "j"), "image/jpeg", 1000, expires_in=-1)
    late = upload(client, {**created["upload"], "fields": expired["fields"]}, PHOTO[:500])
    assert late.status_code == 409 and error_code(late) == "UPLOAD_EXPIRED"
    status = client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()
    assert status["status"] == "awaiting_upload"


def test_another_users_job_is_not_found(client):
    alice, bob = login(client, "alice"), login(client, "bob")
    created = start(client, alice, hint="페트병")
    job_id = created["job_id"]
    for method, path in (
        ("GET", f"/api/v1/waste/status/{job_id}"),
        ("GET", f"/api/v1/waste/result/{job_id}"),
        ("POST", f"/api/v1/waste/upload-complete/{job_id}"),
    ):
        response = client.open(path, method=method, headers=bob)
        assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    assert client.get("/api/v1/waste/status/nope", headers=alice).status_code == 404


class CountingCache:
    """The cache, counting the commands sent to it: on Redis each is a round trip."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name):
        command = getattr(self.inner, name)

        def counted(*args, **kwargs):
            self.calls.append(name)
            return command(*args, **kwargs)

        return counted


def test_a_status_poll_is_one_cache_round_trip(client, monkeypatch):
    from shared.core import cache

    headers = login(client)
    job_id = start(client, headers, hint="페트병")["job_id"]
    for path in (f"/api/v1/waste/status/{job_id}", f"/api/v1/waste/result/{job_id}"):
        assert client.get(path, headers=headers).status_code in (200, 202)  # both now cached
        counting = CountingCache(cache.client())
        monkeypatch.setattr(cache, "client", lambda counting=counting: counting)
        response = client.get(path, headers=headers)
        monkeypatch.undo()
        assert response.get_json()["status"] == "awaiting_upload"
        assert counting.calls == ["mget"], path
    # The shared read still refuses an ended session and another user's job.
    bob = login(client, "bob")
    assert client.get(f"/api/v1/waste/status/{job_id}", headers=bob).status_code == 404
    client.post("/api/v1/auth/logout", headers=headers)
    response = client.get(f"/api/v1/waste/status/{job_id}", headers=headers)
    assert response.status_code == 401


def test_analyze_is_rate_limited_per_user(client, monkeypatch):
    import functions.waste

    monkeypatch.setattr(functions.waste, "ANALYZE_LIMIT", (2, 60))
    headers, other = login(client, "busy"), login(client, "calm")
    body = {"content_type": "image/jpeg", "content_length": 100, "hint": "페트병"}
    codes = [
        client.post("/api/v1/waste/analyze", json=body, headers=headers).status_code
        for _ in range(3)
    ]
    assert codes == [201, 201, 429]
    limited = client.post("/api/v1/waste/analyze", json=body, headers=headers)
    assert error_code(limited) == "RATE_LIMITED" and int(limited.headers["Retry-After"]) > 0
    assert client.post("/api/v1/waste/analyze", json=body, headers=other).status_code == 201


def test_progress_never_moves_backwards_and_stuck_jobs_time_out(client):
    from datetime import timedelta

    from sqlalchemy import update

    from shared.core import db

    headers = login(client)
    job_id = start(client, headers, hint="페트병")["job_id"]
    user_id = client.get("/api/v1/auth/me", headers=headers).get_json()["id"]
    assert jobs.advance(job_id, "classify")
    assert not jobs.advance(job_id, "analyze")  # a late event
    assert jobs.status(user_id, job_id)["stage"] == "classify"
    with db.transaction() as conn:
        conn.execute(
            update(jobs.jobs)
            .where(jobs.jobs.c.id == job_id)
            .values(updated_at=db.now() - progress.DEADLINE - timedelta(seconds=1))
        )
    from shared.core import cache

    cache.client().delete(f"job:{job_id}:status")
    view = client.get(f"/api/v1/waste/status/{job_id}", headers=headers).get_json()
    assert view["status"] == "failed" and view["error"]["code"] == "TIMED_OUT"


def test_item_search_forgives_spacing_and_typos(client):
    headers = login(client)

    def names(query: str) -> list[str]:
        found = client.get("/api/v1/waste/items", query_string={"q": query}, headers=headers)
        assert found.status_code == 200
        return [i["name"] for i in found.get_json()["items"]]

    # a slipped vowel answers as the word spelled right, with a PET bottle guide first
    assert names("페트벙")[:3] == names("페트병")[:3]
    assert "페트병" in names("페트벙")[0]
    spaced = client.get("/api/v1/waste/items?q=우유 팩&limit=1", headers=headers).get_json()
    assert [i["name"] for i in spaced["items"]] == ["우유팩"]
    guide_id = spaced["items"][0]["guide_id"]
    detail = client.get(f"/api/v1/waste/items/{guide_id}", headers=headers).get_json()
    assert detail["discharge_methods"] == rules.guide(guide_id)["dischargeMethods"]
    assert detail["source"]["attribution"].startswith("기후에너지환경부")
    assert client.get("/api/v1/waste/items/item-guide-9999", headers=headers).status_code == 404
    assert error_code(client.get("/api/v1/waste/items", headers=headers)) == "VALIDATION_FAILED"
    assert client.get("/api/v1/waste/items?q=a&limit=0", headers=headers).status_code == 422
    assert client.get("/api/v1/waste/items?q=a&limit=x", headers=headers).status_code == 400


def test_every_guide_is_found_first_by_its_own_name():
    from shared.waste.search import index, spelling

    misses = []
    for guide in index.current().guides.values():
        top = rules.search(guide["name"], limit=1)[0]
        if spelling.normalize(top["name"]) != spelling.normalize(guide["name"]):
            misses.append(guide["name"])
    assert misses == []


def test_a_stage_that_keeps_crashing_fails_the_job_with_a_reason(system, monkeypatch):
    """Retried by the broker, then dead-lettered: the job fails at once, not at the sweep."""
    from eventing import dead_letters

    client = system.app.test_client()
    headers = login(client)

    def crash(*_args, **_kwargs):
        raise RuntimeError("dictionary unavailable")

    monkeypatch.setattr(rules, "search", crash)
    _, response = run(client, system, headers, hint="페트병")
    error = response.get_json()["error"]
    assert error["code"] == "PROCESSING_FAILED"
    assert "identifying the item" in error["message"]
    assert "dictionary unavailable" not in error["message"]  # internals stay with operators
    [letter] = dead_letters.listing()
    assert letter["trigger"] == "classification_identify"
    assert "dictionary unavailable" in letter["error"]
    assert letter["attempts"] == system.registry["classification_identify"].delivery.retry + 1


# Dead letters as the release before typed messages recorded them (copied from its dead_letters
# table, the job id replaced): the event each stage had been handed when its Trigger gave up.
OLD_DEAD_LETTERS = {
    "image_analyze": {
        "specversion": "1.0",
        "id": "upload-JOB_ID",
        "source": "/growbin",
        "type": "kr.growbin.waste.uploaded",
        "subject": "JOB_ID",
        "time": "2026-12-03T17:50:14.838558+00:00",
        "data": {"job_id": "JOB_ID"},
    },
    "classification_identify": {
        "specversion": "1.0",
        "id": "918265db-7048-595c-b2ba-c85da3b04195",
        "source": "/growbin",
        "type": "kr.growbin.waste.analyzed",
        "subject": "JOB_ID",
        "time": "2026-12-03T17:50:16.691511+00:00",
        "data": {
            "job_id": "JOB_ID",
            "description": {
                "name": "페트병",
                "material": None,
                "category": None,
                "tags": [],
                "confidence": None,
            },
            "source": "hint",
        },
    },
    "feedback_generate": {
        "specversion": "1.0",
        "id": "e99a5dc6-6a34-5149-86e5-b7c1bf55eb74",
        "source": "/growbin",
        "type": "kr.growbin.waste.classified",
        "subject": "JOB_ID",
        "time": "2026-12-03T17:50:18.605539+00:00",
        "data": {
            "job_id": "JOB_ID",
            "guide_id": "item-guide-0003",
            "confidence": 0.78,
            "alternatives": [
                {"name": "음료 페트병", "guide_id": "item-guide-0631", "confidence": 0.78},
                {"name": "무색페트병(물병)", "guide_id": "item-guide-0632", "confidence": 0.729},
                {"name": "생수", "guide_id": "item-guide-0144", "confidence": 0.468},
            ],
            "situation_tags": [],
            "detected_name": "페트병",
        },
    },
    "result_save": {
        "specversion": "1.0",
        "id": "3c3c3b40-672e-5757-9ded-3d323cdbb3e7",
        "source": "/growbin",
        "type": "kr.growbin.waste.answered",
        "subject": "JOB_ID",
        "time": "2026-12-03T17:50:21.234053+00:00",
        "data": {
            "job_id": "JOB_ID",
            "status": "completed",
            "item": {"name": "무색페트병", "guide_id": "item-guide-0003"},
            "category": {"major": "재활용폐기물", "middle": "무색페트병"},
            "confidence": 0.78,
            "situation_tags": [],
            "disposal_steps": [
                "먹는 샘물과 음료를 담은 무색페트병은 무색페트병 수거함으로 배출합니다.",
                "라벨과 내용물을 제거하고 물로 헹군 후 압착하여 뚜껑을 닫아 배출합니다.",
            ],
            "cautions": [],
            "feedback": "무색페트병은(는) '무색페트병'(으)로 분리배출해요. "
            "먹는 샘물과 음료를 담은 무색페트병은 무색페트병 수거함으로 배출합니다.",
            "alternatives": [
                {"name": "음료 페트병", "guide_id": "item-guide-0631", "confidence": 0.78},
                {"name": "무색페트병(물병)", "guide_id": "item-guide-0632", "confidence": 0.729},
                {"name": "생수", "guide_id": "item-guide-0144", "confidence": 0.468},
            ],
            "source": {
                "title": "기후에너지환경부 생활폐기물 분리배출 누리집 품목사전",
                "dataset": "data.go.kr 15156866",
                "edition": "2026-12-03",
                "attribution": "기후에너지환경부 생활폐기물 분리배출 누리집과 분리배출 "
                "정보조회 서비스의 텍스트 정보를 가공한 데이터입니다.",
                "guide_id": "item-guide-0003",
            },
        },
    },
}


@pytest.mark.parametrize("trigger", sorted(OLD_DEAD_LETTERS))
def test_dead_letters_recorded_before_typed_messages_replay_to_completion(system, trigger):
    """A letter whose job is still running (its reaction never ran, or the job was restarted)
    goes through every later stage to the result."""
    from eventing import dead_letters
    from shared.core import db

    client = system.app.test_client()
    headers = login(client)
    job_id = start(client, headers, hint="페트병")["job_id"]
    assert jobs.advance(job_id, "queued")
    event = json.loads(json.dumps(OLD_DEAD_LETTERS[trigger]).replace("JOB_ID", job_id))
    with db.transaction() as conn:
        conn.execute(
            dead_letters.dead_letters.insert().values(
                id="old-letter",
                trigger=trigger,
                event_id=event["id"],
                event_type=event["type"],
                event=event,
                attempts=6,
                error="RuntimeError('down')",
                failed_at=db.now(),
            )
        )
    system.broker.replay("old-letter")
    assert system.broker.wait_idle(30)
    assert dead_letters.listing() == []  # replayed, and nothing failed again
    result = client.get(f"/api/v1/waste/result/{job_id}", headers=headers).get_json()
    assert result["status"] == "completed", result
    # Letters from before classification are classified again by today's search.
    classified = trigger not in ("image_analyze", "classification_identify")
    expected = "item-guide-0003" if classified else rules.search("페트병", limit=1)[0]["guide_id"]
    assert result["item"]["guide_id"] == expected


def test_messages_read_back_what_they_wrote_and_ids_follow_their_cause():
    from shared.core import events
    from shared.core.idempotency import derived_id

    classified = messages.Classified("j1", "item-guide-0003", 0.7, "페트병")
    sent = messages.event(classified, cause="e1")
    assert messages.parse(sent) == classified and sent["subject"] == "j1"
    assert sent["id"] == messages.event(classified, cause="e1")["id"]  # a redelivery
    assert sent["id"] != messages.event(classified, cause="e2")["id"]
    upload = messages.event(messages.Uploaded("j1"), cause="j1")
    assert upload["id"] == derived_id("j1", "upload")  # one per job: one analysis runs
    newer = events.make(messages.Uploaded.TYPE, {"job_id": "j1", "added_later": 1})
    assert messages.parse(newer) == messages.Uploaded("j1")
    with pytest.raises(TypeError):
        messages.parse(events.make(messages.Analyzed.TYPE, {"job_id": "j1"}))


def test_each_stage_reads_its_job_in_the_write_that_moves_it(client, system, fake_model):
    """The database round trips of one job's stages, counted where they are opened: a stage
    reads its job in the transaction that moves it (jobs.enter), and the analysis records
    what it saw and what the model cost in one write."""
    import threading
    from collections import Counter

    from sqlalchemy import event

    from shared.core import db

    headers = login(client)
    run(client, system, headers)  # the knowledge the stages read is built and cached
    connections, commits = Counter(), Counter()

    def stage() -> str:
        return threading.current_thread().name.rsplit("_", 1)[0]

    def connected(conn) -> None:
        connections[stage()] += 1

    def committed(conn) -> None:
        commits[stage()] += 1

    engine = db.engine()
    event.listen(engine, "engine_connect", connected)
    event.listen(engine, "commit", committed)
    try:
        _, response = run(client, system, headers, data=PHOTO + b"another photo")
    finally:
        event.remove(engine, "engine_connect", connected)
        event.remove(engine, "commit", committed)
    assert response.status_code == 200
    # (connections, commits). Each stage moves its job, reads it and deduplicates its delivery
    # (the check and the record) in one transaction. The analysis then reads the vision cache,
    # stores the description in a commit of its own (paid for: it must survive what follows),
    # then the image's hash and the tokens; classification reads the user's correction and the
    # model's stored choices in its first transaction, then stores the choice with its tokens;
    # feedback counts its tokens; saving moves the job through save to done with the result
    # and the record in one transaction.
    expected = {
        "image_analyze": (4, 3),
        "classification_identify": (2, 2),
        "feedback_generate": (2, 2),
        "result_save": (1, 1),
    }
    assert {name: (connections[name], commits[name]) for name in expected} == expected


def test_a_handled_delivery_runs_again_until_the_next_stage_took_its_event(system):
    """A stage deduplicates in the transaction that moves its job: the same delivery again
    runs the stage again while its emit may have been lost (the job has not moved past it),
    and is a duplicate once the next stage took the event."""
    from shared.core.idempotency import Delivery, Duplicate
    from shared.waste import pipeline
    from shared.waste.messages import Uploaded

    client = system.app.test_client()
    job_id = start(client, login(client), hint="페트병")["job_id"]
    delivery = Delivery("uploaded-1", "image_analyze")
    first = pipeline.analyze(Uploaded(job_id), delivery)
    assert first is not None
    assert pipeline.analyze(Uploaded(job_id), delivery) == first  # the emit was lost
    assert pipeline.classify(first, Delivery("analyzed-1", "classification_identify"))
    with pytest.raises(Duplicate):
        pipeline.analyze(Uploaded(job_id), delivery)
    # another id (a replay from outside) runs, and changes nothing
    assert pipeline.analyze(Uploaded(job_id), Delivery("uploaded-2", "image_analyze")) == first
    assert jobs.get(_job_row(job_id)["user_id"], job_id)["stage"] == "classify"

"""What an upload must be before it is analysed, and what is served afterwards (issue 18).

The hint path used to queue whatever bytes were uploaded (text, a zip, a 900-megapixel PNG, a
truncated JPEG) and serve them back as an image; an upload form could replace the stored image
after the analysis; and with no model and no hint, analyze handed out a form for a job that
could only fail.
"""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from conftest import error_code, login
from test_waste import MILK, PHOTO, fetch, start, upload

from shared.waste import images


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds almost none: a decompression bomb's
    header, with nothing behind it that a decoder could expand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def api(system):
    client = system.app.test_client()
    return client, login(client)


def _complete(client, headers, job_id):
    return client.post(f"/api/v1/waste/upload-complete/{job_id}", headers=headers)


def test_with_no_model_and_no_hint_analyze_asks_for_a_hint(api):
    client, headers = api
    body = {"content_type": "image/jpeg", "content_length": 100}
    for hint in (None, "  "):
        sent = {**body, **({"hint": hint} if hint is not None else {})}
        response = client.post("/api/v1/waste/analyze", json=sent, headers=headers)
        assert response.status_code == 422 and error_code(response) == "HINT_REQUIRED"
        assert "hint" in response.get_json()["error"]["details"]["fields"]
    stats = client.get("/api/v1/users/stats", headers=headers).get_json()
    assert stats["total_analyses"] == 0  # no job was made to fail later


@pytest.mark.parametrize(
    "data,content_type,status,code",
    [
        (b"just some text, not a photo", "image/jpeg", 422, "IMAGE_UNREADABLE"),
        (b"PK\x03\x04" + b"\x00" * 60, "image/png", 422, "IMAGE_UNREADABLE"),  # a zip
        (PHOTO[: len(PHOTO) // 2], "image/jpeg", 422, "IMAGE_UNREADABLE"),  # truncated
        (_png_header(30000, 30000), "image/png", 422, "IMAGE_UNREADABLE"),  # 900 MP
        (_png_header(8000, 7000), "image/png", 422, "IMAGE_UNREADABLE"),  # 56 MP
        (_png(), "image/jpeg", 415, "UNSUPPORTED_MEDIA_TYPE"),  # a PNG declared as JPEG
    ],
)
def test_upload_complete_refuses_what_is_not_the_declared_image(
    api, data, content_type, status, code
):
    client, headers = api
    created = start(client, headers, hint="페트병", data=data, content_type=content_type)
    began = time.monotonic()
    response = _complete(client, headers, created["job_id"])
    assert response.status_code == status and error_code(response) == code
    assert time.monotonic() - began < 2  # a bomb is refused from its header, not decoded
    view = client.get(f"/api/v1/waste/status/{created['job_id']}", headers=headers).get_json()
    assert view["status"] == "awaiting_upload"


def test_a_refused_upload_can_be_replaced_through_the_same_form(api, system):
    client, headers = api
    body = {"content_type": "image/jpeg", "content_length": len(PHOTO), "hint": "페트병"}
    created = client.post("/api/v1/waste/analyze", json=body, headers=headers).get_json()
    assert upload(client, created["upload"], PHOTO[:1000]).status_code == 204
    assert _complete(client, headers, created["job_id"]).status_code == 422
    assert upload(client, created["upload"], PHOTO).status_code == 204
    assert _complete(client, headers, created["job_id"]).status_code == 202
    assert system.broker.wait_idle(30)
    result = client.get(f"/api/v1/waste/result/{created['job_id']}", headers=headers)
    assert result.get_json()["status"] == "completed"


def test_an_upload_after_completion_does_not_replace_what_was_analysed(api, system):
    client, headers = api
    created = start(client, headers, hint="우유팩", data=MILK)
    job_id = created["job_id"]
    assert _complete(client, headers, job_id).status_code == 202
    assert system.broker.wait_idle(30)
    replacement = PHOTO[: min(len(PHOTO), len(MILK)) - 1]
    assert upload(client, created["upload"], replacement).status_code == 204  # the form works
    result = client.get(f"/api/v1/waste/result/{job_id}", headers=headers).get_json()
    assert result["status"] == "completed"
    assert fetch(client, result["image_url"]).data == MILK
    history = client.get("/api/v1/users/history", headers=headers).get_json()["items"]
    assert fetch(client, history[0]["image_url"]).data == MILK


def test_check_reads_only_the_header_of_an_image_over_the_pixel_bound(monkeypatch):
    from PIL import ImageFile

    def decoded(*_args):
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    with pytest.raises(images.UnreadableImage, match="pixels"):
        images.check(_png_header(8000, 7000), "image/png")


def test_a_503_from_upload_complete_means_the_analysis_was_not_queued(api, system, monkeypatch):
    """Recording "queued" fails after the event is out (Redis gone that instant): the answer
    is 202, since the analysis runs; it was 503 while the job went on to complete."""
    import redis

    from shared.waste import jobs

    client, headers = api
    created = start(client, headers, hint="우유팩", data=MILK)
    real = jobs.advance

    def advance(job_id, stage):
        if stage == "queued":
            raise redis.ConnectionError("Redis went away")
        return real(job_id, stage)

    monkeypatch.setattr(jobs, "advance", advance)
    assert _complete(client, headers, created["job_id"]).status_code == 202
    assert system.broker.wait_idle(30)
    result = client.get(f"/api/v1/waste/result/{created['job_id']}", headers=headers)
    assert result.get_json()["status"] == "completed"


def test_upload_complete_retried_after_a_failure_reads_the_forms_object(api, system, monkeypatch):
    """The analysed copy was made, then the event could not be sent (503); a new upload through
    the form before the retry is what gets analysed."""
    from shared.waste import messages

    client, headers = api
    size = max(len(PHOTO), len(MILK))
    body = {"content_type": "image/jpeg", "content_length": size, "hint": "우유팩"}
    created = client.post("/api/v1/waste/analyze", json=body, headers=headers).get_json()
    assert upload(client, created["upload"], MILK).status_code == 204

    def broker_down(*_args, **_kwargs):
        raise RuntimeError("the broker is away")

    with monkeypatch.context() as outage:
        outage.setattr(messages, "emit", broker_down)
        assert _complete(client, headers, created["job_id"]).status_code == 500
    assert upload(client, created["upload"], PHOTO).status_code == 204
    assert _complete(client, headers, created["job_id"]).status_code == 202
    assert system.broker.wait_idle(30)
    result = client.get(f"/api/v1/waste/result/{created['job_id']}", headers=headers).get_json()
    assert fetch(client, result["image_url"]).data == PHOTO

"""Odd input ends in the contract's answer at the edge, the same on both backends (issue 18).

Each case here was a 500 (psycopg's DataError on a NUL, werkzeug's RequestEntityTooLarge, an
OverflowError in the cursor, Infinity in a JSON column) or an answer outside the contract
(any Content-Type read as JSON, logout's 204 typed text/html). The `api` fixture runs every
test on the embedded default and, in CI, on PostgreSQL and Redis.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from conftest import error_code, login

from shared.core.registry import JSON_BODY_LIMIT


@pytest.fixture
def api(system_on):
    client = system_on.app.test_client()
    return client, login(client)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/v1/waste/status/a%00b"),
        ("GET", "/api/v1/waste/result/a%00b"),
        ("POST", "/api/v1/waste/upload-complete/a%00b"),
        ("GET", "/api/v1/waste/items/a%00b"),
        ("GET", "/api/v1/locations/bins/a%00b"),
    ],
)
def test_an_id_holding_a_nul_names_nothing(api, method, path):
    client, headers = api
    response = client.open(path, method=method, headers=headers)
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"


@pytest.mark.parametrize(
    "method,path,body,field",
    [
        ("POST", "/api/v1/waste/upload-complete", {"job_id": "a\x00b"}, "job_id"),
        ("PUT", "/api/v1/users/profile", {"nickname": "a\x00b"}, "nickname"),
        ("PUT", "/api/v1/users/profile", {"preferences": {"k\x00": 1}}, "preferences.k\x00"),
        ("PUT", "/api/v1/users/profile", {"preferences": {"k": ["x", "\x00"]}}, "preferences.k.1"),
        (
            "POST",
            "/api/v1/waste/analyze",
            {"content_type": "image/jpeg", "content_length": 10, "hint": "페트\x00병"},
            "hint",
        ),
    ],
)
def test_a_body_holding_a_nul_is_422_naming_the_field(api, method, path, body, field):
    client, headers = api
    response = client.open(path, method=method, json=body, headers=headers)
    assert response.status_code == 422 and error_code(response) == "VALIDATION_FAILED"
    assert field in response.get_json()["error"]["details"]["fields"]


def test_the_unauthenticated_dev_login_refuses_a_nul(api):
    client, _ = api
    response = client.post("/api/v1/auth/login/dev", json={"user": "al\x00ice"})
    assert response.status_code == 422 and error_code(response) == "VALIDATION_FAILED"
    ua = client.post(
        "/api/v1/auth/login/dev", json={"user": "alice"}, headers={"User-Agent": "x\x00y"}
    )
    assert ua.status_code == 422 and error_code(ua) == "VALIDATION_FAILED"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/locations/navigation?from_lat=37.5&from_lng=127.0&bin_id=a%00b",
        "/api/v1/users/history?cursor=a%00b",
        "/api/v1/waste/items?q=%00",
    ],
)
def test_a_query_holding_a_nul_is_422(api, path):
    client, headers = api
    response = client.get(path, headers=headers)
    assert response.status_code == 422 and error_code(response) == "VALIDATION_FAILED"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("0001-01-01T00:00:00+14:00|x"),  # before year 1 in UTC
        _cursor("9999-12-31T23:59:59-14:00|x"),  # after 9999 in UTC
        _cursor("2026-01-01T00:00:00+00:00|a\x00b"),  # a NUL inside the cursor
    ],
)
def test_a_cursor_the_stores_cannot_compare_is_refused(api, cursor):
    client, headers = api
    response = client.get(f"/api/v1/users/history?cursor={cursor}", headers=headers)
    assert response.status_code == 400 and error_code(response) == "BAD_REQUEST"
    assert "cursor" in response.get_json()["error"]["details"]["fields"]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "[1e999]"])
def test_a_number_that_parses_as_infinity_is_422_and_nothing_is_stored(api, number):
    client, headers = api
    raw = '{"preferences": {"x": NUMBER}}'.replace("NUMBER", number)
    response = client.put(
        "/api/v1/users/profile", data=raw, content_type="application/json", headers=headers
    )
    assert response.status_code == 422 and error_code(response) == "VALIDATION_FAILED"
    profile = client.get("/api/v1/users/profile", headers=headers)
    assert profile.status_code == 200 and profile.get_json()["preferences"] == {}
    json.loads(profile.get_data(as_text=True))  # still valid JSON


def test_a_json_body_over_the_limit_is_413_in_the_contract_shape(api):
    client, headers = api
    huge = json.dumps({"nickname": "x" * (JSON_BODY_LIMIT + 1)})
    response = client.put(
        "/api/v1/users/profile", data=huge, content_type="application/json", headers=headers
    )
    assert response.status_code == 413 and error_code(response) == "PAYLOAD_TOO_LARGE"
    # Larger than the local server's own bound (werkzeug's RequestEntityTooLarge): the same.
    larger = b'{"nickname": "' + b"x" * (13 * 1024 * 1024) + b'"}'
    response = client.put(
        "/api/v1/users/profile", data=larger, content_type="application/json", headers=headers
    )
    assert response.status_code == 413 and error_code(response) == "PAYLOAD_TOO_LARGE"


def test_a_chunked_body_over_the_limit_is_413_not_cut_short(api):
    client, headers = api
    body = b'{"nickname": "' + b"x" * (JSON_BODY_LIMIT * 2) + b'"}'
    response = client.put(
        "/api/v1/users/profile",
        input_stream=io.BytesIO(body),
        headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413 and error_code(response) == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x", None]
)
def test_a_body_that_is_not_json_is_415(api, content_type):
    client, headers = api
    sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
    response = client.put("/api/v1/users/profile", data='{"nickname": "bob"}', headers=sent)
    assert response.status_code == 415 and error_code(response) == "UNSUPPORTED_MEDIA_TYPE"
    assert client.get("/api/v1/users/profile", headers=headers).get_json()["nickname"] != "bob"


def test_json_with_a_charset_or_a_json_suffix_is_json(api):
    client, headers = api
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = client.put(
            "/api/v1/users/profile",
            data='{"nickname": "bob"}',
            headers={**headers, "Content-Type": content_type},
        )
        assert response.status_code == 200, response.get_data(as_text=True)


def test_logout_answers_204_without_a_content_type(api):
    client, headers = api
    response = client.post("/api/v1/auth/logout", headers=headers)
    assert response.status_code == 204
    assert "Content-Type" not in response.headers and response.data == b""


def test_an_unanswering_broker_ingress_is_a_503_within_seconds():
    """On the cluster upload-complete emits to K_SINK: an ingress that accepts and never
    answers, or answers 5xx, is 503 UNAVAILABLE within SEND_TIMEOUT, not 500 after 10 s."""
    import socket
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from shared.core import events
    from shared.core.errors import ApiError

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    began = time.monotonic()
    with pytest.raises(ApiError) as refused:
        events.HttpSink(f"http://127.0.0.1:{silent.getsockname()[1]}/")(events.make("t", {}))
    assert refused.value.status == 503 and time.monotonic() - began < 6
    silent.close()

    class Failing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ApiError) as refused:
            events.HttpSink(f"http://127.0.0.1:{server.server_port}/")(events.make("t", {}))
        assert refused.value.status == 503 and refused.value.code == "UNAVAILABLE"
    finally:
        server.shutdown()

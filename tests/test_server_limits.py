"""The local server's own refusals (a request line or a header over 64 KiB) answer in the
contract's error shape, not http.server's HTML page (issue 18)."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from flask import Flask
from werkzeug.serving import make_server

from knative.server import ContractHandler


@pytest.fixture
def server():
    app = Flask("limits")
    app.get("/")(lambda: "ok")
    running = make_server("127.0.0.1", 0, app, threaded=True, request_handler=ContractHandler)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running.server_port
    running.shutdown()


def _send(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    "raw,status,code",
    [
        (b"GET /?q=" + b"x" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI_TOO_LONG"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 70_000 + b"\r\n\r\n",
            431,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
        ),
    ],
)
def test_the_servers_own_refusals_are_in_the_contract_shape(server, raw, status, code):
    got, headers, body = _send(server, raw)
    assert got == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]


def test_an_ordinary_request_still_passes(server):
    status, _, body = _send(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == b"ok"

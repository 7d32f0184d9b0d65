"""Each backend (object store, cache, event sink) is chosen once per process, from the settings."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests
from conftest import reset_clients

from shared.core import cache, events, storage
from shared.core.errors import ApiError


def test_the_object_store_is_a_directory_unless_a_bucket_is_set(env):
    store = storage.backend()
    assert isinstance(store, storage.Directory)
    assert storage.backend() is store  # decided once, not per call
    env.setenv("S3_BUCKET", "growbin-test")
    assert storage.backend() is store  # settings are read at first use only
    storage.backend.cache_clear()
    from shared.core import settings

    settings.settings.cache_clear()
    s3 = storage.backend()
    assert isinstance(s3, storage.S3) and s3.bucket == "growbin-test"


def test_the_cache_is_in_process_unless_redis_is_set(env):
    client = cache.client()
    assert isinstance(client, cache.Memory)
    assert cache.client() is client


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    status = 202

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def k_sink(env):
    _Recorder.received, _Recorder.status = [], 202
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env.setenv("K_SINK", f"http://127.0.0.1:{server.server_port}/")
    yield _Recorder
    server.shutdown()
    server.server_close()


def test_emit_posts_binary_cloudevents_to_k_sink(k_sink):
    events.emit(events.make("kr.growbin.test", {"n": 1}, event_id="e1", subject="s"))
    sink = events.sink()
    assert isinstance(sink, events.HttpSink) and events.sink() is sink  # chosen once
    ((headers, body),) = k_sink.received
    assert headers["ce-id"] == "e1" and headers["ce-type"] == "kr.growbin.test"
    assert headers["ce-subject"] == "s" and body == b'{"n": 1}'
    k_sink.status = 500
    with pytest.raises(ApiError) as down:  # the broker is down behind its ingress: 503, retried
        events.emit(events.make("kr.growbin.test", {}))
    assert down.value.status == 503 and down.value.code == "UNAVAILABLE"
    k_sink.status = 400
    with pytest.raises(requests.HTTPError):  # the broker refused: the stage fails and is retried
        events.emit(events.make("kr.growbin.test", {}))


def test_the_local_broker_takes_events_unless_k_sink_is_set(env, k_sink):
    published = []
    events.connect(published.append)
    try:
        events.emit(events.make("kr.growbin.test", {}, event_id="e2"))
        assert published == [] and len(k_sink.received) == 1  # K_SINK wins, as on the cluster
        env.delenv("K_SINK")
        reset_clients()
        events.emit(events.make("kr.growbin.test", {}, event_id="e3"))
        assert [e["id"] for e in published] == ["e3"] and len(k_sink.received) == 1
    finally:
        events.connect(None)


def test_with_no_sink_emitting_fails_clearly(env):
    with pytest.raises(RuntimeError, match="K_SINK"):
        events.emit(events.make("kr.growbin.test", {}))

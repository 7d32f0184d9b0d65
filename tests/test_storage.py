"""Object storage: presigned POST forms bounded by type, size and expiry, locally and on S3."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
import requests
from conftest import IMAGES, error_code, reset_clients

from shared.core import storage

PHOTO = (IMAGES / "plastic" / "plastic1.jpg").read_bytes()


def _post_local(client, form, data=PHOTO, content_type="image/jpeg"):
    fields = dict(form["fields"])
    fields["file"] = (io.BytesIO(data), "photo", content_type)
    return client.post(storage.UPLOAD_PATH, data=fields, content_type="multipart/form-data")


def test_local_form_accepts_the_declared_upload(client):
    form = storage.presign_upload("uploads/u1/j1", "image/jpeg", len(PHOTO))
    assert form["url"].endswith(storage.UPLOAD_PATH) and form["method"] == "POST"
    assert _post_local(client, form).status_code == 204
    assert storage.head("uploads/u1/j1") == {"size": len(PHOTO), "content_type": "image/jpeg"}
    assert storage.read("uploads/u1/j1") == PHOTO
    url = storage.presign_download("uploads/u1/j1")
    response = client.get(url.replace("http://localhost", ""))
    assert response.status_code == 200 and response.data == PHOTO
    assert client.get(url.replace("http://localhost", "")[:-3] + "abc").status_code == 403


def test_local_form_refuses_what_it_was_not_signed_for(client):
    form = storage.presign_upload("uploads/u1/j2", "image/png", 1000)
    response = _post_local(client, form, content_type="image/png")
    assert response.status_code == 413 and error_code(response) == "PAYLOAD_TOO_LARGE"
    response = _post_local(client, form, data=b"x" * 10, content_type="image/jpeg")
    assert response.status_code == 415 and error_code(response) == "UNSUPPORTED_MEDIA_TYPE"
    tampered = {**form, "fields": {**form["fields"], "key": "uploads/other/j"}}
    assert _post_local(client, tampered, data=b"x", content_type="image/png").status_code == 403
    expired = storage.presign_upload("uploads/u1/j3", "image/png", 1000, expires_in=-1)
    response = _post_local(client, expired, data=b"x", content_type="image/png")
    assert response.status_code == 409 and error_code(response) == "UPLOAD_EXPIRED"
    assert storage.head("uploads/u1/j2") is None and storage.head("uploads/u1/j3") is None


def test_the_local_upload_endpoint_serves_only_the_directory_store(env):
    """With a bucket set, the dev server plays no part in uploads: S3 checks its own forms."""
    from knative import objects
    from shared.core.errors import ApiError

    form = storage.presign_upload("uploads/u1/j4", "image/png", 1000)
    env.setenv("S3_BUCKET", "growbin-elsewhere")
    reset_clients()
    with pytest.raises(ApiError) as refused:
        objects.accept_upload(form["fields"], b"x", "image/png")
    assert refused.value.status == 404


def test_keys_cannot_escape_the_store(env):
    from shared.core.errors import ApiError

    with pytest.raises(ApiError):
        storage.put("../outside", b"x", "image/png")


@pytest.mark.services
def test_s3_presigned_post_is_enforced_by_s3(services):
    form = storage.presign_upload("uploads/u1/j1", "image/jpeg", len(PHOTO))
    files = {"file": ("photo.jpg", PHOTO, "image/jpeg")}
    assert requests.post(form["url"], data=form["fields"], files=files, timeout=10).ok
    assert storage.head("uploads/u1/j1")["size"] == len(PHOTO)
    assert storage.read("uploads/u1/j1") == PHOTO
    assert storage.list_keys("uploads/u1/") == ["uploads/u1/j1"]
    storage.delete(["uploads/u1/j1"])
    assert storage.head("uploads/u1/j1") is None
    # moto does not enforce POST policies (S3 does), so check what we ask S3 to enforce;
    # upload-complete re-checks type and size against the job either way.
    small = storage.presign_upload("uploads/u1/j2", "image/jpeg", 100)
    policy = json.loads(base64.b64decode(small["fields"]["policy"]))
    assert ["content-length-range", 1, 100] in policy["conditions"]
    assert {"Content-Type": "image/jpeg"} in policy["conditions"]
    assert {"key": "uploads/u1/j2"} in policy["conditions"]


def test_cache_ttl_semantics_in_memory(env):
    from shared.core import cache

    c = cache.client()
    c.set("k", "v", ex=1)
    assert c.get("k") == "v" and 0 <= c.ttl("k") <= 1
    assert c.set("k", "other", nx=True) is None
    time.sleep(1.05)
    assert c.get("k") is None and c.ttl("k") == -2
    assert [cache.hit_rate_limit("rl", 2, 60) for _ in range(3)][:2] == [None, None]
    assert cache.hit_rate_limit("rl", 2, 60) > 0


def test_a_pipeline_runs_its_commands_together_at_execute_in_memory(env):
    from shared.core import cache

    c = cache.client()
    listener = c.pubsub()
    listener.subscribe("ch")
    c.set("gone", "x")
    with c.pipeline() as tx:
        tx.set("k", "v", ex=60).delete("gone").publish("ch", "hello")
        assert c.get("k") is None  # queued, not run
        assert c.get("gone") == "x" and listener.get_message(True) is None
        assert tx.execute() == [True, 1, 1]
    assert c.get("k") == "v" and c.get("gone") is None and 0 < c.ttl("k") <= 60
    assert listener.get_message(True, timeout=1)["data"] == "hello"
    with c.pipeline() as tx:
        tx.set("k", "dropped")  # left without execute: nothing runs
    assert c.get("k") == "v"


@pytest.mark.services
def test_cache_ttl_semantics_on_redis(services):
    from shared.core import cache

    c = cache.client()
    c.set("growbin-test:k", "v", ex=1)
    assert c.get("growbin-test:k") == "v"
    assert c.set("growbin-test:k", "other", nx=True) is None
    time.sleep(1.1)
    assert c.get("growbin-test:k") is None


def _lane_client_id(c) -> int:
    """The Redis client id of the connection the next MGET takes (the lane's last pushed)."""
    connection = c._idle[-1]
    connection.send_command("CLIENT", "ID")
    return connection.read_response()


def _kill(client_id: int) -> None:
    import redis

    from shared.core import settings

    with redis.Redis.from_url(settings.settings().redis_url) as admin:
        assert admin.client_kill_filter(_id=client_id) == 1


@pytest.mark.services
def test_mget_on_redis_reads_as_redis_py_does_and_outlives_a_dropped_connection(services):
    """The status poll's MGET is sent on a kept connection, without redis-py's wrapping
    (shared/core/redis_client): the same answers, either call form; a kept connection Redis
    closed is retried once on a new one, not an error, and stays kept."""
    import redis

    from shared.core import cache

    c = cache.client()
    keys = ["growbin-test:a", "growbin-test:missing", "growbin-test:b"]
    c.set(keys[0], "가"), c.set(keys[2], "b")
    try:
        expected = redis.Redis.mget(c, keys)  # redis-py's own, through execute_command
        assert expected == ["가", None, "b"]
        assert c.mget(keys) == expected and c.mget(*keys) == expected
        assert c._made == 1  # one thread, one kept connection, reused
        ours = _lane_client_id(c)
        _kill(ours)
        assert c.mget(keys) == expected  # the dropped connection retried once
        assert c._made == 1 and _lane_client_id(c) != ours
    finally:
        c.delete(*keys)


@pytest.mark.services
def test_mget_gives_up_after_one_retry_and_recovers(services):
    """A second connection error in the same call is the caller's (a 503 upstream); the
    kept connection is not lost: the next call reconnects."""
    import redis

    from shared.core import cache

    c = cache.client()
    c.set("growbin-test:x", "1")
    try:
        assert c.mget(["growbin-test:x"]) == ["1"]
        connection = c._idle[-1]
        failures = []

        def dropped(*args, **kwargs):
            failures.append(args)
            connection.disconnect()
            raise redis.ConnectionError("dropped")

        connection.send_command = dropped
        with pytest.raises(redis.ConnectionError):
            c.mget(["growbin-test:x"])
        assert len(failures) == 2  # the first try and one retry, no more
        del connection.send_command  # redis-py's own again
        assert c.mget(["growbin-test:x"]) == ["1"] and c._idle == [connection]
    finally:
        c.delete("growbin-test:x")


@pytest.mark.services
def test_a_call_broken_between_send_and_read_leaves_no_reply_for_the_next(services):
    """What the pool's readiness check guarded: a call that sent MGET and failed before
    reading its reply must not hand that reply to the next call on the kept connection."""
    from shared.core import cache

    c = cache.client()
    c.set("growbin-test:first", "1"), c.set("growbin-test:second", "2")
    try:
        assert c.mget(["growbin-test:first"]) == ["1"]
        connection = c._idle[-1]

        def interrupted(*args, **kwargs):
            raise RuntimeError("interrupted before the reply was read")

        connection.read_response = interrupted
        with pytest.raises(RuntimeError):
            c.mget(["growbin-test:first"])
        del connection.read_response  # redis-py's own again
        assert c.mget(["growbin-test:second"]) == ["2"]
    finally:
        c.delete("growbin-test:first", "growbin-test:second")


@pytest.mark.services
def test_a_forked_process_makes_its_own_connection(services):
    """A gunicorn worker forked after the parent polled must not talk on the parent's socket:
    it makes a connection of its own, and the parent's still answers afterwards."""
    import os

    from shared.core import cache

    c = cache.client()
    c.set("growbin-test:f", "v")
    try:
        assert c.mget(["growbin-test:f"]) == ["v"]
        parent = c._idle[-1]
        parent_id = _lane_client_id(c)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running pytest's teardown
            code = 1
            try:
                answered = c.mget(["growbin-test:f"]) == ["v"]
                mine = c._idle[-1]
                fresh = mine is not parent and _lane_client_id(c) != parent_id
                code = 0 if answered and fresh and c._made == 1 else 2
            finally:
                os.write(write, bytes([code]))
                os._exit(0)
        os.close(write)
        code = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
        assert code == bytes([0])
        assert c.mget(["growbin-test:f"]) == ["v"] and c._idle[-1] is parent
        assert _lane_client_id(c) == parent_id  # the child closed only its copy of the socket
    finally:
        c.delete("growbin-test:f")

"""The local runtime serves every declared route by the ALB path map, in the contract's shape."""

from __future__ import annotations

import os
import re

from conftest import error_code, login

from functions import load_all
from shared.core.deployment import ALB_PATHS
from shared.core.registry import REGISTRY


def _example_path(template: str) -> str:
    return re.sub(r"\{\w+\}", "x1", template)


def test_every_protected_route_answers_401_not_404(client):
    protected = [f for f in load_all().values() if f.kind == "http" and f.auth]
    assert protected
    for function in protected:
        response = client.open(_example_path(function.path), method=function.method)
        assert response.status_code == 401, (function.name, response.get_data(as_text=True))
        assert error_code(response) == "UNAUTHENTICATED"
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_routes_stay_on_the_alb_path_map():
    for function in load_all().values():
        if function.kind == "http":
            assert function.path.startswith(ALB_PATHS), function.path


def test_unknown_paths_and_wrong_methods_in_contract_shape(client):
    response = client.get("/api/v1/waste/nothing-here")
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    response = client.get("/somewhere/else")
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    response = client.delete("/api/v1/auth/me")
    assert response.status_code == 405 and error_code(response) == "METHOD_NOT_ALLOWED"
    assert "GET" in response.headers["Allow"]


def test_bad_bodies_get_400_and_422(client):
    response = client.post("/api/v1/auth/login/dev", data="{nope", content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "BAD_REQUEST"
    response = client.post("/api/v1/auth/login/dev", json={"user": 12})
    assert response.status_code == 400 and error_code(response) == "BAD_REQUEST"
    response = client.post("/api/v1/auth/login/dev", json={"user": ""})
    assert response.status_code == 422 and error_code(response) == "VALIDATION_FAILED"
    assert "user" in response.get_json()["error"]["details"]["fields"]
    response = client.post("/api/v1/auth/login/dev", json={})
    assert response.status_code == 422
    assert "user" in response.get_json()["error"]["details"]["fields"]
    response = client.post("/api/v1/auth/login/dev", json={"user": "a", "admin": True})
    assert response.status_code == 422
    assert "admin" in response.get_json()["error"]["details"]["fields"]


def test_unexpected_failure_is_500_internal_with_logged_id(client, caplog, monkeypatch):
    from shared.auth import accounts

    def broken(*_a, **_k):
        raise ZeroDivisionError("boom")

    headers = login(client)
    monkeypatch.setattr(accounts, "get", broken)
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 500 and error_code(response) == "INTERNAL"
    error_id = response.get_json()["error"]["details"]["error_id"]
    assert error_id in caplog.text and "Traceback" not in response.get_data(as_text=True)


def test_dependency_down_is_503_with_retry_after(client, monkeypatch):
    import sqlalchemy.exc

    from shared.auth import accounts

    def down(*_a, **_k):
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    headers = login(client)
    monkeypatch.setattr(accounts, "get", down)
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 503 and error_code(response) == "UNAVAILABLE"
    assert int(response.headers["Retry-After"]) > 0


def test_path_parameters_reach_the_function_parsed(system):
    from shared.core.registry import _path_pattern

    match = _path_pattern("/api/v1/waste/status/{job_id}").match("/api/v1/waste/status/j-42")
    assert match.groupdict() == {"job_id": "j-42"}
    assert _path_pattern("/api/v1/waste/items").match("/api/v1/waste/items/x") is None


def test_function_names_are_unique_across_modules():
    names = [f.name for f in load_all().values()]
    assert len(names) == len(set(names)) == len(REGISTRY)


def test_openapi_document_is_served_and_valid(client):
    from openapi_spec_validator import validate

    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    declared = {(f.method.lower(), f.path) for f in load_all().values() if f.kind == "http"}
    served = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert served == declared


def test_login_dev_exists_only_in_local_mode(env):
    env.setenv("GROWBIN_MODE", "cluster")
    from conftest import reset_clients

    reset_clients()
    from knative.server import create_app

    app = create_app(load_all())
    response = app.test_client().post("/api/v1/auth/login/dev", json={"user": "mallory"})
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"


def test_importing_a_function_module_leaves_heavy_clients_unloaded():
    """Cold start: openai, boto3, the image decoders and the migration tooling load only when
    a call needs them."""
    import subprocess
    import sys

    from functions import MODULES

    script = (
        "import importlib, sys; importlib.import_module(sys.argv[1]); "
        "heavy = ('openai', 'boto3', 'alembic', 'yaml', 'requests', 'PIL', 'pillow_heif', "
        "'icalendar', 'opentelemetry'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    import importlib.util

    for module in MODULES:
        if importlib.util.find_spec(f"functions.{module}") is None:
            continue
        loaded = subprocess.run(
            [sys.executable, "-c", script, f"functions.{module}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert loaded == "", f"functions.{module} imports {loaded} at import time"


def test_the_status_poll_starts_without_the_database_layer():
    """Cold start: the status poll's module (what its Service loads) and the caller check import
    no SQLAlchemy or database driver; they load on a cache miss only."""
    import subprocess
    import sys

    script = (
        "import sys, functions.status; "
        "print(','.join(m for m in ('sqlalchemy', 'psycopg', 'alembic', 'shared.core.db') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"functions.status imports {loaded} at import time"


def test_the_redis_client_starts_without_the_opentelemetry_sdk():
    """Cold start: redis-py 8 imports the OpenTelemetry SDK's metrics (50-60 ms) whenever they
    are installed, for an instrumentation growbin does not use; the cache keeps them out, and
    the SDK still loads where telemetry exports."""
    import subprocess
    import sys

    script = (
        "import sys, functions.status; from shared.core import cache; cache.client(); "
        "print(','.join(m for m in sys.modules if m.startswith('opentelemetry.sdk')) or '-'); "
        "import opentelemetry.sdk.metrics; print('loaded')"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/0"},  # no connection is made
    ).stdout.split()
    assert out == ["-", "loaded"]


def test_the_dev_endpoints_play_the_broker_and_func_invoke(system):
    from cloudevents.conversion import to_binary

    from knative.server import create_app
    from shared.core import events

    client = system.app.test_client()
    headers, body = to_binary(events.make("kr.growbin.nobody.listens", {"n": 1}))
    response = client.post("/_broker", headers=headers, data=body)
    assert response.status_code == 202 and response.get_json() == {"matched": 0}
    response = client.post("/_broker/dead-letters/nope/replay")
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    assert error_code(client.post("/_functions/nope")) == "NOT_FOUND"
    response = client.post("/_functions/waste_status")
    assert response.status_code == 400 and error_code(response) == "BAD_REQUEST"
    brokerless = create_app(system.registry).test_client()
    response = brokerless.post("/_broker", headers=headers, data=body)
    assert response.status_code == 503 and error_code(response) == "UNAVAILABLE"
    assert brokerless.get("/healthz").get_json() == {"status": "ok"}

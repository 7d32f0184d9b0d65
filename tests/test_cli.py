"""The growbin command: invoke one function (HTTP or CloudEvent, binary or structured), migrate,
dead letters."""

from __future__ import annotations

import json
import sys

import pytest

from knative.cli import main


def _out(capsys) -> tuple[int, str]:
    lines = capsys.readouterr().out.strip().splitlines()
    return int(lines[0]), "\n".join(lines[1:])


def test_invoke_an_http_function_in_process(env, capsys):
    assert main(["invoke", "auth_login_dev", "--data", '{"user": "cli"}', "--local"]) == 0
    status, body = _out(capsys)
    assert status == 200
    token = json.loads(body)["access_token"]
    assert main(["invoke", "auth_me", "--token", token, "--local"]) == 0
    status, body = _out(capsys)
    assert status == 200 and json.loads(body)["nickname"] == "cli"
    assert (
        main(["invoke", "waste_status", "--param", "job_id=nope", "--token", token, "--local"]) == 1
    )
    status, body = _out(capsys)
    assert status == 404 and json.loads(body)["error"]["code"] == "NOT_FOUND"


def test_invoke_an_event_function_binary_and_structured(env, capsys):
    for mode in ([], ["--structured"]):
        assert (
            main(["invoke", "analytics_daily", "--data", '{"day": "2026-11-25"}', "--local", *mode])
            == 0
        )
        status, _ = _out(capsys)
        assert status == 204
    from sqlalchemy import select

    from shared.core import db
    from shared.ops import analytics

    with db.engine().connect() as conn:
        days = conn.execute(select(analytics.daily_analytics.c.day)).scalars().all()
    assert [d.isoformat() for d in days] == ["2026-11-25"]


def test_invoke_an_unknown_function_lists_the_known_ones(env, capsys):
    assert main(["invoke", "nope", "--local"]) == 2
    assert "waste_status" in capsys.readouterr().err


def test_migrate_and_dead_letters(env, capsys):
    assert main(["migrate"]) == 0
    assert main(["dead-letters"]) == 0
    assert "0 dead letter(s)" in capsys.readouterr().err


def test_jwks_prints_the_public_keys_other_functions_verify_with(env, capsys):
    from conftest import reset_clients

    from shared.auth import tokens

    assert main(["jwks"]) == 0
    printed = capsys.readouterr().out
    token, _ = tokens.issue_access("u1", "s1")
    env.setenv("JWT_PUBLIC_KEYS", printed)
    env.setenv("JWT_PRIVATE_KEY", "")  # a verifying function holds no private key
    reset_clients()
    assert json.loads(printed)["keys"][0]["alg"] == "ES256"
    assert tokens.verify(token).user_id == "u1"


def test_a_dev_only_command_in_the_image_says_it_needs_a_checkout(monkeypatch, capsys):
    """The image's wheel has no local server or renderers: say so instead of a traceback."""
    import knative

    monkeypatch.setitem(sys.modules, "knative.render.files", None)  # import fails as if absent
    assert main(["render", "--check"]) == 2
    assert "growbin render: runs from a checkout" in capsys.readouterr().err
    monkeypatch.delattr(knative, "local", raising=False)
    monkeypatch.setitem(sys.modules, "knative.local", None)
    assert main(["dev", "--port", "0"]) == 2
    assert "growbin dev: runs from a checkout" in capsys.readouterr().err


def test_grant_admin_sets_the_role_and_ends_the_sessions(env, capsys):
    from shared.auth import accounts, sessions
    from shared.core.errors import ApiError

    assert main(["migrate"]) == 0
    assert main(["grant-admin", "nobody"]) == 1
    user = accounts.find_or_create("dev", "ops", "ops")
    refresh = sessions.start(user)["refresh_token"]
    assert main(["grant-admin", user["id"]]) == 0
    assert accounts.get(user["id"])["role"] == "admin"
    with pytest.raises(ApiError):
        sessions.rotate(refresh)
    assert main(["grant-admin", user["id"], "--revoke"]) == 0
    assert accounts.get(user["id"])["role"] == "user"


@pytest.mark.parametrize(
    "argv,says",
    [
        (["invoke", "auth_me", "--url", "http://127.0.0.1:9"], "no server at http://127.0.0.1:9"),
        (["invoke", "waste_status", "--param", "job_id", "--local"], "not of the form name=value"),
        (["invoke", "waste_status", "--local"], "--param job_id=..."),
        (["invoke", "auth_login_dev", "--data", "{nope", "--local"], "--data is not JSON"),
        (["invoke", "auth_login_dev", "--data", "@/no/such/file", "--local"], "cannot read"),
    ],
)
def test_every_cli_error_is_one_clear_line_and_an_exit_code(env, capsys, argv, says):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"growbin {argv[0]}: ") and says in line
    assert "Traceback" not in captured.err


def test_an_unexpected_failure_is_one_line_too(env, capsys, monkeypatch):
    from shared.core import db

    def broken() -> None:
        raise RuntimeError("the database file is locked")

    monkeypatch.setattr(db, "migrate", broken)
    assert main(["migrate"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == "growbin migrate: RuntimeError: the database file is locked"


def test_invoking_an_event_function_says_what_it_did(env, capsys):
    assert main(["invoke", "cleanup_images", "--local"]) == 0
    status, said = _out(capsys)
    assert status == 204
    logged = [json.loads(line) for line in said.splitlines()]
    assert any(line["event"] == "cleanup_images" and "orphaned" in line for line in logged)

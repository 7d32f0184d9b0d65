"""schemathesis over every operation the OpenAPI document describes, against the in-process app.

The document is the one the app serves at `/api/v1/openapi.json`, read at collection so that
each operation is its own test: operations colleagues add are fuzzed without touching this
file. Each operation gets schemathesis' examples, coverage and fuzzing phases, with a valid
bearer token on protected operations; every response must be declared, in the declared
content type and headers, and match the declared schema; no 5xx but the contract's
503 PROVIDER_NOT_CONFIGURED for a sign-in provider without keys. Protected operations
without a token must answer 401 in the contract's shape.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from conftest import login
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from functions import load_all
from knative.server import OPENAPI_PATH, create_app

MAX_EXAMPLES = 40  # per operation and phase: the file stays well under a minute

# positive_data_acceptance expects every schema-valid request to succeed; the contract has
# rules JSON Schema does not express (a district must be a real 시군구, an unaccepted image type
# is 415 by contract rather than 422, cursors are opaque), so it is off. Every other check runs.
CONFIG = {"checks": {"positive_data_acceptance": {"enabled": False}}}
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one system per operation, shared by its cases
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)


class Tally:
    """What the run did; a pytest plugin for the run, so the totals end the terminal summary."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.operations: set[str] = set()

    def count(self, operation: str, status: int) -> None:
        self.operations.add(operation)
        self.statuses[status] += 1

    def summary(self) -> str:
        cases = sum(self.statuses.values())
        server_errors = sum(n for status, n in self.statuses.items() if status >= 500)
        spread = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return (
            f"schemathesis: {cases} cases over {len(self.operations)} operations, "
            f"{server_errors} 5xx ({spread})"
        )

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_line(self.summary())


@pytest.fixture(scope="module")
def tally(request):
    tally = Tally()
    request.config.pluginmanager.register(tally, "growbin-fuzz-tally")
    return tally


class Caller:
    """A signed-in user whose token stays valid: a case that ended the session (logout, account
    deletion) makes the next case sign in again, as a new user."""

    def __init__(self, client) -> None:
        self.client = client
        self.signed_in = 0
        self.token: str | None = None

    def headers(self) -> dict[str, str]:
        from shared.auth import sessions, tokens

        if self.token is None or not sessions.is_active(tokens.verify(self.token).session_id):
            self.signed_in += 1
            self.token = login(self.client, f"fuzz-{self.signed_in}")["Authorization"][7:]
        return {"Authorization": f"Bearer {self.token}"}


# The app holds no state of its own: settings, database and broker sink are the `system_on`
# fixture's, fresh for each operation and backend.
APP = create_app(load_all())
schema = schemathesis.openapi.from_wsgi(
    OPENAPI_PATH, APP, config=schemathesis.Config.from_dict(CONFIG)
)


@pytest.fixture
def caller(system_on):
    """On the embedded default and, where their URLs are set, on PostgreSQL and Redis: text a
    store cannot hold (NUL) fails differently on each."""
    return Caller(APP.test_client())


def _provider_not_configured(response) -> bool:
    """A sign-in provider without its keys here answers 503 PROVIDER_NOT_CONFIGURED, by
    contract (README, Auth): any well-formed login body the fuzzer sends reaches it."""
    return response.status_code == 503 and "PROVIDER_NOT_CONFIGURED" in response.text


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_answers_as_documented(case, caller, tally):
    headers = caller.headers() if case.operation.definition.raw.get("security") else {}
    response = case.call(headers=headers)
    tally.count(case.operation.label, response.status_code)
    expected_5xx = [not_a_server_error] if _provider_not_configured(response) else []
    case.validate_response(response, headers=headers, excluded_checks=expected_5xx)


@schema.parametrize()
@settings(FUZZ_SETTINGS, max_examples=3)
def test_protected_operations_refuse_a_missing_token(case, system, tally):
    if not case.operation.definition.raw.get("security"):
        pytest.skip("public operation")
    if case.method.upper() != case.operation.method.upper():
        return  # the coverage phase's other methods: the first test checks their 405
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    response = case.call()
    tally.count(case.operation.label, response.status_code)
    assert response.status_code == 401, (case.operation.label, response.text)
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "UNAUTHENTICATED", body
    assert response.headers.get("www-authenticate") == ["Bearer"]
    case.validate_response(response)  # the Error schema and the declared headers

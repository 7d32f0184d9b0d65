"""The one error shape of the contract, and the turning of any failure into it.

Functions raise `ApiError`; `as_api_error` turns that, or any unexpected exception, into the
`ApiError` whose body is `{"error": {"code", "message", "details"?}}` with the right status
(the registry's wrappers answer with it). A dependency that is down
becomes 503 UNAVAILABLE with Retry-After; anything else unexpected becomes 500 INTERNAL with an
id that is also in the structured log line, never a traceback in the body.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any

from shared.core import telemetry

log = logging.getLogger("growbin")


class ApiError(Exception):
    """An error the client should see, with its HTTP status and contract code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str, **details: Any) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message, details or None)


def validation_failed(fields: dict[str, str]) -> ApiError:
    names = ", ".join(sorted(fields))
    return ApiError(422, "VALIDATION_FAILED", f"invalid fields: {names}", {"fields": fields})


def unauthenticated(code: str = "UNAUTHENTICATED", message: str = "sign in first") -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} not found")


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def unavailable(message: str, retry_after: int = 5) -> ApiError:
    return ApiError(503, "UNAVAILABLE", message, headers={"Retry-After": str(retry_after)})


def _dependency_down(exc: BaseException) -> str | None:
    """Name the dependency an exception says is unreachable, without importing client libraries."""
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy and isinstance(exc, sqlalchemy.OperationalError | sqlalchemy.InterfaceError):
        return "database"
    if sqlalchemy and isinstance(exc, sqlalchemy.TimeoutError):
        return "database"
    redis = sys.modules.get("redis.exceptions")
    if redis and isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "cache"
    pika = sys.modules.get("pika.exceptions")
    if pika and isinstance(exc, pika.AMQPError):
        return "event broker"
    botocore = sys.modules.get("botocore.exceptions")
    # Refused, timed out connecting or reading, or cut off mid-answer.
    if botocore and isinstance(exc, botocore.ConnectionError | botocore.HTTPClientError):
        return "object storage"
    if botocore and isinstance(exc, botocore.ClientError) and _storage_failed(exc.response):
        return "object storage"
    return None


# S3's own failures, to wait out; a request S3 refused (403, 404, 400) is a bug, not an outage.
_S3_SERVER_ERRORS = frozenset({"InternalError", "ServiceUnavailable", "SlowDown"})


def _storage_failed(response: dict[str, Any]) -> bool:
    """Whether an S3 error answer is S3 failing (5xx, or a per-key error with a 5xx code)."""
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return status >= 500 or response.get("Error", {}).get("Code") in _S3_SERVER_ERRORS


def as_api_error(exc: BaseException, where: str) -> ApiError:
    """The contract error for any exception; unexpected ones are logged with an id."""
    if isinstance(exc, ApiError):
        return exc
    dependency = _dependency_down(exc)
    if dependency:
        log_event(
            "warning",
            "dependency_unavailable",
            function=where,
            dependency=dependency,
            error=repr(exc),
        )
        return unavailable(f"the {dependency} is unavailable, try again shortly")
    error_id = uuid.uuid4().hex
    log_event(
        "error",
        "unhandled_exception",
        function=where,
        error_id=error_id,
        error=repr(exc),
        exc_info=exc,
    )
    return ApiError(
        500, "INTERNAL", f"unexpected error, reference {error_id}", {"error_id": error_id}
    )


def log_event(level: str, event: str, exc_info: BaseException | None = None, **fields: Any) -> None:
    """One structured (JSON) log line; what operators search by the error id. Inside a span it
    carries the trace and span ids, so a trace's log lines are found by its id."""
    line = {"severity": level.upper(), "event": event, **telemetry.log_ids(), **fields}
    if exc_info is not None:
        import traceback

        line["traceback"] = "".join(traceback.format_exception(exc_info))
    getattr(log, level)(json.dumps(line, ensure_ascii=False, default=str))

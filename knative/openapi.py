"""The OpenAPI 3.1 document, derived from the declarations: routes, schemas, auth, errors.

The request schemas here are the ones the functions validate with, so the document cannot
drift from what is enforced. `growbin render` writes it to knative/manifests/openapi.json.
"""

from __future__ import annotations

import re
from typing import Any

from shared.core.registry import Function
from shared.core.validation import accepts_empty_body

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED, TOKEN_EXPIRED, TOKEN_REVOKED, TOKEN_REUSED or INVALID_STATE",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "Conflict (e.g. UPLOAD_MISSING, UPLOAD_EXPIRED)",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    429: "RATE_LIMITED (Retry-After)",
    500: "INTERNAL, with an error id that is in the logs",
    502: "PROVIDER_ERROR: a sign-in provider answered something unusable",
    503: "UNAVAILABLE: a dependency is down (Retry-After)",
}


# Headers the contract promises with some statuses; schemathesis checks them on every answer.
_RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
ERROR_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "the scheme to authenticate with",
            "required": True,
            "schema": {"const": "Bearer"},
        }
    },
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}


def _error_statuses(function: Function) -> list[int]:
    statuses = {422, 500, 503, *function.errors}  # 422: a header holding a NUL character
    if function.body is not None:
        statuses |= {413, 415}
    if function.body is not None or function.query is not None:
        statuses.add(400)
    if function.auth:
        statuses.add(401)
    if function.auth == "admin":
        statuses.add(403)
    if "{" in (function.path or ""):
        statuses.add(404)
    return sorted(statuses)


def _operation(function: Function) -> dict[str, Any]:
    domain = function.path.split("/")[3]
    operation: dict[str, Any] = {
        "operationId": function.name,
        "summary": function.summary,
        "tags": [domain],
        "responses": {},
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", function.path)
    ]
    if function.query:
        required = set(function.query.get("required", []))
        parameters += [
            {"name": name, "in": "query", "required": name in required, "schema": schema}
            for name, schema in function.query["properties"].items()
        ]
    if parameters:
        operation["parameters"] = parameters
    if function.body is not None:
        operation["requestBody"] = {
            # An empty body is read as {}: optional exactly when {} is valid (logout).
            "required": not accepts_empty_body(function.body),
            "content": {"application/json": {"schema": function.body}},
        }
    operation["security"] = [{"bearer": []}] if function.auth else []
    for status, schema in sorted(function.responses.items()):
        response: dict[str, Any] = {"description": REASONS.get(status, str(status))}
        if schema is not None:
            # A body other than JSON says its media type ("x-media-type": "text/calendar").
            media = schema.get("x-media-type", "application/json")
            shown = {k: v for k, v in schema.items() if k != "x-media-type"}
            response["content"] = {media: {"schema": shown}}
        operation["responses"][str(status)] = response
    for status in _error_statuses(function):
        reason = REASONS.get(status, "error")
        note = function.error_notes.get(status)
        response = {
            "description": f"{reason}; {note}" if note else reason,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status in ERROR_HEADERS:
            response["headers"] = ERROR_HEADERS[status]
        operation["responses"].setdefault(str(status), response)
    if function.local_only:
        operation["description"] = "Exists only in local mode; 404 in every other deployment."
    return operation


def document(registry: dict[str, Function]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for function in sorted(registry.values(), key=lambda f: (f.path or "", f.method or "")):
        if function.kind == "http":
            paths.setdefault(function.path, {})[function.method.lower()] = _operation(function)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "growbin API",
            "version": "1.0.0",
            "description": "What the growbin mobile app relies on. Every error has the "
            "shape of components.schemas.Error.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }

"""The local server: every HTTP function on one port, by the ALB path map and the route table.

On the cluster the ALB forwards `/api/v1/{auth,users,waste,locations}/*` and the Gateway
rewrites each route to its Knative Service; here one Flask app does both from the same
declarations (`api`). Besides the API it serves what the cluster's infrastructure would, each
part in one place: the local object store's upload form and signed downloads (S3's part,
knative/objects.py), and the broker's ingress, dead-letter replay, the direct function
endpoints `func invoke` would use and the health checks (knative/dev.py). Every failure, from
any part, leaves in the contract's error shape (`_failed`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler

from knative import dev, objects
from shared.core.deployment import ALB_PATHS
from shared.core.errors import ApiError, as_api_error
from shared.core.registry import Function, error_response, json_response

OPENAPI_PATH = "/api/v1/openapi.json"


def create_app(registry: dict[str, Function], broker: Any = None) -> Flask:
    app = Flask("growbin")
    app.config["MAX_CONTENT_LENGTH"] = 12 * 1024 * 1024  # the upload form's 10 MiB, plus fields
    app.register_blueprint(api(registry))
    app.register_blueprint(objects.endpoints)
    app.register_blueprint(dev.broker_endpoints(registry, broker))
    app.register_blueprint(dev.health)
    app.register_error_handler(Exception, _failed)
    return app


# ---- the API: the ALB path map -----------------------------------------------------------


def flask_rule(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def api(registry: dict[str, Function]) -> Blueprint:
    """Every HTTP function on its declared method and path, and the OpenAPI document."""
    blueprint = Blueprint("api", __name__)
    for function in registry.values():
        if function.kind != "http":
            continue
        if not function.path.startswith(ALB_PATHS):
            raise ValueError(f"{function.name}: {function.path} is outside the ALB path map")
        blueprint.add_url_rule(
            flask_rule(function.path),
            endpoint=function.name,
            view_func=_serve(function),
            methods=[function.method],
        )

    @blueprint.get(OPENAPI_PATH)
    def openapi() -> Response:
        from knative.openapi import document

        return json_response(document(registry))

    return blueprint


def _serve(function: Function):
    def view(**_params: str) -> Response:
        return function.handler(request._get_current_object())

    view.__name__ = function.name
    return view


# ---- errors -------------------------------------------------------------------------------


def _failed(exc: Exception) -> Response:
    """Flask's own refusals (no route, wrong method, too large) and any failure outside a
    function's wrapper, in the contract's error shape."""
    if isinstance(exc, HTTPException):
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.code or 500, "BAD_REQUEST"
        )
        headers = (
            {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        )
        message = {
            404: f"no route for {request.method} {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(exc.code or 500, exc.description or code)
        return error_response(ApiError(exc.code or 500, code, message, headers=headers))
    return error_response(as_api_error(exc, request.path))


# What the HTTP server itself refuses before the app sees the request (http.server's limits:
# a request line or a header line over 64 KiB, more than 100 headers), by the contract's codes.
_SERVER_CODES = {
    400: "BAD_REQUEST",
    414: "URI_TOO_LONG",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    501: "NOT_IMPLEMENTED",
    505: "HTTP_VERSION_NOT_SUPPORTED",
}


class ContractHandler(WSGIRequestHandler):
    """The local server's request handler: its own refusals (414, 431) in the contract's JSON
    error shape rather than http.server's HTML page."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        import json

        text = message or self.responses.get(code, ("error",))[0]
        error = {"code": _SERVER_CODES.get(code, "BAD_REQUEST"), "message": text}
        body = json.dumps({"error": error}).encode()
        self.log_error("code %d, message %s", code, text)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.close_connection = True
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code not in (204, 304):
            self.wfile.write(body)

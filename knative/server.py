"""The local server: every HTTP function on one port, by the ALB path map and the route table.

On the cluster the ALB forwards `/api/v1/{auth,users,waste,locations}/*` and the Gateway
rewrites each route to its Knative Service; here one Flask app does both from the same
declarations. Besides the API it serves what the cluster's infrastructure would: the local
object store's upload form and signed downloads (S3's part, knative/objects.py), the broker's
ingress and the direct function endpoints `func invoke` would use, and the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from cloudevents.http import from_http
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from knative import objects
from shared.core.errors import ApiError, as_api_error
from shared.core.registry import Function, error_response, json_response

ALB_PATHS = ("/api/v1/auth/", "/api/v1/users/", "/api/v1/waste/", "/api/v1/locations/")
OPENAPI_PATH = "/api/v1/openapi.json"


def flask_rule(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def create_app(registry: dict[str, Function], broker: Any = None) -> Flask:
    app = Flask("growbin")
    app.config["MAX_CONTENT_LENGTH"] = 12 * 1024 * 1024  # the upload form's 10 MiB, plus fields

    for function in registry.values():
        if function.kind != "http":
            continue
        if not function.path.startswith(ALB_PATHS):
            raise ValueError(f"{function.name}: {function.path} is outside the ALB path map")
        app.add_url_rule(
            flask_rule(function.path),
            endpoint=function.name,
            view_func=_serve(function),
            methods=[function.method],
        )

    app.register_blueprint(objects.endpoints)

    @app.get(OPENAPI_PATH)
    def openapi() -> Response:
        from knative.openapi import document

        return json_response(document(registry))

    @app.post("/_functions/<name>")
    def invoke(name: str) -> Response:
        """Call one function directly, as `func invoke` does: HTTP or CloudEvent."""
        function = registry.get(name)
        if function is None:
            raise ApiError(404, "NOT_FOUND", f"no function {name}")
        if function.kind == "http":
            raise ApiError(400, "BAD_REQUEST", "HTTP functions are invoked on their own path")
        function.handler(from_http(request.headers, request.get_data()))
        return Response(status=204)

    @app.post("/_broker")
    def ingress() -> Response:
        """The broker's ingress: a CloudEvent, binary or structured, to every matching Trigger."""
        if broker is None:
            raise ApiError(503, "UNAVAILABLE", "no broker in this process")
        matched = broker.publish(from_http(request.headers, request.get_data()))
        return json_response({"matched": matched}, 202)

    @app.post("/_broker/dead-letters/<letter_id>/replay")
    def replay(letter_id: str) -> Response:
        if broker is None:
            raise ApiError(503, "UNAVAILABLE", "no broker in this process")
        try:
            letter = broker.replay(letter_id)
        except KeyError:
            raise ApiError(404, "NOT_FOUND", f"no dead letter {letter_id}") from None
        return json_response({"replayed": letter_id, "trigger": letter["trigger"]}, 202)

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: this process answers. Touches no dependency, so it stays cheap."""
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        """Whether the database, cache and object store answer, for operators
        (shared/core/health.py: not a probe)."""
        from shared.core import health

        checks = health.check()
        down = [name for name, result in checks.items() if not result["ok"]]
        if down:
            raise ApiError(
                503,
                "UNAVAILABLE",
                f"unavailable: {', '.join(down)}",
                {"dependencies": checks},
                headers={"Retry-After": "5"},
            )
        return json_response({"status": "ok", "dependencies": checks})

    @app.errorhandler(Exception)
    def failed(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
                exc.code or 500, "BAD_REQUEST"
            )
            headers = (
                {"Allow": ", ".join(exc.valid_methods)}
                if getattr(exc, "valid_methods", None)
                else None
            )
            message = {
                404: f"no route for {request.method} {request.path}",
                405: f"{request.method} is not allowed on {request.path}",
            }.get(exc.code or 500, exc.description or code)
            return error_response(ApiError(exc.code or 500, code, message, headers=headers))
        return error_response(as_api_error(exc, request.path))

    return app


def _serve(function: Function):
    def view(**_params: str) -> Response:
        return function.handler(request._get_current_object())

    view.__name__ = function.name
    return view

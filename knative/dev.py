"""What the cluster's eventing and operators' tooling provide, served by the local server: the
broker's ingress, dead-letter replay, direct function calls as `func invoke` makes them, and the
health checks. None of it exists on the cluster's function Services.
"""

from __future__ import annotations

from typing import Any

from cloudevents.http import from_http
from flask import Blueprint, Response, request

from shared.core.errors import ApiError
from shared.core.registry import Function, json_response


def broker_endpoints(registry: dict[str, Function], broker: Any) -> Blueprint:
    """`/_functions/<name>` calls one event function; `/_broker` is the broker's ingress and
    `/_broker/dead-letters/<id>/replay` sends a dead letter back (both need `broker`)."""
    blueprint = Blueprint("broker", __name__)

    def running_broker() -> Any:
        if broker is None:
            raise ApiError(503, "UNAVAILABLE", "no broker in this process")
        return broker

    @blueprint.post("/_functions/<name>")
    def invoke(name: str) -> Response:
        """Call one function directly, as `func invoke` does: HTTP or CloudEvent."""
        function = registry.get(name)
        if function is None:
            raise ApiError(404, "NOT_FOUND", f"no function {name}")
        if function.kind == "http":
            raise ApiError(400, "BAD_REQUEST", "HTTP functions are invoked on their own path")
        function.handler(from_http(request.headers, request.get_data()))
        return Response(status=204)

    @blueprint.post("/_broker")
    def ingress() -> Response:
        """The broker's ingress: a CloudEvent, binary or structured, to every matching Trigger."""
        matched = running_broker().publish(from_http(request.headers, request.get_data()))
        return json_response({"matched": matched}, 202)

    @blueprint.post("/_broker/dead-letters/<letter_id>/replay")
    def replay(letter_id: str) -> Response:
        try:
            letter = running_broker().replay(letter_id)
        except KeyError:
            raise ApiError(404, "NOT_FOUND", f"no dead letter {letter_id}") from None
        return json_response({"replayed": letter_id, "trigger": letter["trigger"]}, 202)

    return blueprint


health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Response:
    """Liveness: this process answers. Touches no dependency, so it stays cheap."""
    return json_response({"status": "ok"})


@health.get("/readyz")
def readyz() -> Response:
    """Whether the database, cache and object store answer, for operators
    (shared/core/health.py: not a probe)."""
    from shared.core import health as checks

    results = checks.check()
    down = [name for name, result in results.items() if not result["ok"]]
    if down:
        raise ApiError(
            503,
            "UNAVAILABLE",
            f"unavailable: {', '.join(down)}",
            {"dependencies": results},
            headers={"Retry-After": "5"},
        )
    return json_response({"status": "ok", "dependencies": results})

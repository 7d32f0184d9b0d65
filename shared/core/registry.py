"""The one source of truth: every function declares here, once, what it serves and how it runs.

`@http("GET /api/v1/waste/status/{job_id}", ...)` and `@event("kr.growbin...", ...)` register
the function with functions-framework (so `functions-framework --target NAME` serves it on the
cluster) and record a `Function` in `REGISTRY`. The local server, the local broker and cron,
the Knative manifests, the Helm chart and the OpenAPI document are all read off `REGISTRY`.

The wrappers are the only place that turns requests and events into calls: path parameters
parsed, the bearer token checked, the body and query validated, the result shaped, and every
failure answered in the contract's error shape.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import functions_framework

from shared.core import telemetry
from shared.core.errors import ApiError, as_api_error, log_event

# Who calls: (Authorization header, admin required, cache keys to read along) -> the caller and
# those keys' cached values, read in the same round trip as the caller's session; or an
# ApiError (401/403).
Authenticate = Callable[..., tuple[Any, list[Any]]]
# The cache keys a route reads with its caller, from its path parameters (see `http`).
Along = Callable[..., list[str]]
# What a domain does when a Trigger gave up on an event: (the event, why the last try failed).
OnDeadLetter = Callable[[Any, str], None]
PING_TYPE = "dev.knative.sources.ping"  # the type every PingSource event carries
SEOUL = "Asia/Seoul"


@dataclass(frozen=True)
class Scaling:
    """Knative autoscaling and the gunicorn worker/thread counts that must agree with it."""

    min: int = 0  # 0: scale to zero where a cold start is acceptable
    max: int = 10
    workers: int = 1
    threads: int = 8
    utilization: int = 70  # percent of containerConcurrency the autoscaler targets

    @property
    def concurrency(self) -> int:
        return self.workers * self.threads


@dataclass(frozen=True)
class Resources:
    cpu: str = "100m"
    memory: str = "192Mi"
    cpu_limit: str = "1"
    memory_limit: str = "384Mi"


@dataclass(frozen=True)
class Delivery:
    """A Trigger's delivery spec: without one, an event is tried once and dropped."""

    retry: int = 5
    backoff_policy: str = "exponential"
    backoff_delay: str = "PT0.5S"  # ISO 8601 duration
    timeout: str = "PT60S"


# Days and time parts, at least one of them, and a T only before a time part: "P", "PT" and
# "P1DT" are not durations. Years, months and weeks have no fixed length in seconds.
_DURATION = re.compile(r"P(?!$)(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")


def seconds(duration: str) -> float:
    """An ISO 8601 duration as Knative writes them (PT0.5S, PT1M, P1DT2H) in seconds: a
    `Delivery`'s backoff and timeout, read by the local broker and the Trigger renderer."""
    match = _DURATION.fullmatch(duration)
    if not match:
        raise ValueError(f"not an ISO 8601 duration: {duration}")
    days, hours, minutes, secs = match.groups()
    return (
        int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    )


# Profiles the declarations pick from; named for the traffic they carry.
HOT = Scaling(min=1, max=20, threads=16)  # token checks and status polling: never cold
STANDARD = Scaling()
MODEL_BOUND = Scaling(min=0, max=10, threads=32)  # waits on an LLM: concurrency hides it
BATCH = Scaling(min=0, max=1, threads=1)
# Progress streams: a thread per open stream, asleep until its job moves (README: Progress, pushed).
STREAMS = Scaling(min=1, max=10, threads=1000)
MODEL_RESOURCES = Resources(cpu="200m", memory="256Mi", memory_limit="512Mi")


@dataclass(frozen=True)
class Function:
    name: str
    module: str  # dotted, e.g. "functions.waste"
    kind: str  # "http" | "event"
    summary: str
    handler: Callable[..., Any]
    method: str | None = None
    path: str | None = None
    auth: str | None = None  # "user", "admin" or None for public
    body: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    responses: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    errors: tuple[int, ...] = ()  # error statuses beyond the ones every route can answer
    error_notes: dict[int, str] = field(default_factory=dict)  # a status's codes special here
    filter: dict[str, str] = field(default_factory=dict)  # Trigger filter.attributes
    schedule: str | None = None  # cron, for PingSource-fired functions
    delivery: Delivery = Delivery()
    emits: tuple[str, ...] = ()
    uses: frozenset[str] = frozenset()  # what it reaches: db, cache, storage, broker, openai...
    scaling: Scaling = STANDARD
    resources: Resources = Resources()
    timeout_seconds: int = 30
    local_only: bool = False  # exists only in local mode (dev login)
    on_dead_letter: OnDeadLetter | None = None  # called once the dead letter is recorded

    @property
    def source(self) -> str:
        """The file functions-framework loads, relative to the project root."""
        return self.module.replace(".", "/") + ".py"

    @property
    def service(self) -> str:
        """The Knative Service name: DNS-safe."""
        return self.name.replace("_", "-")

    @property
    def event_type(self) -> str | None:
        return self.filter.get("type")


REGISTRY: dict[str, Function] = {}

# What a function may reach, for its NetworkPolicy egress and its Secrets.
# "signing": issues tokens, so it gets the JWT private key (every other function only verifies).
USES = frozenset({"db", "cache", "storage", "broker", "openai", "kakao", "oauth", "signing"})


def _register(fn: Callable[..., Any], target: Callable[..., Any], **declared: Any) -> None:
    name = fn.__name__
    module = fn.__module__
    if not module.startswith("functions."):
        # functions-framework loads `functions/waste.py` as module "waste" on the cluster.
        module = f"functions.{module}"
    previous = REGISTRY.get(name)
    if previous is not None and previous.module != module:
        raise RuntimeError(f"function name {name} is declared twice ({previous.module}, {module})")
    unknown = set(declared.get("uses", ())) - USES
    if unknown:
        raise ValueError(f"{name}: unknown uses {sorted(unknown)}; choose from {sorted(USES)}")
    if declared.get("emits"):
        declared["uses"] = frozenset(declared["uses"]) | {"broker"}
    summary = (inspect.getdoc(fn) or name).split("\n\n")[0].replace("\n", " ")
    REGISTRY[name] = Function(name=name, module=module, summary=summary, handler=target, **declared)


# ---- HTTP ---------------------------------------------------------------------------------


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, ...
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(f"^{regex}/?$")


# One encoder for every response: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None):
    from flask import Response

    return Response(_encode(body), status=status, headers=headers, content_type="application/json")


def error_response(error: ApiError):
    return json_response(error.body(), error.status, error.headers)


def _shape(result: Any, status: int):
    """Turn what a function returns into a response: dict, (dict, status[, headers]), or None."""
    if result is None:
        from flask import Response

        empty = Response(status=204)
        del empty.headers["Content-Type"]  # no content, so no type (Flask's default is HTML)
        return empty
    if isinstance(result, tuple):
        body, status, *rest = result
        return json_response(body, status, rest[0] if rest else None)
    if isinstance(result, dict | list):
        return json_response(result, status)
    return result  # already a Response


# A JSON body's bound: the largest any endpoint takes (a profile's preferences) many times over.
JSON_BODY_LIMIT = 1024 * 1024


def _check_edge(request, path_params: dict[str, str]) -> None:
    """Text no store can hold (NUL) ends here, the same on PostgreSQL and SQLite: an id with
    one names nothing (404); a header with one is 422 (query and body: validation.py)."""
    if any("\x00" in value for value in path_params.values()):
        raise ApiError(404, "NOT_FOUND", f"no resource at {request.path!r}")
    for name, value in request.headers.items():
        if "\x00" in value:
            from shared.core.errors import validation_failed

            raise validation_failed({f"header.{name}": "must not contain NUL characters"})


def _json_bytes(request) -> bytes:
    """A JSON endpoint's body, read at most to JSON_BODY_LIMIT: a declared length over it and a
    chunked body that runs past it are both 413 (never cut short and read as malformed JSON).
    A body that is not JSON (text, XML, a form, no type at all) is 415."""
    limit = f"a JSON body is at most {JSON_BODY_LIMIT} bytes"
    too_large = ApiError(413, "PAYLOAD_TOO_LARGE", limit)
    if (request.content_length or 0) > JSON_BODY_LIMIT:
        raise too_large
    data = request.stream.read(JSON_BODY_LIMIT + 1)
    if len(data) > JSON_BODY_LIMIT:
        raise too_large
    mimetype = request.mimetype
    if data.strip() and not (mimetype == "application/json" or mimetype.endswith("+json")):
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"send the body as application/json, not {mimetype or 'without a Content-Type'}",
        )
    return data


def http(
    route: str,
    *,
    auth: str | None = "user",
    body: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    responses: dict[int, dict[str, Any] | None] | None = None,
    errors: tuple[int, ...] = (),
    error_notes: dict[int, str] | None = None,
    scaling: Scaling = STANDARD,
    resources: Resources = Resources(),
    uses: tuple[str, ...] = ("db", "cache"),
    emits: tuple[str, ...] = (),
    timeout_seconds: int = 30,
    local_only: bool = False,
    authenticate: Authenticate | None = None,
    along: Along | None = None,
):
    """Declare an HTTP function: `route` is "METHOD /path/{param}" on the ALB path map.

    The function is called as `fn(request, **path_params, user=?, body=?, query=?, along=?)`;
    `user` is what `authenticate` makes of the Authorization header (see `endpoints`). A
    protected route that reads cache keys on every call names them with `along(**path_params)`:
    they are read in the caller's round trip and the function gets their values as `along`.
    """
    if auth and authenticate is None:
        raise TypeError(f"{route} needs a caller: declare it with endpoints(authenticate=...)")
    if along and not auth:
        raise TypeError(f"{route}: `along` is read with the caller; a public route has none")
    method, path = route.split(" ", 1)
    pattern = _path_pattern(path)
    responses = responses or {200: None}
    ok_status = min(responses)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def serve(request):
            # One server span per request, continuing a caller's traceparent header; with
            # telemetry off, none: not even the context manager and its attributes' dict,
            # a few microseconds of every request (the status poll's among them).
            if not telemetry.enabled():
                return answer(request)
            with telemetry.span(
                route,
                kind="server",
                parent=request.headers,
                attributes={"http.request.method": request.method, "http.route": path},
            ) as current:
                response = answer(request)
                if current is not None:
                    current.set_attribute("http.response.status_code", response.status_code)
                    if response.status_code >= 500:
                        current.set_status(telemetry.error_status())
            return response

        def answer(request):
            try:
                match = pattern.match(request.path)
                if match is None:
                    raise ApiError(404, "NOT_FOUND", f"no route for {request.path}")
                if request.method != method and not (method == "GET" and request.method == "HEAD"):
                    raise ApiError(
                        405,
                        "METHOD_NOT_ALLOWED",
                        f"{request.method} not allowed here",
                        headers={"Allow": method},
                    )
                kwargs: dict[str, Any] = dict(match.groupdict())
                _check_edge(request, kwargs)
                if local_only:
                    from shared.core.settings import settings

                    if not settings().local:
                        raise ApiError(404, "NOT_FOUND", f"no route for {request.path}")
                if auth:
                    keys = along(**kwargs) if along else []
                    kwargs["user"], values = authenticate(
                        request.headers.get("Authorization"), admin=auth == "admin", along=keys
                    )
                    if along:
                        kwargs["along"] = values
                if body is not None:
                    from shared.core.validation import json_body

                    kwargs["body"] = json_body(_json_bytes(request), body)
                if query is not None:
                    from shared.core.validation import query_args

                    kwargs["query"] = query_args(request.args.to_dict(), query)
                return _shape(fn(request, **kwargs), ok_status)
            except Exception as exc:  # every failure leaves in the contract's shape
                error = as_api_error(exc, fn.__name__)
                if error.status == 429:
                    telemetry.count(telemetry.RATE_LIMITED, function=fn.__name__)
                return error_response(error)

        target = functions_framework.http(serve)
        _register(
            fn,
            target,
            kind="http",
            method=method,
            path=path,
            auth=auth,
            body=body,
            query=query,
            responses=responses,
            errors=errors,
            error_notes=error_notes or {},
            scaling=scaling,
            resources=resources,
            uses=frozenset(uses),
            emits=emits,
            timeout_seconds=timeout_seconds,
            local_only=local_only,
        )
        return target

    return decorate


def endpoints(authenticate: Authenticate) -> Callable[..., Any]:
    """`http`, with the caller of protected functions found by `authenticate`.

    The platform knows that a function wants a signed-in caller (`auth`), not how sign-in
    works: each function module hands the auth domain's check in once, at the top.
    """
    return functools.partial(http, authenticate=authenticate)


# ---- CloudEvents --------------------------------------------------------------------------


def event(
    event_type: str,
    *,
    schedule: str | None = None,
    task: str | None = None,
    emits: tuple[str, ...] = (),
    delivery: Delivery | None = None,
    scaling: Scaling = STANDARD,
    resources: Resources = Resources(),
    uses: tuple[str, ...] = ("db", "cache"),
    timeout_seconds: int = 60,
    on_dead_letter: OnDeadLetter | None = None,
    deduplicates: bool = False,
):
    """Declare an event function, triggered by exact match on the event's `type`.

    Functions fired by cron declare `schedule` and `task`: their Trigger matches the PingSource
    type plus the `task` extension attribute the PingSource sets, since eventing-rabbitmq
    honours only exact attribute filters. Delivery is at least once, so every call is
    deduplicated on the CloudEvent id and the function's name. `on_dead_letter(event, error)`
    is the domain's reaction when the Trigger's retries are spent (the dead-letter sink calls
    it, locally and on the cluster). A function that `deduplicates` does both inside its own
    transactions (`idempotency.Delivery`, `idempotency.Duplicate`), where a check and a record
    of their own would cost two more connections and a commit per delivery.
    """
    # Each delivery attempt may take as long as the function may run, never less.
    delivery = delivery or Delivery(timeout=f"PT{timeout_seconds}S")
    filter_attributes = {"type": event_type}
    if task:
        filter_attributes["task"] = task

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def consume(cloud_event) -> None:
            # The handler's span continues the trace the event carries (its traceparent), else
            # the delivery's W3C headers (a broker that moved the context there).
            traced = {k: cloud_event.get(k) for k in telemetry.TRACE_FIELDS if cloud_event.get(k)}
            if not traced and telemetry.enabled():
                traced = _delivery_headers()
            started, outcome = time.perf_counter(), "error"
            attributes = {
                "cloudevents.event_id": cloud_event["id"],
                "cloudevents.event_type": cloud_event["type"],
            }
            try:
                with telemetry.span(fn.__name__, "consumer", traced, attributes):
                    outcome = handle(cloud_event)
            finally:
                elapsed = time.perf_counter() - started
                telemetry.record(
                    telemetry.EVENT_DURATION, elapsed, function=fn.__name__, outcome=outcome
                )

        def handle(cloud_event) -> str:
            from shared.core import idempotency

            event_id = cloud_event["id"]
            if not deduplicates and idempotency.seen(event_id, fn.__name__):
                log_event("info", "duplicate_event", function=fn.__name__, event_id=event_id)
                return "duplicate"
            try:
                fn(cloud_event)
            except idempotency.Duplicate:
                log_event("info", "duplicate_event", function=fn.__name__, event_id=event_id)
                return "duplicate"
            except Exception as exc:
                log_event(
                    "error",
                    "event_failed",
                    function=fn.__name__,
                    event_id=event_id,
                    event_type=cloud_event["type"],
                    error=repr(exc),
                    exc_info=exc,
                )
                raise  # a non-2xx answer makes the broker retry, then dead-letter
            if not deduplicates:
                idempotency.remember(event_id, fn.__name__)
            return "ok"

        target = functions_framework.cloud_event(consume)
        _register(
            fn,
            target,
            kind="event",
            filter=filter_attributes,
            schedule=schedule,
            delivery=delivery,
            emits=emits,
            scaling=scaling,
            resources=resources,
            uses=frozenset(uses),
            timeout_seconds=timeout_seconds,
            on_dead_letter=on_dead_letter,
        )
        return target

    return decorate


def _delivery_headers() -> dict[str, str]:
    """The trace context headers of the HTTP request delivering an event (functions-framework
    on the cluster); none when the local broker calls the handler directly."""
    from flask import has_request_context, request

    if not has_request_context():
        return {}
    return {k: request.headers[k] for k in telemetry.TRACE_FIELDS if k in request.headers}


def cron(schedule: str, task: str, **options: Any):
    """Declare a function fired by a PingSource (Asia/Seoul) through the Broker."""
    return event(PING_TYPE, schedule=schedule, task=task, **options)

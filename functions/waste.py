"""Waste functions — /api/v1/waste: start an analysis, upload, poll, read the answer, search."""

from __future__ import annotations

import functools

from shared.auth import callers
from shared.core import cache, storage, streams
from shared.core.errors import not_found
from shared.core.registry import MODEL_RESOURCES, STREAMS, Resources, endpoints
from shared.core.settings import settings
from shared.core.validation import obj
from shared.users import profiles, where
from shared.waste import corrections, fees, jobs, pipeline, progress, rules
from shared.waste.messages import Uploaded

http = endpoints(authenticate=callers.caller)

ANALYZE_LIMIT = (30, 3600)  # analyses per user per hour

ANALYZE = obj(
    {
        # Any string is read; an unaccepted type is 415 by contract, not 422.
        "content_type": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "examples": list(jobs.CONTENT_TYPES),
            "description": "one of " + ", ".join(jobs.CONTENT_TYPES) + "; any other is 415",
        },
        "content_length": {
            "type": "integer",
            "minimum": 1,
            "examples": [123456],
            "description": f"bytes; more than {jobs.MAX_BYTES} is 413",
        },
        "hint": {
            "type": "string",
            "maxLength": 100,
            "description": "the item's name; required (422 HINT_REQUIRED) while no vision "
            "model is configured",
        },
    },
    required=("content_type", "content_length"),
)
CONFIRM = obj(
    {
        "guide_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 40,
            "examples": ["item-guide-0001"],
        }
    },
    required=("guide_id",),
)
JOB_ID = obj({"job_id": {"type": "string", "minLength": 1, "maxLength": 64}}, required=("job_id",))
CATEGORY = obj(
    {"major": {"type": "string"}, "middle": {"type": "string"}, "minor": {"type": "string"}},
    required=("major", "middle"),
)
STREAM_SECONDS = 300  # a stream's longest life; the client resumes with Last-Event-ID
# A thousand sleeping threads: their stacks, not the heap, are most of it (bench/stream.py).
STREAM_RESOURCES = Resources(cpu="100m", memory="256Mi", memory_limit="512Mi")
EVENTS = {
    "x-media-type": "text/event-stream",
    "type": "string",
    "description": "Server-Sent Events: `retry`, then an event per change (`id` the job's "
    "progress, 100 for the final one; `data` the status body, as GET .../status/{job_id}), and "
    "a `: keep-alive` comment every EVENTS_HEARTBEAT_SECONDS while nothing changes. The stream "
    f"ends after the completed or failed event, or after {STREAM_SECONDS} s: send the "
    "Last-Event-ID header to resume after the last event seen (one behind gets the current "
    "state at once). 204 when Last-Event-ID is already the final event.",
}
ANALYZE_CREATED = obj(
    {
        "job_id": {"type": "string"},
        "status": {"const": "awaiting_upload"},
        "upload": obj(
            {
                "method": {"const": "POST"},
                "url": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "expires_at": {"type": "string", "format": "date-time"},
            },
            required=("method", "url", "fields", "expires_at"),
        ),
        "status_url": {"type": "string"},
        "result_url": {"type": "string"},
    },
    required=("job_id", "status", "upload", "status_url", "result_url"),
)
QUEUED = obj(
    {"job_id": {"type": "string"}, "status": {"const": "queued"}},
    required=("job_id", "status"),
)
MATCH = obj(
    {"name": {"type": "string"}, "guide_id": {"type": "string"}, "confidence": {"type": "number"}},
    required=("name", "guide_id", "confidence"),
)
GUIDE_SOURCE = obj(
    {
        "title": {"type": "string"},
        "guide_id": {"type": "string"},
        "dataset": {"type": "string", "description": "the published dataset"},
        "edition": {
            "type": ["string", "null"],
            "description": "the edition: its publication date, else the day it was imported",
        },
        "attribution": {"type": "string"},
        "chosen_by": {
            "enum": ["model", "search", "user"],
            "description": "who picked the guide: the vision model among the dictionary's "
            "candidates, the search alone, or the user (POST .../confirm, or their earlier "
            "correction of the same photo)",
        },
    },
    required=("title", "guide_id"),  # results saved before imports named no edition
)
CANDIDATE = obj(
    {
        "guide_id": {"type": "string"},
        "name": {"type": "string"},
        "category": CATEGORY,
        "summary": {"type": "string", "description": "one line of how it goes out"},
        "confidence": {"type": "number"},
    },
    required=("guide_id", "name", "category", "summary"),
)
NULLABLE_TEXT = {"type": ["string", "null"]}
WHERE_HERE = obj(
    {
        "district": {"type": "string", "description": "canonical 시도 + 시군구"},
        "district_code": NULLABLE_TEXT,
        "collection": {
            "type": ["object", "null"],
            "description": "when the item's kind goes out; null when the data has none or the "
            "district's areas differ",
            "properties": {
                "days": {"type": "array", "items": {"type": "string"}},
                "hours": NULLABLE_TEXT,
                "place": NULLABLE_TEXT,
                "next": {
                    "type": ["string", "null"],
                    "format": "date",
                    "description": "the next date (Korea time) it goes out: today while the "
                    "window is open",
                },
            },
        },
        "drop_off": {
            "type": ["object", "null"],
            "description": "the nearest point (nearby's item shape) that takes the item's type, "
            "within 3 km of lat/lng; null without lat/lng or without such a point",
        },
        "bag": {
            "type": ["object", "null"],
            "properties": {
                "kind": {"type": "string"},
                "prices": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "fees": {
            "type": ["array", "null"],
            "description": "bulky-waste fee rows for the item (대형폐기물 only)",
            "items": {"type": "object"},
        },
        "data_dates": {"type": "object"},
    },
    required=("district", "collection", "drop_off", "bag", "fees", "data_dates"),
)
RESULT_QUERY = obj(
    {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lng": {"type": "number", "minimum": -180, "maximum": 180},
    }
)
RESULT = {
    "oneOf": [
        obj(
            {
                "job_id": {"type": "string"},
                "status": {"const": "completed"},
                "item": obj(
                    {"name": {"type": "string"}, "guide_id": {"type": "string"}},
                    required=("name", "guide_id"),
                ),
                "category": CATEGORY,
                "confidence": {"type": "number"},
                "situation_tags": {"type": "array", "items": {"type": "string"}},
                "disposal_steps": {"type": "array", "items": {"type": "string"}},
                "cautions": {"type": "array", "items": {"type": "string"}},
                "feedback": {"type": "string"},
                "alternatives": {"type": "array", "items": MATCH},
                "source": GUIDE_SOURCE,
                "image_url": {"type": ["string", "null"]},
                "completed_at": {"type": "string", "format": "date-time"},
                "detected_name": {
                    "type": "string",
                    "description": "what the model saw, or the hint: the words the guide matched",
                },
                "needs_confirmation": {
                    "type": "boolean",
                    "description": "the match is not confident: show `candidates` and let the "
                    "user pick one (POST .../confirm); `feedback` asks rather than states",
                },
                "candidates": {"type": "array", "maxItems": 5, "items": CANDIDATE},
                "where": WHERE_HERE,
            },
            required=(
                "job_id",
                "status",
                "item",
                "category",
                "confidence",
                "situation_tags",
                "disposal_steps",
                "cautions",
                "feedback",
                "alternatives",
                "source",
                "image_url",
                "completed_at",
            ),
        ),
        obj(
            {
                "job_id": {"type": "string"},
                "status": {"const": "failed"},
                "error": obj(
                    {"code": {"type": "string"}, "message": {"type": "string"}},
                    required=("code", "message"),
                ),
            },
            required=("job_id", "status", "error"),
        ),
    ]
}
ITEMS_QUERY = obj(
    {
        "q": {"type": "string", "minLength": 1, "maxLength": 100},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
    },
    required=("q",),
)
ITEMS = obj(
    {
        "items": {
            "type": "array",
            "items": obj(
                {
                    "guide_id": {"type": "string"},
                    "name": {"type": "string"},
                    "category": CATEGORY,
                    "score": {"type": "number", "description": "how closely the name matches"},
                    "confidence": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "the calibrated chance that this guide is the answer "
                        "(for the first item; the others scaled by their score)",
                    },
                },
                required=("guide_id", "name", "category", "score"),
            ),
        },
        "confident": {
            "type": "boolean",
            "description": "the first item is the answer: its confidence reaches the threshold "
            "fitted so that confident answers are wrong for at most 2 % of queries (README)",
        },
    },
    required=("items",),
)
GUIDE = {
    "type": "object",
    "required": [
        "guide_id",
        "name",
        "category",
        "category_paths",
        "discharge_methods",
        "features",
        "notes",
        "source",
    ],
    "properties": {"source": GUIDE_SOURCE},
}


def _with_image_url(body: dict) -> dict:
    """A stored result as the app reads it: the image key becomes a short-lived link."""
    key = body.pop("image_key", None)
    return {**body, "image_url": storage.presign_download(key) if key else None}


def _urls(job_id: str) -> dict[str, str]:
    return {
        "status_url": f"/api/v1/waste/status/{job_id}",
        "result_url": f"/api/v1/waste/result/{job_id}",
    }


@http(
    "POST /api/v1/waste/analyze",
    body=ANALYZE,
    responses={201: ANALYZE_CREATED},
    errors=(413, 415, 429),
    error_notes={
        503: "MODEL_BUDGET_EXHAUSTED: the deployment's model budget (tokens per minute or day) "
        "is spent; Retry-After says when its window frees up. Sent with a hint, the analysis "
        "is accepted and answered from the hint alone"
    },
    uses=("db", "cache", "storage"),
)
def waste_analyze(request, user, body):
    """Start an analysis: a job and a presigned POST form for exactly one image."""
    jobs.check_upload(body["content_type"], body["content_length"])
    pipeline.check_answerable(body.get("hint"))
    pipeline.check_budget(body.get("hint"))
    limit = (jobs.rate_limit_key(user.user_id), *ANALYZE_LIMIT)
    with cache.rate_limited(*limit, "too many analyses; try again later"):
        job = jobs.create(
            user.user_id, body["content_type"], body["content_length"], body.get("hint")
        )
        upload = storage.presign_upload(
            job["image_key"], job["content_type"], job["content_length"], jobs.UPLOAD_TTL
        )
    return {"job_id": job["id"], "status": job["status"], "upload": upload, **_urls(job["id"])}, 201


def _complete(user, job_id: str):
    pipeline.submit(jobs.get(user.user_id, job_id))
    return {"job_id": job_id, "status": "queued"}, 202


@http(
    "POST /api/v1/waste/upload-complete/{job_id}",
    responses={202: QUEUED},
    errors=(409, 415),
    uses=("db", "cache", "storage"),
    resources=MODEL_RESOURCES,  # decodes the upload to check it: up to 50 MP
    emits=(Uploaded.TYPE,),
)
def waste_upload_complete(request, user, job_id):
    """The image is uploaded: check it is there as declared, and queue the analysis."""
    return _complete(user, job_id)


@http(
    "POST /api/v1/waste/upload-complete",
    body=JOB_ID,
    responses={202: QUEUED},
    errors=(404, 409),
    uses=("db", "cache", "storage"),
    resources=MODEL_RESOURCES,
    emits=(Uploaded.TYPE,),
)
def waste_upload_complete_body(request, user, body):
    """The same as upload-complete/{job_id}, with the job id in the body."""
    return _complete(user, body["job_id"])


@http(
    "GET /api/v1/waste/status/{job_id}/events",
    scaling=STREAMS,
    resources=STREAM_RESOURCES,
    responses={200: EVENTS, 204: None},
    errors=(422,),
    timeout_seconds=STREAM_SECONDS,
)
def waste_status_events(request, user, job_id):
    """Where the job is, pushed: an event per change until it completes or fails (SSE)."""
    after = streams.last_event_id(request.headers.get("Last-Event-ID"))
    read = functools.partial(jobs.status, user.user_id, job_id)
    body = progress.events(job_id, after, read, STREAM_SECONDS, settings().events_heartbeat)
    return streams.response(body) if body is not None else None


@http(
    "GET /api/v1/waste/result/{job_id}",
    query=RESULT_QUERY,
    responses={200: RESULT, 202: progress.STATUS},
    uses=("db", "cache", "storage"),
    along=progress.status_along,
)
def waste_result(request, user, job_id, query, along):
    """The answer when finished (or why it failed); the status body while running. With the
    user's district known (lat/lng, else the profile), it says where: `where`."""
    view = jobs.status(user.user_id, job_id, along[0])
    if view["status"] == "failed":
        return {"job_id": job_id, "status": "failed", "error": view["error"]}
    body = jobs.result(user.user_id, job_id) if view["status"] == "completed" else None
    if body is None:
        return view, 202, progress.retry_after(view) or {"Retry-After": "1"}
    lat, lng = query.get("lat"), query.get("lng")
    district = where.district_for(profiles.get(user.user_id)["district"], lat, lng)
    if district is not None:
        body = {**body, "where": where.answer(district, body, lat, lng)}
    return _with_image_url(body)


@http(
    "POST /api/v1/waste/result/{job_id}/confirm",
    body=CONFIRM,
    responses={200: RESULT},
    errors=(404, 409),
    uses=("db", "cache", "storage"),
)
def waste_result_confirm(request, user, job_id, body):
    """The user's word on what the item is: the result becomes that guide, and sticks."""
    return _with_image_url(corrections.confirm(user.user_id, job_id, body["guide_id"]))


@http("GET /api/v1/waste/items", query=ITEMS_QUERY, responses={200: ITEMS})
def waste_items(request, user, query):
    """Search the official item dictionary by name, everyday names and misspellings."""
    items = rules.search(query["q"], limit=query["limit"])
    return {"items": items, "confident": rules.confident(items)}


@http("GET /api/v1/waste/items/{guide_id}", responses={200: GUIDE})
def waste_item(request, user, guide_id):
    """One official guide, whole: categories, discharge steps, features, notes, source."""
    guide = rules.guide(guide_id)
    if guide is None:
        raise not_found("guide")
    return rules.detail(guide)


# Fees and bags come from registers that cover fewer districts than the schedules.
DISTRICT_COVERED = {
    **profiles.DISTRICT_PARAM,
    "description": profiles.DISTRICT_PARAM["description"]
    + "; a district the data does not cover -> 404",
}
FEES_QUERY = obj(
    {
        "district": DISTRICT_COVERED,
        "q": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "description": "item name, matched forgivingly (쇼파 -> 소파); all items without it",
        },
    }
)
WHERE = {
    "district": {"type": "string", "description": "canonical 시도 + 시군구"},
    "district_code": {"type": ["string", "null"], "description": "the data's 제공기관코드"},
    "data_date": {"type": ["string", "null"], "description": "the newest 데이터기준일자 shown"},
}
FEES = obj(
    {
        **WHERE,
        "items": {
            "type": "array",
            "items": obj(
                {
                    "name": {"type": "string"},
                    "category": {"type": ["string", "null"]},
                    "size": {"type": ["string", "null"]},
                    "fee_krw": {"type": "integer", "description": "0 where the data says 무료"},
                },
                required=("name", "category", "size", "fee_krw"),
            ),
        },
    },
    required=("district", "items", "data_date"),
)
BAGS_QUERY = obj({"district": DISTRICT_COVERED})
BAGS = obj(
    {
        **WHERE,
        "bags": {
            "type": "array",
            "items": obj(
                {
                    "use": {"type": ["string", "null"], "description": "생활쓰레기, 음식물쓰레기"},
                    "kind": {"type": ["string", "null"], "description": "규격봉투, 재사용규격봉투"},
                    "method": {"type": ["string", "null"], "description": "소각용, 매립용"},
                    "target": {"type": ["string", "null"], "description": "가정용, 사업장용"},
                    "prices": {
                        "type": "object",
                        "description": 'won per bag by litre size ("10", "1.5")',
                        "additionalProperties": {"type": "integer"},
                    },
                },
                required=("use", "kind", "target", "prices"),
            ),
        },
    },
    required=("district", "bags", "data_date"),
)


@http("GET /api/v1/waste/fees", query=FEES_QUERY, responses={200: FEES}, errors=(404,))
def waste_fees(request, user, query):
    """Bulky-waste collection fees in a district, for an item or all of them, with the date."""
    district = profiles.district(
        user.user_id, query.get("district"), fees.fee_districts(), "bulky-waste fees"
    )
    return fees.fees_for(district, query.get("q"))


@http("GET /api/v1/waste/bags", query=BAGS_QUERY, responses={200: BAGS}, errors=(404,))
def waste_bags(request, user, query):
    """Volume-rate bag prices in a district (household and food waste), with the date."""
    district = profiles.district(
        user.user_id, query.get("district"), fees.bag_districts(), "bag prices"
    )
    return fees.bags_for(district)

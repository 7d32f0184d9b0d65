"""Users functions — /api/v1/users: profile, history, stats, the district's schedule, leaving."""

from __future__ import annotations

from flask import Response

from shared.auth import callers
from shared.core.errors import ApiError
from shared.core.registry import endpoints
from shared.core.validation import obj
from shared.users import calendar, profiles, schedules
from shared.waste import history

http = endpoints(authenticate=callers.caller)

DISTRICT = {
    "type": ["string", "null"],
    "description": "canonical 시도 + 시군구, e.g. 서울특별시 강남구 (a 일반구 is its city: 수원시 "
    "장안구 -> 경기도 수원시)",
}
DISTRICT_CODE = {
    "type": ["string", "null"],
    "description": "the district's 개방자치단체코드, where the data has one",
}
PROFILE = obj(
    {
        "id": {"type": "string"},
        "nickname": {"type": "string"},
        "district": DISTRICT,
        "district_code": DISTRICT_CODE,
        "language": {"type": "string"},
        "preferences": {"type": "object"},
        "created_at": {"type": "string", "format": "date-time"},
    },
    required=("id", "nickname", "district", "language", "preferences", "created_at"),
)
PROFILE_CHANGES = obj(
    {
        "nickname": {"type": "string", "minLength": 1, "maxLength": 30},
        "district": {
            "type": ["string", "null"],
            "maxLength": 40,
            "examples": ["강남구", "서울 강남구", "수원시 장안구"],
            "description": "any unambiguous form; stored canonical; ambiguous (중구) -> 422 "
            "with details.choices",
        },
        "language": {"type": "string", "pattern": "^[a-z]{2,3}(-[A-Z]{2})?$"},
        "preferences": {"type": "object", "maxProperties": 32},
    },
    minProperties=1,
)
HISTORY_QUERY = obj(
    {
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        "cursor": {
            "type": "string",
            "maxLength": 200,
            "description": "opaque: a `next_cursor` this API returned; any other value is 400",
        },
    }
)
HISTORY = obj(
    {
        "items": {
            "type": "array",
            "items": obj(
                {
                    "job_id": {"type": "string"},
                    "status": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "item_name": {"type": ["string", "null"]},
                    "category": {
                        "oneOf": [
                            {"type": "null"},
                            obj(
                                {"major": {"type": "string"}, "middle": {"type": "string"}},
                                required=("major", "middle"),
                            ),
                        ]
                    },
                    "image_url": {"type": ["string", "null"]},
                },
                required=("job_id", "status", "created_at", "item_name", "category", "image_url"),
            ),
        },
        "next_cursor": {"type": ["string", "null"]},
    },
    required=("items", "next_cursor"),
)
STATS = obj(
    {
        "total_analyses": {"type": "integer"},
        "completed": {"type": "integer"},
        "failed": {"type": "integer"},
        "by_category": {"type": "object", "additionalProperties": {"type": "integer"}},
        "streak_days": {"type": "integer"},
        "last_analysis_at": {"type": ["string", "null"], "format": "date-time"},
    },
    required=(
        "total_analyses",
        "completed",
        "failed",
        "by_category",
        "streak_days",
        "last_analysis_at",
    ),
)
SCHEDULE_QUERY = obj({"district": profiles.DISTRICT_PARAM})
SCHEDULE = obj(
    {
        "district": {"type": "string", "description": DISTRICT["description"]},
        "district_code": DISTRICT_CODE,
        "source": {"type": "string"},
        "areas": {"type": "array", "items": {"type": "object"}},
    },
    required=("district", "source", "areas"),
)


@http("GET /api/v1/users/profile", responses={200: PROFILE})
def users_profile(request, user):
    """The caller's profile."""
    return profiles.get(user.user_id)


@http("PUT /api/v1/users/profile", body=PROFILE_CHANGES, responses={200: PROFILE})
def users_profile_update(request, user, body):
    """Change nickname, district (a real 시군구), language or preferences."""
    return profiles.update_profile(user.user_id, body)


@http("DELETE /api/v1/users/profile", responses={204: None}, uses=("db", "cache", "storage"))
def users_profile_delete(request, user):
    """Delete the account: its history, images, cached results and sessions, all of it."""
    profiles.delete_account(user.user_id)


@http(
    "GET /api/v1/users/history",
    query=HISTORY_QUERY,
    responses={200: HISTORY},
    uses=("db", "cache", "storage"),
)
def users_history(request, user, query):
    """The caller's analyses, newest first, by cursor pages that never repeat or skip."""
    return history.page(user.user_id, query["limit"], query.get("cursor"))


@http("GET /api/v1/users/stats", responses={200: STATS})
def users_stats(request, user):
    """Totals, failures, counts by category, the streak in KST days, the last analysis."""
    return history.stats(user.user_id)


@http(
    "GET /api/v1/users/schedule",
    query=SCHEDULE_QUERY,
    responses={200: SCHEDULE},
    errors=(404,),  # a district with no schedule in the MOIS table
)
def users_schedule(request, user, query):
    """When household, food and recyclable waste go out in a district (default: the user's)."""
    place = profiles.district(user.user_id, query.get("district"))
    areas = schedules.for_district(place)
    if not areas:
        raise ApiError(404, "NOT_FOUND", f"no disposal schedule for {place.name}")
    return {
        "district": place.name,
        "district_code": place.code,
        "source": schedules.source(),
        "areas": areas,
    }


@http(
    "GET /api/v1/users/schedule.ics",
    query=SCHEDULE_QUERY,
    responses={200: {"x-media-type": "text/calendar", "type": "string"}},
    errors=(404,),
)
def users_schedule_ics(request, user, query):
    """The district's schedule as an RFC 5545 calendar: a weekly series per area and kind."""
    place = profiles.district(user.user_id, query.get("district"))
    if not schedules.for_district(place):
        raise ApiError(404, "NOT_FOUND", f"no disposal schedule for {place.name}")
    return Response(calendar.for_district(place), content_type="text/calendar; charset=utf-8")

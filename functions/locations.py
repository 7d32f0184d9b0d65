"""Locations functions — /api/v1/locations: bins near a point, one bin, the way there."""

from __future__ import annotations

from shared.auth import callers
from shared.core.errors import conflict, not_found, validation_failed
from shared.core.registry import endpoints
from shared.core.validation import obj
from shared.locations import bins, navigation

http = endpoints(authenticate=callers.caller)

LAT = {"type": "number", "minimum": -90, "maximum": 90}
LNG = {"type": "number", "minimum": -180, "maximum": 180}
TEXT_OR_NULL = {"type": ["string", "null"]}
NEARBY_QUERY = obj(
    {
        "lat": LAT,
        "lng": LNG,
        "radius": {"type": "integer", "minimum": 1, "maximum": 20000, "default": 1000},
        "type": {"type": "string", "enum": list(bins.TYPES)},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    required=("lat", "lng"),
)
A_BIN = {  # what every answer says of a bin
    "id": {"type": "string"},
    "name": {"type": "string"},
    "type": {"type": "string", "enum": list(bins.TYPES)},
    "accepts": {
        "type": "array",
        "items": {"type": "string", "enum": list(bins.TYPES)},
        "description": "every type the point takes (a battery-and-lamp box: both); `type` is "
        "the first; nearby's `type` filter matches any of them",
    },
    "address": TEXT_OR_NULL,
}
NEARBY_ITEM = obj(
    {
        **A_BIN,
        "lat": {"type": "number"},
        "lng": {"type": "number"},
        "distance_m": {"type": "number"},
        "source": {"type": "string", "description": "the dataset, or kakao_local"},
    },
    required=("id", "name", "type", "accepts", "address", "lat", "lng", "distance_m", "source"),
)
NEARBY = obj(
    {"items": {"type": "array", "items": NEARBY_ITEM}, "count": {"type": "integer"}},
    required=("items", "count"),
)
BIN = obj(
    {
        **A_BIN,
        "lat": {"type": ["number", "null"], "description": "null until the address is geocoded"},
        "lng": {"type": ["number", "null"]},
        "city": {**TEXT_OR_NULL, "description": "시도, e.g. 서울특별시"},
        "district": {**TEXT_OR_NULL, "description": "시군구 as the source names it"},
        "location_detail": TEXT_OR_NULL,
        "opening_hours": {
            "type": ["object", "null"],
            "description": "mon..sun and holiday, as the source words them",
            "additionalProperties": TEXT_OR_NULL,
        },
        "accepted_items": {"type": "array", "items": {"type": "string"}},
        "phone": TEXT_OR_NULL,
        "source": obj(
            {
                "dataset": {"type": "string"},
                "title": {"type": "string"},
                "publisher": TEXT_OR_NULL,
                "date": {**TEXT_OR_NULL, "description": "YYYY-MM-DD or YYYY-MM, as stated"},
                "attribution": TEXT_OR_NULL,
                "row": {"type": "object", "description": "the source record as published"},
            },
            required=("dataset", "title", "publisher", "date", "attribution", "row"),
        ),
        "merged_into": {
            **TEXT_OR_NULL,
            "description": "the id of another source's newer copy of this same point, which "
            "nearby shows instead of this one",
        },
        "also_in": {
            "type": "array",
            "description": "other sources' rows that are this same point (a few metres away, "
            "same type); this one holds the newer data",
            "items": obj(
                {
                    "id": {"type": "string"},
                    "dataset": {"type": "string"},
                    "title": {"type": "string"},
                    "date": TEXT_OR_NULL,
                },
                required=("id", "dataset", "title", "date"),
            ),
        },
        "updated_at": {"type": ["string", "null"], "format": "date-time"},
    },
    required=("id", "name", "type", "accepts", "address", "lat", "lng", "source"),
)
NAVIGATION_QUERY = obj(
    {
        "from_lat": LAT,
        "from_lng": LNG,
        "bin_id": {"type": "string", "minLength": 1, "maxLength": 100},
        "to_lat": LAT,
        "to_lng": LNG,
    },
    required=("from_lat", "from_lng"),
)
NAVIGATION = obj(
    {
        "distance_m": {"type": "number"},
        "walking_minutes": {"type": "integer"},
        "bearing_deg": {"type": "number", "minimum": 0, "exclusiveMaximum": 360},
        "destination": {"type": "object"},
        "links": obj(
            {"kakao_map_web": {"type": "string"}, "kakao_map_app": {"type": "string"}},
            required=("kakao_map_web", "kakao_map_app"),
        ),
    },
    required=("distance_m", "walking_minutes", "bearing_deg", "destination", "links"),
)
DESTINATION_FIELDS = ("id", "name", "type", "address", "lat", "lng")


@http(
    "GET /api/v1/locations/bins/nearby",
    query=NEARBY_QUERY,
    responses={200: NEARBY},
    uses=("db", "cache", "kakao"),
)
def locations_nearby(request, user, query):
    """Bins nearest a point first, within `radius` metres, optionally of one type."""
    items = bins.nearby(
        query["lat"], query["lng"], query["radius"], query.get("type"), query["limit"]
    )
    return {"items": items, "count": len(items)}


@http("GET /api/v1/locations/bins/{bin_id}", responses={200: BIN}, uses=("db", "cache"))
def locations_bin(request, bin_id, user):
    """One bin with everything its source knows: hours, accepted items, dataset and date."""
    found = bins.get(bin_id)
    if found is None:
        raise not_found("bin")
    return found


@http(
    "GET /api/v1/locations/navigation",
    query=NAVIGATION_QUERY,
    responses={200: NAVIGATION},
    errors=(404, 409),
    uses=("db", "cache"),
)
def locations_navigation(request, user, query):
    """Distance, walking time, bearing and Kakao Map links from a point to a bin or a point."""
    to_point = {"to_lat", "to_lng"} & set(query)
    if "bin_id" in query:
        if to_point:
            raise validation_failed({"bin_id": "give bin_id, or to_lat and to_lng, not both"})
        found = bins.get(query["bin_id"])
        if found is None:
            raise not_found("bin")
        if found["lat"] is None:
            raise conflict("BIN_NOT_LOCATED", "this bin has an address but no coordinates yet")
        destination = {k: found[k] for k in DESTINATION_FIELDS}
    elif to_point == {"to_lat", "to_lng"}:
        destination = {"name": "목적지", "lat": query["to_lat"], "lng": query["to_lng"]}
    else:
        missing = sorted({"to_lat", "to_lng"} - to_point)
        raise validation_failed({name: "give bin_id, or to_lat and to_lng" for name in missing})
    return navigation.route(query["from_lat"], query["from_lng"], destination)

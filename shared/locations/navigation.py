"""Getting a walker to a bin: distance, a walking-time estimate, the bearing, Kakao Map links.

Distance is the great-circle one (the same as nearby's `distance_m`). Streets are longer than
the straight line, so the walking time applies a detour factor of 1.3 (typical of city street
grids) at 4.5 km/h; it is an estimate, and Kakao Map's links give the real route.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from shared.locations import geo

WALKING_M_PER_MIN = 75.0  # 4.5 km/h
DETOUR_FACTOR = 1.3
KAKAO_MAP_WEB = "https://map.kakao.com/link/to/{name},{lat:.6f},{lng:.6f}"
KAKAO_MAP_APP = "kakaomap://route?sp={from_lat:.6f},{from_lng:.6f}&ep={lat:.6f},{lng:.6f}&by=FOOT"


def walking_minutes(distance_m: float) -> int:
    return math.ceil(distance_m * DETOUR_FACTOR / WALKING_M_PER_MIN)


def route(from_lat: float, from_lng: float, destination: dict[str, Any]) -> dict[str, Any]:
    """The way from a point to `destination` (which has at least name, lat, lng)."""
    lat, lng = destination["lat"], destination["lng"]
    distance = geo.haversine_m(from_lat, from_lng, lat, lng)
    return {
        "distance_m": round(distance, 1),
        "walking_minutes": walking_minutes(distance),
        "bearing_deg": round(geo.bearing_deg(from_lat, from_lng, lat, lng), 1),
        "destination": destination,
        "links": {
            # The name is one comma-separated field of the link: escape it whole.
            "kakao_map_web": KAKAO_MAP_WEB.format(
                name=quote(destination["name"], safe=""), lat=lat, lng=lng
            ),
            "kakao_map_app": KAKAO_MAP_APP.format(
                from_lat=from_lat, from_lng=from_lng, lat=lat, lng=lng
            ),
        },
    }

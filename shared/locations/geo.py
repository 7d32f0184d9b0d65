"""Geometry on the sphere: great-circle distance, initial bearing, bounding boxes, Korea's extent.

Plain functions over degrees and metres. The mean Earth radius keeps the haversine within about
0.5 % of the ellipsoidal distance anywhere, well under a metre for the distances a walker cares
about near a bin.
"""

from __future__ import annotations

import math
from typing import NamedTuple

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius

# South Korea's land and islands with a margin: Marado (33.11 N) to Goseong (38.61 N),
# Gageodo (125.07 E) to Dokdo (131.87 E). A coordinate outside cannot be a Korean bin.
KOREA_LAT = (33.0, 38.7)
EDGE_DEG = 1e-9  # about 0.1 mm: boxes grow by this so rounding never drops a point on the circle
KOREA_LNG = (124.5, 132.0)


class Box(NamedTuple):
    min_lat: float
    max_lat: float
    min_lng: float
    max_lng: float

    def contains(self, lat: float, lng: float) -> bool:
        return self.min_lat <= lat <= self.max_lat and self.min_lng <= lng <= self.max_lng


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Initial compass bearing from the first point to the second, 0 (north) to <360 clockwise."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lng2 - lng1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def bounding_box(lat: float, lng: float, radius_m: float) -> Box:
    """The smallest lat/lng box holding every point within `radius_m` of (lat, lng).

    The longitude half-width is asin(sin(r/R) / cos(lat)), exact for a circle on the sphere
    (a circle's widest point is not on the centre's parallel). Near a pole, or across the
    antimeridian, the box falls back to every longitude.
    """
    angle = radius_m / EARTH_RADIUS_M
    dlat = math.degrees(angle) + EDGE_DEG
    min_lat, max_lat = lat - dlat, lat + dlat
    if min_lat <= -90.0 or max_lat >= 90.0:
        return Box(max(min_lat, -90.0), min(max_lat, 90.0), -180.0, 180.0)
    ratio = math.sin(angle) / math.cos(math.radians(lat))
    if ratio >= 1.0:
        return Box(min_lat, max_lat, -180.0, 180.0)
    dlng = math.degrees(math.asin(ratio)) + EDGE_DEG
    min_lng, max_lng = lng - dlng, lng + dlng
    if min_lng < -180.0 or max_lng > 180.0:
        return Box(min_lat, max_lat, -180.0, 180.0)
    return Box(min_lat, max_lat, min_lng, max_lng)


def in_korea(lat: float, lng: float) -> bool:
    return KOREA_LAT[0] <= lat <= KOREA_LAT[1] and KOREA_LNG[0] <= lng <= KOREA_LNG[1]

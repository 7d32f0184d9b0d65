"""shared.locations.geo against GeographicLib: on the sphere exactly, on WGS84 within 0.5 %."""

from __future__ import annotations

import pytest
from geographiclib.geodesic import Geodesic

from shared.locations import geo

SPHERE = Geodesic(geo.EARTH_RADIUS_M, 0)
PAIRS = [
    ((37.5665, 126.9780), (37.5666, 126.9781)),  # a few metres
    ((37.5665, 126.9780), (37.4979, 127.0276)),  # across Seoul
    ((37.5665, 126.9780), (35.1796, 129.0756)),  # Seoul to Busan
    ((33.2500, 126.5600), (38.2000, 128.5900)),  # Jeju to Sokcho
    ((0.0, 0.0), (0.0, 179.0)),
]


@pytest.mark.parametrize("a,b", PAIRS)
def test_distance_and_bearing(a, b):
    on_sphere = SPHERE.Inverse(*a, *b)
    assert geo.haversine_m(*a, *b) == pytest.approx(on_sphere["s12"], rel=1e-9, abs=1e-6)
    assert geo.bearing_deg(*a, *b) == pytest.approx(on_sphere["azi1"] % 360, abs=1e-7)
    wgs84 = Geodesic.WGS84.Inverse(*a, *b)["s12"]
    assert geo.haversine_m(*a, *b) == pytest.approx(wgs84, rel=0.005)


def test_cardinal_bearings():
    assert geo.bearing_deg(37.0, 127.0, 37.1, 127.0) == 0.0
    assert geo.bearing_deg(37.0, 127.0, 37.0, 127.1) == pytest.approx(89.97, abs=0.01)
    assert geo.bearing_deg(37.0, 127.0, 36.9, 127.0) == 180.0
    assert geo.bearing_deg(37.0, 127.0, 37.0, 126.9) == pytest.approx(270.03, abs=0.01)


@pytest.mark.parametrize("lat", [33.2, 37.5665, 60.0])
@pytest.mark.parametrize("radius", [1.0, 1000.0, 20000.0])
def test_bounding_box_holds_the_circle_and_no_more(lat, radius):
    box = geo.bounding_box(lat, 127.0, radius)
    circle = [SPHERE.Direct(lat, 127.0, bearing / 4, radius) for bearing in range(0, 1440)]
    assert all(box.contains(p["lat2"], p["lon2"]) for p in circle)
    # Tight: the circle touches every side (to the sampling's 1e-5 of the box's size, and the
    # box's rounding margin).
    height = box.max_lat - box.min_lat + 2e5 * geo.EDGE_DEG
    width = box.max_lng - box.min_lng + 2e5 * geo.EDGE_DEG
    assert max(p["lat2"] for p in circle) == pytest.approx(box.max_lat, abs=1e-5 * height)
    assert min(p["lat2"] for p in circle) == pytest.approx(box.min_lat, abs=1e-5 * height)
    assert max(p["lon2"] for p in circle) == pytest.approx(box.max_lng, abs=1e-5 * width)
    assert min(p["lon2"] for p in circle) == pytest.approx(box.min_lng, abs=1e-5 * width)


def test_bounding_box_near_a_pole_or_the_antimeridian_spans_every_longitude():
    assert geo.bounding_box(89.99, 0.0, 5000)[2:] == (-180.0, 180.0)
    assert geo.bounding_box(10.0, 179.99, 5000)[2:] == (-180.0, 180.0)


def test_korea():
    assert geo.in_korea(37.5665, 126.978) and geo.in_korea(33.11, 126.27)  # Seoul, Marado
    assert geo.in_korea(37.24, 131.87)  # Dokdo
    assert not geo.in_korea(126.978, 37.5665) and not geo.in_korea(0, 0)
    assert not geo.in_korea(39.03, 125.75)  # Pyongyang is north of the extent

"""Locations over HTTP, on SQLite and PostgreSQL: nearby (exact against a full scan and the
WGS84 ellipsoid), bin detail, navigation, and Kakao places that never fail the request."""

from __future__ import annotations

import math
import uuid
from urllib.parse import quote

import jsonschema
import pytest
import requests
import responses
from conftest import DATASETS, error_code, login
from geographiclib.geodesic import Geodesic
from sqlalchemy import select, text

from shared.core import cache, db
from shared.locations import bin_import, bins, geo, kakao_local

REGISTERS = DATASETS / "locations" / "seoul_clothing_bins"
KECO = DATASETS / "locations" / "keco_recycle_compensation_sites.csv"
CITY_HALL = (37.5665, 126.9780)
SPHERE = Geodesic(geo.EARTH_RADIUS_M, 0)  # places points at exact great-circle distances
GOYANG = (37.7025454, 126.901133)  # KECO site 1, 고양동 종합복지회관
NEARBY = "/api/v1/locations/bins/nearby"


def conforms(function: str, body: dict) -> dict:
    """The body matches the response schema the function declares (and OpenAPI publishes)."""
    from functions import load_all

    jsonschema.validate(body, load_all()[function].responses[200])
    return body


def offset(origin: tuple[float, float], bearing: float, metres: float) -> tuple[float, float]:
    point = SPHERE.Direct(origin[0], origin[1], bearing, metres)
    return point["lat2"], point["lon2"]


def independent_haversine(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Written apart from shared.locations.geo (atan2 form) so a slip there cannot hide here."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.atan2(math.sqrt(a), math.sqrt(1 - a))


# Bins at known distances from City Hall: the radius and type filters are checked on them.
SYNTHETIC = [
    ("general", 0, 4.9),
    ("recycling", 45, 120.0),
    ("battery", 90, 480.0),
    ("general", 180, 999.5),
    ("general", 270, 1000.5),
    ("lamp", 135, 1900.0),
    ("recycling", 315, 4000.0),
    ("battery", 10, 15000.0),
]


def _seed_synthetic() -> None:
    records = []
    for number, (kind, bearing, metres) in enumerate(SYNTHETIC, 1):
        lat, lng = offset(CITY_HALL, bearing, metres)
        records.append(
            {
                "source_id": f"s{number}",
                "type": kind,
                "name": f"{bins.LABELS[kind]} {number}, 시청 {metres:g}m",
                "address": None,
                "lat": lat,
                "lng": lng,
                "properties": {"metres": metres},
            }
        )
    dataset = {
        "key": "tests/synthetic.csv",
        "kind": "register",
        "title": "test bins at known distances",
        "publisher": None,
        "date": None,
        "attribution": None,
        "sha256": "0" * 64,
        "geocoder": None,
        "report": {},
    }
    bins.save_dataset(dataset, records, {kind for kind, _b, _m in SYNTHETIC})


def _signed_in_client(system):
    files = [REGISTERS / f"bins_{gu}.csv" for gu in ("jongno", "gangnam")]
    for path in [*files, KECO]:
        bin_import.import_file(path)
    _seed_synthetic()
    client = system.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = login(client)["Authorization"]
    return client


@pytest.fixture
def api(system_on):
    """A signed-in client over real bins, on SQLite and on PostgreSQL."""
    return _signed_in_client(system_on)


@pytest.fixture
def local_api(system):
    """The same on the embedded default only, for what the database does not change."""
    return _signed_in_client(system)


def _everything() -> list:
    with db.engine().connect() as conn:
        query = select(bins.bins.c.id, bins.bins.c.accepts, bins.bins.c.lat, bins.bins.c.lng)
        visible = query.where(bins.bins.c.lat.is_not(None), bins.bins.c.merged_into.is_(None))
        return conn.execute(visible).all()


def _full_scan(rows, lat, lng, radius, kind, limit) -> list[str]:
    found = []
    for row in rows:
        distance = independent_haversine(lat, lng, row.lat, row.lng)
        if distance <= radius and (kind is None or kind in row.accepts.split()):
            found.append((distance, row.id))
    return [i for _d, i in sorted(found)[:limit]]


# ---- nearby -------------------------------------------------------------------------------


# (radius, type, limit): small and large radii, rare and common types, limits that bind.
SEARCHES = [
    (1000, None, 20),
    (1, None, 5),
    (300, "clothing", 100),
    (5000, "clothing", 100),
    (20000, None, 100),  # thousands inside: only the nearest 100, found by widening
    (20000, "recycle_center", 20),
    (2000, "general", 20),
    (20000, "battery", 10),
]
CENTRES = [CITY_HALL, (37.5048, 127.0489), (37.5800, 126.9600), GOYANG, (35.1796, 129.0756)]


def test_nearby_is_exactly_a_full_scan(api):
    rows = _everything()
    for radius, kind, limit in SEARCHES:
        for lat, lng in CENTRES:
            query = {"lat": lat, "lng": lng, "radius": radius, "limit": limit}
            if kind:
                query["type"] = kind
            response = api.get(NEARBY, query_string=query)
            assert response.status_code == 200, response.get_json()
            body = conforms("locations_nearby", response.get_json())
            ids = [item["id"] for item in body["items"]]
            assert ids == _full_scan(rows, lat, lng, radius, kind, limit), query
            assert body["count"] == len(ids)
            distances = [item["distance_m"] for item in body["items"]]
            assert distances == sorted(distances) and all(d <= radius for d in distances)


def test_distances_agree_with_an_independent_haversine_and_the_ellipsoid(api):
    body = api.get(
        NEARBY, query_string={"lat": 37.5048, "lng": 127.0489, "radius": 20000, "limit": 100}
    ).get_json()
    assert body["count"] == 100
    far = 0
    for item in body["items"]:
        reference = independent_haversine(37.5048, 127.0489, item["lat"], item["lng"])
        assert item["distance_m"] == pytest.approx(reference, abs=0.051)  # rounded to 0.1 m
        wgs84 = Geodesic.WGS84.Inverse(37.5048, 127.0489, item["lat"], item["lng"])["s12"]
        assert item["distance_m"] == pytest.approx(wgs84, rel=0.005, abs=0.1)
        far = max(far, item["distance_m"])
        shown = ("id", "name", "type", "accepts", "address", "lat", "lng", "distance_m", "source")
        assert set(item) == set(shown)
    assert far > 500


def test_radius_and_type_filters_are_exact(api):
    def nearby(**query):
        query = {"lat": CITY_HALL[0], "lng": CITY_HALL[1], **query}
        return api.get(NEARBY, query_string=query).get_json()["items"]

    general = nearby(radius=1000, type="general")
    assert [round(i["distance_m"], 1) for i in general] == [4.9, 999.5]  # 1000.5 m is out
    assert [round(i["distance_m"], 1) for i in nearby(radius=1001, type="general")] == [
        4.9,
        999.5,
        1000.5,
    ]
    assert [i["type"] for i in nearby(radius=20000, type="battery")] == ["battery", "battery"]
    assert [i["distance_m"] for i in nearby(radius=5, type="general")] == [4.9]
    assert nearby(radius=4, type="general") == []
    assert {i["type"] for i in nearby(radius=20000, limit=100)} >= {"clothing", "lamp"}


def test_nearby_refuses_bad_coordinates_radius_and_type(local_api):
    bad = {
        (("lat", 90.5), ("lng", 127)): "lat",
        (("lat", -91), ("lng", 127)): "lat",
        (("lat", 37.5), ("lng", 180.01)): "lng",
        (("lat", 37.5), ("lng", -181)): "lng",
        (("lat", 37.5), ("lng", 127), ("radius", 0)): "radius",
        (("lat", 37.5), ("lng", 127), ("radius", 20001)): "radius",
        (("lat", 37.5), ("lng", 127), ("limit", 0)): "limit",
        (("lat", 37.5), ("lng", 127), ("limit", 101)): "limit",
        (("lat", 37.5), ("lng", 127), ("type", "plastic")): "type",
        (("lng", 127),): "lat",
        (("lat", 37.5), ("lng", 127), ("near", "me")): "near",
    }
    for query, field in bad.items():
        response = local_api.get(NEARBY, query_string=dict(query))
        assert response.status_code == 422, query
        assert error_code(response) == "VALIDATION_FAILED"
        assert field in response.get_json()["error"]["details"]["fields"], query
    for query in ({"lat": "south", "lng": 127}, {"lat": 37.5, "lng": 127, "radius": "far"}):
        response = local_api.get(NEARBY, query_string=query)
        assert response.status_code == 400 and error_code(response) == "BAD_REQUEST"
    response = local_api.get(
        NEARBY, query_string={"lat": 37.5, "lng": 127}, headers={"Authorization": ""}
    )
    assert response.status_code == 401 and error_code(response) == "UNAUTHENTICATED"
    # In range but nowhere near a bin: an empty answer, not an error.
    body = local_api.get(NEARBY, query_string={"lat": -33.86, "lng": 151.21}).get_json()
    assert body == {"items": [], "count": 0}


@pytest.mark.parametrize("radius_m", [1000, 20000])
def test_the_area_index_does_the_pruning(api, radius_m):
    # A wide box has many bands: SQLite once took the index on merged_into there, a scan.
    box = geo.bounding_box(*CITY_HALL, radius_m)
    with db.engine().connect() as conn:
        for kind in (None, "clothing"):
            sql = str(
                bins.area_query(box, kind).compile(conn, compile_kwargs={"literal_binds": True})
            )
            if conn.dialect.name == "sqlite":
                [plan] = conn.execute(text("EXPLAIN QUERY PLAN " + sql)).all()
                # A type is matched on what the area index found (accepts holds several).
                assert plan[3].startswith("SEARCH bins USING INDEX ix_bins_band_lng_lat (")
            elif radius_m <= 1000:
                # (A wide box holds most of this small test table: PostgreSQL rightly scans it.)
                conn.execute(text("ANALYZE bins"))
                plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
                assert "Seq Scan" not in plan and "ix_bins_" in plan, plan


def test_widening_measures_each_bin_of_the_last_box_once(api, monkeypatch):
    """Every round reads only the ring outside the box read before: together they are the last
    box, each of its bins measured exactly once, none missed."""
    measured, boxes = [], []
    haversine, bounding_box = geo.haversine_m, geo.bounding_box

    def measuring(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
        measured.append((lat2, lng2))
        return haversine(lat1, lng1, lat2, lng2)

    def boxing(lat: float, lng: float, radius_m: float) -> geo.Box:
        boxes.append(bounding_box(lat, lng, radius_m))
        return boxes[-1]

    monkeypatch.setattr(geo, "haversine_m", measuring)
    monkeypatch.setattr(geo, "bounding_box", boxing)
    found = bins.nearest(*CITY_HALL, 20000, None, 100)
    assert len(found) == 100 and len(boxes) > 1
    inside = [(r.lat, r.lng) for r in _everything() if boxes[-1].contains(r.lat, r.lng)]
    assert sorted(measured) == sorted(inside)


def test_reads_run_outside_a_transaction(api):
    """On PostgreSQL a search's statements are its only round trips (no BEGIN, no ROLLBACK),
    and the connection goes back to the pool transactional as before."""
    with db.reading() as conn:
        conn.execute(text("SELECT 1"))
        raw = conn.connection.dbapi_connection
        if conn.dialect.name == "postgresql":
            assert raw.info.transaction_status == raw.info.transaction_status.IDLE
    with db.engine().connect() as conn:
        conn.execute(text("SELECT 1"))
        if conn.dialect.name == "postgresql":
            raw = conn.connection.dbapi_connection
            assert not raw.autocommit
            assert raw.info.transaction_status == raw.info.transaction_status.INTRANS


# ---- one bin and the way there ------------------------------------------------------------


def _first(client, **query) -> dict:
    query = {"lat": CITY_HALL[0], "lng": CITY_HALL[1], "radius": 20000, **query}
    return client.get(NEARBY, query_string=query).get_json()["items"][0]


def test_bin_detail_has_everything_the_source_knows(api):
    site = _first(api, lat=GOYANG[0], lng=GOYANG[1], type="recycle_center")
    detail = conforms("locations_bin", api.get(f"/api/v1/locations/bins/{site['id']}").get_json())
    assert detail["name"] == "고양동 종합복지회관" and detail["district"] == "고양시"
    assert detail["opening_hours"]["tue"] == "11:00 ~ 14:00"
    assert "투명페트병" in detail["accepted_items"]
    assert detail["phone"] == "031-8075-2706"
    assert detail["source"]["title"] == "한국환경공단 재활용품 회수보상제 / 자원순환가게 현황"
    assert detail["source"]["row"]["positnSn"] == "1"
    assert "SeSACTHON/backend" in detail["source"]["attribution"]

    clothing = _first(api, type="clothing")
    detail = api.get(f"/api/v1/locations/bins/{clothing['id']}").get_json()
    assert detail["source"]["dataset"] == "seoul_clothing_bins/bins_jongno.csv"
    assert detail["source"]["title"] == "서울특별시 종로구_의류수거함 현황"
    assert detail["source"]["date"] == "2024-07-25"
    assert detail["district"] == "종로구" and detail["source"]["row"]["위도"]
    assert detail["updated_at"].endswith("Z")

    response = api.get("/api/v1/locations/bins/0123456789abcdef")
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"


def test_a_street_bin_without_coordinates_is_in_detail_not_in_nearby(api, tmp_path):
    import json

    path = tmp_path / "street.json"
    item = {
        "자치구": "중구",
        "도로명주소": "세종대로 110",
        "세부위치": "시청 앞",
        "설치장소유형": "정류소(버스 가로변)",
        "쓰레기통종류": "재활용쓰레기",
    }
    path.write_text(json.dumps([item], ensure_ascii=False), encoding="utf-8")
    report = bin_import.import_file(path)
    [street] = [r["id"] for r in _rows(report.dataset)]
    detail = conforms("locations_bin", api.get(f"/api/v1/locations/bins/{street}").get_json())
    assert (detail["lat"], detail["lng"], detail["type"]) == (None, None, "recycling")
    assert detail["address"] == "서울특별시 중구 세종대로 110"
    assert detail["name"] == "재활용 쓰레기통 (시청 앞)"
    items = api.get(
        NEARBY, query_string={"lat": 37.5665, "lng": 126.978, "radius": 20000, "limit": 100}
    )
    assert street not in {i["id"] for i in items.get_json()["items"]}
    response = api.get(
        "/api/v1/locations/navigation",
        query_string={"from_lat": 37.5665, "from_lng": 126.978, "bin_id": street},
    )
    assert response.status_code == 409 and error_code(response) == "BIN_NOT_LOCATED"


def _rows(dataset: str) -> list[dict]:
    with db.engine().connect() as conn:
        query = select(bins.bins).where(bins.bins.c.dataset == dataset)
        return [dict(r) for r in conn.execute(query).mappings()]


def test_navigation_to_a_bin_and_to_a_point(api):
    query = {"lat": CITY_HALL[0], "lng": CITY_HALL[1], "radius": 1000, "type": "general"}
    [south] = [
        i
        for i in api.get(NEARBY, query_string=query).get_json()["items"]
        if i["distance_m"] == 999.5
    ]
    body = api.get(
        "/api/v1/locations/navigation",
        query_string={"from_lat": CITY_HALL[0], "from_lng": CITY_HALL[1], "bin_id": south["id"]},
    ).get_json()
    assert conforms("locations_navigation", body)["distance_m"] == 999.5
    assert body["bearing_deg"] == 180.0  # the synthetic bin lies due south
    assert body["walking_minutes"] == math.ceil(999.5 * 1.3 / 75) == 18
    assert body["destination"]["id"] == south["id"] and body["destination"]["type"] == "general"
    lat, lng = south["lat"], south["lng"]
    name = quote(south["name"], safe="")
    assert "%2C" in name  # the name's comma cannot split the link's fields
    assert body["links"] == {
        "kakao_map_web": f"https://map.kakao.com/link/to/{name},{lat:.6f},{lng:.6f}",
        "kakao_map_app": (
            f"kakaomap://route?sp={CITY_HALL[0]:.6f},{CITY_HALL[1]:.6f}"
            f"&ep={lat:.6f},{lng:.6f}&by=FOOT"
        ),
    }

    east = offset(CITY_HALL, 90, 2500)
    body = api.get(
        "/api/v1/locations/navigation",
        query_string={
            "from_lat": CITY_HALL[0],
            "from_lng": CITY_HALL[1],
            "to_lat": east[0],
            "to_lng": east[1],
        },
    ).get_json()
    assert (body["distance_m"], body["bearing_deg"], body["walking_minutes"]) == (2500.0, 90.0, 44)
    assert body["destination"] == {"name": "목적지", "lat": east[0], "lng": east[1]}


def test_navigation_refuses_what_it_cannot_route(local_api):
    url = "/api/v1/locations/navigation"
    start = {"from_lat": 37.5665, "from_lng": 126.978}
    cases = [
        ({**start, "bin_id": "x", "to_lat": 37.5, "to_lng": 127.0}, 422, "bin_id"),
        (start, 422, "to_lat"),
        ({**start, "to_lat": 37.5}, 422, "to_lng"),
        ({**start, "from_lat": 95, "to_lat": 37.5, "to_lng": 127}, 422, "from_lat"),
        ({"from_lng": 126.978, "to_lat": 37.5, "to_lng": 127}, 422, "from_lat"),
    ]
    for query, status, field in cases:
        response = local_api.get(url, query_string=query)
        assert response.status_code == status, query
        assert field in response.get_json()["error"]["details"]["fields"], query
    response = local_api.get(url, query_string={**start, "bin_id": "0123456789abcdef"})
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"


# ---- Kakao places -------------------------------------------------------------------------


def kakao_place(place_id: str, name: str, lat: float, lng: float, distance: int) -> dict:
    """One document of a Kakao Local keyword-search answer, as the API returns it."""
    return {
        "id": place_id,
        "place_name": name,
        "category_name": "사회,공공기관 > 행정기관 > 환경시설",
        "category_group_code": "PO3",
        "category_group_name": "공공기관",
        "phone": "031-000-0000",
        "address_name": "경기 고양시 덕양구 고양동 1",
        "road_address_name": "경기 고양시 덕양구 고양대로 1",
        "x": f"{lng:.7f}",
        "y": f"{lat:.7f}",
        "place_url": f"http://place.map.kakao.com/{place_id}",
        "distance": str(distance),
    }


def keyword_answer(*documents: dict) -> dict:
    return {
        "meta": {
            "total_count": len(documents),
            "pageable_count": len(documents),
            "is_end": True,
            "same_name": {"region": [], "keyword": "재활용센터", "selected_region": ""},
        },
        "documents": list(documents),
    }


@pytest.fixture
def kakao(env, api):
    """A Kakao key; fresh per test, so its cache namespace in the shared Redis is too."""
    from shared.core.settings import settings

    key = uuid.uuid4().hex
    env.setenv("KAKAO_REST_API_KEY", key)
    settings.cache_clear()
    return key


def _goyang(client, **query) -> dict:
    query = {"lat": GOYANG[0], "lng": GOYANG[1], "radius": 1000, **query}
    response = client.get(NEARBY, query_string=query)
    assert response.status_code == 200
    return response.get_json()


def test_kakao_places_join_nearby_deduplicated_and_cached(kakao, api):
    same_spot = offset(GOYANG, 30, 15)  # our KECO site under another name
    same_name = offset(GOYANG, 200, 200)  # our KECO site's name, a little off
    new = offset(GOYANG, 90, 300)
    too_far = offset(GOYANG, 0, 1600)
    documents = [
        kakao_place("101", "고양시 재활용 무인회수기", *same_spot, 15),
        kakao_place("102", "고양동 종합 복지회관", *same_name, 200),
        kakao_place("103", "덕양구 재활용센터", *new, 300),
        kakao_place("104", "먼 재활용센터", *too_far, 1600),
    ]
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, kakao_local.KEYWORD_URL, json=keyword_answer(*documents))
        rsps.add(responses.GET, kakao_local.KEYWORD_URL, json=keyword_answer(documents[2]))
        body = _goyang(api)
        calls = [c.request for c in rsps.calls]
    assert [c.params["query"] for c in calls] == list(kakao_local.PLACE_KEYWORDS)
    assert all(c.headers["Authorization"] == f"KakaoAK {kakao}" for c in calls)
    assert calls[0].params["sort"] == "distance" and int(calls[0].params["radius"]) >= 1000
    assert all(sum(c.req_kwargs["timeout"]) <= 1.0 for c in calls)  # a user is waiting
    places = [
        i for i in conforms("locations_nearby", body)["items"] if i["source"] == "kakao_local"
    ]
    assert [(p["id"], p["name"], p["type"]) for p in places] == [
        ("kakao:103", "덕양구 재활용센터", "recycle_center")
    ]
    assert places[0]["distance_m"] == pytest.approx(300, abs=0.2)
    distances = [i["distance_m"] for i in body["items"]]
    assert distances == sorted(distances) and body["count"] == len(body["items"])
    assert body["items"][0]["name"] == "고양동 종합복지회관"  # ours, at 0 m

    with responses.RequestsMock() as rsps:  # cached: Kakao is not asked again
        assert _goyang(api, lat=GOYANG[0] + 0.0005)["count"] == body["count"]
        assert len(rsps.calls) == 0
        detail = conforms("locations_bin", api.get("/api/v1/locations/bins/kakao:103").get_json())
    assert detail["source"]["dataset"] == "kakao_local"
    assert detail["source"]["row"]["place_url"] == "http://place.map.kakao.com/103"
    response = api.get("/api/v1/locations/bins/kakao:999")
    assert response.status_code == 404

    with responses.RequestsMock() as rsps:  # other types do not ask Kakao
        assert all(i["type"] == "clothing" for i in _goyang(api, type="clothing")["items"])
        assert len(rsps.calls) == 0


def test_nearby_answers_when_kakao_is_slow_or_down(kakao, api):
    failures = {
        "slow": requests.exceptions.ReadTimeout("read timed out. (read timeout=0.7)"),
        "unreachable": requests.exceptions.ConnectionError("connection refused"),
        "down": 503,
    }
    for name, failure in failures.items():
        with responses.RequestsMock() as rsps:
            if failure == 503:
                rsps.add(responses.GET, kakao_local.KEYWORD_URL, status=503, body="Unavailable")
            else:
                rsps.add(responses.GET, kakao_local.KEYWORD_URL, body=failure)
            body = _goyang(api)
            assert len(rsps.calls) == 1, name
        assert body["count"] >= 1 and all(i["source"] != "kakao_local" for i in body["items"])
        with responses.RequestsMock() as rsps:  # the breaker is open: no waiting on Kakao again
            assert _goyang(api)["count"] == body["count"]
            assert len(rsps.calls) == 0, name
        cache.client().delete(kakao_local._key("places-down"))  # closed again for the next

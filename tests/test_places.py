"""Every kind of drop-off point from the public files: what a point accepts from free-text item
columns, two sources' copies of one point made one, coverage per 시도/시군구, and the places a
user asks about (City Hall, Gangnam station, battery boxes in 관악구 and 은평구)."""

from __future__ import annotations

import pytest
from conftest import login
from sqlalchemy import func, select

from shared.core import db
from shared.locations import bin_import, bins
from shared.locations.bin_import import BinFileError

NEARBY = "/api/v1/locations/bins/nearby"
CITY_HALL = (37.5665, 126.9780)
GANGNAM_STATION = (37.4979, 127.0276)
GWANAK_OFFICE = (37.4784, 126.9516)  # 관악구청
EUNPYEONG_OFFICE = (37.6027, 126.9291)  # 은평구청


@pytest.fixture
def places(public_bins, system):
    client = system.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = login(client)["Authorization"]
    return client


def _nearby(client, point, **query) -> list[dict]:
    response = client.get(NEARBY, query_string={"lat": point[0], "lng": point[1], **query})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("형광등+건전지", ["lamp", "battery"]),
        ("폐형광등+폐LED+폐전지류", ["lamp", "battery"]),
        ("폐형광등·폐전지통합형", ["lamp", "battery"]),
        ("배터리+형광등", ["battery", "lamp"]),
        ("폐건전지", ["battery"]),
        ("일반쓰레기+재활용쓰", ["general", "recycling"]),  # cut short in the source
        ("기타", []),
        ("가전+가구", []),
        ("플라스틱+헌옷+소형가전", ["recycling", "clothing", "small_appliance"]),
    ],
)
def test_free_text_items_become_the_types_a_point_accepts(text, types):
    assert bin_import.item_types(text) == types


def test_the_public_files_give_every_kind_with_coverage(public_bins):
    battery = public_bins["national_standard/battery_lamp_boxes.csv"]
    assert battery.types == ["battery", "lamp"]
    # 합천군's 270 boxes: 264 take batteries, 203 lamps (a box counts under each it takes).
    assert battery.coverage["경상남도 합천군"] == {"battery": 264, "lamp": 203}
    centres = public_bins["national_standard/recycling_centers.csv"]
    assert centres.examples["closed"] == ["line 2: 통영시 재활용품 상설판매장(운영중단)"]
    trash = public_bins["national_standard/public_trash_cans.csv"]
    assert trash.types == ["recycling", "general"]
    gwanak = public_bins["seoul_battery_boxes/gwanak.csv"]
    assert gwanak.coverage == {"서울특별시 관악구": {"battery": 220, "lamp": 168}}  # 통합형
    summary = bin_import.summary(battery)
    assert "read 805, imported 805, merged 0" in summary
    assert "coverage 경상남도 합천군: battery" in summary

    table = bins.coverage()
    assert table["서울특별시 관악구"]["battery"] == 220
    assert table["서울특별시 은평구"]["battery"] == 240
    assert table["서울특별시 중구"]["clothing"] == 184  # the national file has none there
    kinds = {kind for counts in table.values() for kind in counts}
    assert kinds == set(bins.TYPES)  # small_appliance: two centres (소형가전, 소형전자제품)


def test_one_point_from_two_sources_is_one_point(public_bins, places):
    # 서초구 publishes its clothing bins in its own register and in the national file.
    assert public_bins["seoul_clothing_bins/bins_seocho.csv"].merged == 244
    with db.engine().connect() as conn:
        seocho = bins.bins.alias("seocho")
        pair = conn.execute(
            select(seocho.c.id, seocho.c.merged_into, bins.bins.c.dataset)
            .join(bins.bins, bins.bins.c.id == seocho.c.merged_into)
            .where(seocho.c.dataset == "seoul_clothing_bins/bins_seocho.csv")
            .limit(1)
        ).one()
        merged = conn.execute(
            select(func.count()).where(bins.bins.c.merged_into.is_not(None))
        ).scalar_one()
    assert pair.dataset == "national_standard/clothing_bins.csv"  # 2026-06-12, the newer
    kept = places.get(f"/api/v1/locations/bins/{pair.merged_into}").get_json()
    assert [other["id"] for other in kept["also_in"]] == [pair.id]
    assert kept["also_in"][0]["dataset"] == "seoul_clothing_bins/bins_seocho.csv"
    older = places.get(f"/api/v1/locations/bins/{pair.id}").get_json()
    assert older["merged_into"] == pair.merged_into
    near = _nearby(places, (kept["lat"], kept["lng"]), radius=30, limit=100)
    ids = [item["id"] for item in near]
    assert pair.merged_into in ids and pair.id not in ids
    # Every merged row is counted by both datasets' reports.
    national = public_bins["national_standard/clothing_bins.csv"].merged
    others = sum(
        r.merged for k, r in public_bins.items() if k != "national_standard/clothing_bins.csv"
    )
    assert merged == others and 0 < national <= merged


def test_city_hall_and_gangnam_station_have_points_of_several_kinds(places):
    for point in (CITY_HALL, GANGNAM_STATION):
        found = _nearby(places, point, radius=1000, limit=100)
        kinds = {kind for item in found for kind in item["accepts"]}
        assert len(kinds) >= 3, (point, kinds)
    assert {"general", "recycling", "medicine", "clothing"} <= {
        kind
        for item in _nearby(places, CITY_HALL, radius=1000, limit=100)
        for kind in item["accepts"]
    }


def test_battery_boxes_are_found_in_gwanak_and_eunpyeong(places):
    for point, district in ((GWANAK_OFFICE, "관악구"), (EUNPYEONG_OFFICE, "은평구")):
        found = _nearby(places, point, radius=1000, type="battery", limit=5)
        assert len(found) == 5 and all("battery" in item["accepts"] for item in found)
        detail = places.get(f"/api/v1/locations/bins/{found[0]['id']}").get_json()
        assert (detail["city"], detail["district"]) == ("서울특별시", district)
    # 관악구's combined boxes take lamps too, and answer a lamp search.
    lamps = _nearby(places, GWANAK_OFFICE, radius=2000, type="lamp", limit=5)
    assert lamps and all(set(item["accepts"]) >= {"lamp", "battery"} for item in lamps)
    assert _nearby(places, CITY_HALL, radius=1000, type="medicine")


# ---- layouts never seen before ------------------------------------------------------------


def test_a_layout_never_seen_imports_with_row_kinds(database_env, tmp_path):
    text = (
        "시설 번호,수거함명,광역시도명,시군구,LAT,LON,수거대상,비고\n"
        "A-1,동사무소,경기도,수원시 장안구,37.3039,127.0101,폐건전지+폐형광등,\n"
        "A-2,복지관,경기도,수원시 장안구,37.3001,127.0122,폐의약품,\n"
        "A-3,공원,경기도,수원시 장안구,37.3001,0,폐건전지,좌표 없음\n"
    )
    path = tmp_path / "장안구_수거함.csv"
    path.write_bytes(text.encode("cp949"))
    report = bin_import.import_file(path)
    assert (report.rows_read, report.imported, report.skipped) == (3, 2, {"zero_coordinates": 1})
    assert report.types == ["battery", "lamp", "medicine"]
    assert report.coverage == {"경기도 수원시 장안구": {"battery": 1, "lamp": 1, "medicine": 1}}
    with db.engine().connect() as conn:
        rows = conn.execute(select(bins.bins).where(bins.bins.c.dataset == report.dataset))
        found = {r.name: r for r in rows}
    assert found["동사무소"].accepts == " battery lamp "
    assert (found["복지관"].type, found["복지관"].city) == ("medicine", "경기도")


def test_a_layout_that_cannot_be_placed_names_the_column(database_env, tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text('이름,좌표,품목\n주민센터,"37.56, 126.97",건전지\n', encoding="utf-8")
    with pytest.raises(BinFileError, match="cannot place column '좌표'"):
        bin_import.import_file(path)


@pytest.fixture
def database_env(env):
    db.migrate()
    return env

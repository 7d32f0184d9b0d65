"""The bin importer takes public files as published: layouts it has not seen, cp949 and BOMs,
bad coordinates reported by reason, re-imports in place, street bins geocoded through Kakao."""

from __future__ import annotations

import json
import uuid

import pytest
import responses
from conftest import DATASETS
from sqlalchemy import func, select

from shared.core import db
from shared.locations import bin_import, bins, kakao_local
from shared.locations.bin_import import BinFileError

DATA = DATASETS / "locations"
REGISTERS = DATA / "seoul_clothing_bins"
KECO = DATA / "keco_recycle_compensation_sites.csv"
STREET = DATA / "seoul_street_bins_2025_addresses.json"


@pytest.fixture
def database(env):
    db.migrate()
    return env


def _rows(dataset: str) -> dict[str, dict]:
    with db.engine().connect() as conn:
        found = conn.execute(select(bins.bins).where(bins.bins.c.dataset == dataset)).mappings()
        return {row["source_id"]: dict(row) for row in found}


def _count(kind: str | None = None) -> int:
    query = select(func.count()).select_from(bins.bins)
    if kind:
        query = query.where(bins.bins.c.type == kind)
    with db.engine().connect() as conn:
        return conn.execute(query).scalar_one()


def _write(path, text: str, encoding: str) -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


# ---- the bundled data ---------------------------------------------------------------------

# What each public file holds, counted by hand from the files: (read, imported, skipped).
EXPECTED = {
    "seoul_clothing_bins/bins_dongdaemun.csv": (512, 512, {}),
    "seoul_clothing_bins/bins_dongjak.csv": (419, 393, {"zero_coordinates": 26}),
    "seoul_clothing_bins/bins_gangdong.csv": (470, 470, {}),  # X좌표 is the longitude
    "seoul_clothing_bins/bins_gwanak.csv": (887, 887, {}),
    "seoul_clothing_bins/bins_jungnang.csv": (615, 575, {"missing_coordinates": 40}),
    "seoul_clothing_bins/bins_seocho.csv": (245, 245, {}),
    "seoul_clothing_bins/bins_eunpyeong.csv": (832, 832, {}),
    "seoul_clothing_bins/bins_gangbuk.csv": (729, 729, {}),
    "seoul_clothing_bins/bins_gangnam.csv": (667, 667, {}),
    "seoul_clothing_bins/bins_gangseo.csv": (623, 623, {}),
    "seoul_clothing_bins/bins_geumcheon.csv": (339, 328, {"zero_coordinates": 11}),
    "seoul_clothing_bins/bins_gwangjin.csv": (479, 478, {"outside_korea": 1}),
    "seoul_clothing_bins/bins_jongno.csv": (246, 246, {}),
    "seoul_clothing_bins/bins_mapo.csv": (418, 418, {}),
    "seoul_clothing_bins/bins_seodaemun.csv": (506, 506, {}),
    "seoul_clothing_bins/bins_seongbuk.csv": (252, 252, {}),
    "seoul_clothing_bins/bins_seongdong.csv": (310, 310, {}),
    "seoul_clothing_bins/bins_songpa.csv": (578, 578, {}),
    "seoul_clothing_bins/bins_yangcheon.csv": (674, 673, {"unparseable_coordinates": 1}),
    "seoul_clothing_bins/bins_yeongdeungpo.csv": (265, 253, {"missing_coordinates": 12}),
    "locations/keco_recycle_compensation_sites.csv": (
        409,
        395,
        {"missing_coordinates": 9, "outside_korea": 3, "unparseable_coordinates": 2},
    ),
    "locations/seoul_street_bins_2025_addresses.json": (
        6849,
        6365,
        {"cigarette_bin": 480, "unknown_bin_kind": 4},
    ),
    # National standard data (cp949): every row has 시도명/시군구명 and its own item text.
    "national_standard/battery_lamp_boxes.csv": (805, 805, {}),
    "national_standard/clothing_bins.csv": (10503, 9532, {"missing_coordinates": 971}),
    "national_standard/medicine_boxes.csv": (6741, 6741, {}),
    "national_standard/public_trash_cans.csv": (3517, 3326, {"unknown_bin_kind": 191}),  # 기타
    "national_standard/recycling_centers.csv": (183, 182, {"closed": 1}),  # (운영중단)
    "seoul_battery_boxes/eunpyeong.csv": (240, 240, {}),
    "seoul_battery_boxes/gwanak.csv": (220, 220, {}),
    "seoul_clothing_bins_more/bins_junggu.csv": (184, 184, {}),
    "seoul_clothing_bins_more/bins_nowon.csv": (297, 297, {}),
}
# Bins written: one per imported row, but six street rows hold two (일반+재활용).
BINS = sum(imported for _read, imported, _skipped in EXPECTED.values()) + 6


# As published: most district registers are cp949, two came re-saved as UTF-8 with a BOM.
ENCODINGS = {
    d: "utf-8-sig" if d.endswith(("dongjak.csv", "gangdong.csv")) else "cp949"
    for d in EXPECTED
    if d.startswith(("seoul_clothing_bins/", "national_standard/"))
}
CLOTHING = sum(v[1] for k, v in EXPECTED.items() if k.startswith("seoul_clothing_bins/"))


def test_bundled_import_report(public_bins):
    reports = public_bins
    assert set(reports) == set(EXPECTED)
    for dataset, (read, imported, skipped) in EXPECTED.items():
        report = reports[dataset]
        assert (report.rows_read, report.imported, report.skipped) == (read, imported, skipped)
        assert report.rows_read == report.imported + sum(report.skipped.values())
        for reason, count in skipped.items():  # every reason shows where, up to five times
            assert len(report.examples[reason]) == min(count, 5)
            assert report.examples[reason][0].startswith(("line ", "item "))
        assert report.encoding == ENCODINGS.get(dataset, "utf-8"), dataset

    clothing = [r for d, r in reports.items() if d.startswith("seoul_clothing_bins/")]
    assert {r.kind for r in clothing} == {"register"}
    assert all(r.types == ["clothing"] for r in clothing)
    assert sum(r.imported for r in clothing) == CLOTHING
    keco = reports["locations/keco_recycle_compensation_sites.csv"]
    street = reports["locations/seoul_street_bins_2025_addresses.json"]
    assert keco.examples["unparseable_coordinates"][0] == (
        "line 1473: 99 용오리사이클점: '37.45255496043788?', '126.6402626'"
    )
    # Street bins: 일반쓰레기+재활용쓰레기 rows become two bins; no key, so no coordinates.
    assert street.types == ["general", "recycling"]
    assert street.bins == 6371 and street.without_coordinates == 6371
    assert street.geocoding["pending"] == street.geocoding["addresses"] == 3549
    assert _count() == BINS
    assert _count("general") + _count("recycling") == 6371 + 3326

    gangseo = reports["seoul_clothing_bins/bins_gangseo.csv"]
    assert "lat=위도" in gangseo.notes[0]
    assert "road_address=설치장소(도로명주소)" in gangseo.notes[0]


def test_bundled_rows_keep_what_the_source_knows(database):
    for path in (KECO, REGISTERS / "bins_songpa.csv", REGISTERS / "bins_mapo.csv"):
        bin_import.import_file(path)
    keco = _rows("locations/keco_recycle_compensation_sites.csv")["1"]
    assert keco["name"] == "고양동 종합복지회관"
    assert keco["address"] == "경기도 고양시 덕양구 혜음로 19-11"  # province from the lot address
    hours = keco["opening_hours"]
    assert hours["tue"] == "11:00 ~ 14:00" and hours["mon"] == "휴무"
    assert set(hours) == {"mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday"}
    assert keco["accepted_items"][:3] == ["투명페트병", "유색페트병", "판PET"]  # quoted newlines
    assert keco["properties"]["positnIntdcCn"].count("\n") == 3
    assert (keco["lat"], keco["lng"]) == (37.7025454, 126.901133)

    songpa = next(iter(_rows("seoul_clothing_bins/bins_songpa.csv").values()))
    # The file names neither city nor district: both come from its file name.
    assert songpa["address"].startswith("서울특별시 송파구 ") and songpa["district"] == "송파구"
    mapo = next(iter(_rows("seoul_clothing_bins/bins_mapo.csv").values()))
    assert mapo["source_date"] == "2022-12-16"  # written as the Excel day number 44911.0


# ---- layouts never seen before ------------------------------------------------------------

UNSEEN_XY = """번호,설치위치,X좌표,Y좌표,관리기관,비고
1,도봉로 552,127.0471,37.6688,도봉구청,
2,방학로 101,127.0355,37.6653,도봉구청,
3,마들로 11,37.6527,127.0468,도봉구청,위도와 경도가 바뀐 행
4,시루봉로 2,0,0,도봉구청,
5,해등로 3,,,도봉구청,
6,노해로 4,127.04a,37.66,도봉구청,
7,우이천로 5,-73.98,40.75,도봉구청,뉴욕
,,,,,
"""


@pytest.mark.parametrize("encoding", ["cp949", "utf-8-sig"])
def test_x_y_columns_import_as_longitude_latitude(database, tmp_path, encoding):
    path = _write(tmp_path / "도봉구_의류수거함.csv", UNSEEN_XY, encoding)
    report = bin_import.import_file(path)
    assert (report.kind, report.types) == ("register", ["clothing"])
    assert report.encoding == ("cp949" if encoding == "cp949" else "utf-8-sig")
    assert (report.rows_read, report.imported) == (8, 2)
    assert report.skipped == {
        "swapped_coordinates": 1,
        "zero_coordinates": 1,
        "missing_coordinates": 1,
        "unparseable_coordinates": 1,
        "outside_korea": 1,
        "blank_row": 1,
    }
    assert report.examples["swapped_coordinates"] == ["line 4: '127.0468', '37.6527'"]
    rows = _rows(report.dataset)
    first = rows["도봉로 552||"]
    assert (first["lat"], first["lng"]) == (37.6688, 127.0471)
    assert first["address"] == "도봉로 552"  # no district anywhere in the file: left as given
    assert first["properties"]["관리기관"] == "도봉구청"


def test_longitude_before_latitude_with_a_title_line_and_type_given(database, tmp_path):
    text = (
        "서울특별시 도봉구 폐건전지 수거함 현황\n"
        "경도,위도,소재지,상세 위치,데이터기준일자\n"
        "127.0471,37.6688,서울특별시 도봉구 도봉로 552,주민센터 앞,2025.03.02\n"
        '127.0355,37.6653,"서울특별시 도봉구 방학로 101","1층, 입구",20250302\n'
    )
    path = _write(tmp_path / "register.csv", text, "utf-8-sig")
    report = bin_import.import_file(path, "battery")
    assert report.types == ["battery"] and report.imported == 2
    assert "1 line(s) before the header row ignored" in report.notes
    rows = _rows(report.dataset)
    row = rows["서울특별시 도봉구 방학로 101|1층, 입구|"]
    assert (row["lat"], row["lng"], row["type"]) == (37.6653, 127.0355, "battery")
    assert (row["district"], row["location_detail"]) == ("도봉구", "1층, 입구")
    assert row["name"] == "폐건전지 수거함 (1층, 입구)" and row["source_date"] == "2025-03-02"
    # Without --type the title line says what the bins are.
    again = bin_import.import_file(path)
    assert again.types == ["battery"]


def test_header_that_mislabels_its_columns_is_read_by_the_values(database, tmp_path):
    text = "위도,경도,주소\n127.0471,37.6688,도봉로 552\n127.0355,37.6653,방학로 101\n"
    path = _write(tmp_path / "clothing.csv", text, "cp949")
    report = bin_import.import_file(path)
    assert report.imported == 2 and not report.skipped
    assert any("read the other way round" in note for note in report.notes)
    assert _rows(report.dataset)["도봉로 552||"]["lat"] == 37.6688


def test_files_it_cannot_read_are_refused_with_a_reason(database, tmp_path):
    no_coordinates = _write(tmp_path / "clothing.csv", "이름,주소\n가,나\n", "utf-8")
    with pytest.raises(BinFileError, match="no latitude/longitude"):
        bin_import.import_file(no_coordinates)
    no_type = _write(tmp_path / "bins.csv", "위도,경도\n37.6688,127.0471\n", "utf-8")
    with pytest.raises(BinFileError, match="--type"):
        bin_import.import_file(no_type)
    other_json = _write(tmp_path / "x.json", json.dumps([{"a": 1}]), "utf-8")
    with pytest.raises(BinFileError, match="no known layout"):
        bin_import.import_file(other_json)
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\xff\xfe\xfd\x80\x81")
    with pytest.raises(BinFileError):
        bin_import.import_file(binary)


# ---- re-import ----------------------------------------------------------------------------


def test_reimport_updates_in_place_and_drops_what_the_file_no_longer_lists(database, tmp_path):
    source = (REGISTERS / "bins_gangbuk.csv").read_bytes().decode("cp949").splitlines()
    path = tmp_path / "seoul_clothing_bins" / "bins_gangbuk.csv"
    path.parent.mkdir()
    _write(path, "\n".join(source) + "\n", "cp949")
    first = bin_import.import_file(path)
    before = _rows(first.dataset)
    assert len(before) == first.imported == 729

    again = bin_import.import_file(path)  # the same file: nothing new, nothing lost
    assert _rows(first.dataset).keys() == before.keys() and again.removed == 0
    assert {r["id"] for r in _rows(first.dataset).values()} == {r["id"] for r in before.values()}

    # The district moves one bin and removes another.
    header, moved, dropped, *rest = source
    cells = moved.split(",")
    cells[4] = "37.64"  # 위도
    _write(path, "\n".join([header, ",".join(cells), *rest]) + "\n", "cp949")
    changed = bin_import.import_file(path)
    after = _rows(first.dataset)
    assert len(after) == 728 and changed.removed == 1
    moved_id = cells[1]  # 의류수거함관리코드: the stable source id
    assert after[moved_id]["lat"] == 37.64 and after[moved_id]["id"] == before[moved_id]["id"]
    assert dropped.split(",")[1] not in after


def test_unchanged_bundled_files_are_skipped(database):
    bin_import.import_file(KECO)
    report = bin_import.import_file(KECO, only_if_changed=True)
    assert report.unchanged and report.imported == 395
    assert bin_import.summary(report).endswith("unchanged since the last import")


# ---- street bins and Kakao geocoding ------------------------------------------------------

STREET_ITEMS = [
    {
        "자치구": "종로구",
        "도로명주소": "사직로 125",
        "세부위치": "경복궁역 4번출구",
        "설치장소유형": "지하철역 입구",
        "쓰레기통종류": "일반쓰레기+재활용쓰레기",
    },
    {
        "자치구": "종로구",
        "도로명주소": "자하문로4길 6",
        "세부위치": "스타벅스 앞",
        "설치장소유형": "도로변(횡단보도 포함)",
        "쓰레기통종류": "재활용쓰레기",
    },
    {
        "자치구": "중구",
        "도로명주소": "명동 먹자골목",
        "세부위치": "-",
        "설치장소유형": "상가지역",
        "쓰레기통종류": "일반쓰레기",
    },
    {
        "자치구": "중구",
        "도로명주소": "명동길 14",
        "세부위치": "눈스퀘어 앞",
        "설치장소유형": "상가지역",
        "쓰레기통종류": "담배꽁초",
    },
]


def kakao_address(address: str, lng: str, lat: str) -> dict:
    """A Kakao Local address-search answer for one road address, as the API returns it."""
    return {
        "meta": {"total_count": 1, "pageable_count": 1, "is_end": True},
        "documents": [
            {
                "address_name": address,
                "address_type": "ROAD_ADDR",
                "x": lng,
                "y": lat,
                "address": {"address_name": address, "x": lng, "y": lat},
                "road_address": {
                    "address_name": address,
                    "region_1depth_name": "서울",
                    "region_2depth_name": "종로구",
                    "road_name": address.split()[-2],
                    "underground_yn": "N",
                    "main_building_no": address.split()[-1],
                    "sub_building_no": "",
                    "building_name": "",
                    "zone_no": "03045",
                    "x": lng,
                    "y": lat,
                },
            }
        ],
    }


NO_MATCH = {"meta": {"total_count": 0, "pageable_count": 0, "is_end": True}, "documents": []}


@pytest.fixture
def kakao_key(database, monkeypatch):
    key = uuid.uuid4().hex
    database.setenv("KAKAO_REST_API_KEY", key)
    from shared.core.settings import settings

    settings.cache_clear()
    monkeypatch.setattr(kakao_local, "GEOCODE_PER_SECOND", 1000.0)
    return key


def _answer_addresses(rsps: responses.RequestsMock) -> None:
    def reply(request):
        query = request.params["query"]
        if query == "서울특별시 종로구 사직로 125":
            found = kakao_address("서울 종로구 사직로 125", "126.9723", "37.5759")
            return 200, {}, json.dumps(found)
        if query == "서울특별시 종로구 자하문로4길 6":
            return 429, {"Retry-After": "0"}, json.dumps({"errorType": "RequestThrottled"})
        return 200, {}, json.dumps(NO_MATCH)

    rsps.add_callback(responses.GET, kakao_local.ADDRESS_URL, callback=reply)


def test_street_bins_are_geocoded_once_and_kept_without_coordinates_when_not_found(
    kakao_key, tmp_path
):
    path = _write(tmp_path / "street.json", json.dumps(STREET_ITEMS, ensure_ascii=False), "utf-8")
    with responses.RequestsMock() as rsps:
        _answer_addresses(rsps)
        report = bin_import.import_file(path)
        calls = [c.request for c in rsps.calls]
    assert (report.rows_read, report.imported, report.bins) == (4, 3, 4)
    assert report.skipped == {"cigarette_bin": 1}
    assert all(c.headers["Authorization"] == f"KakaoAK {kakao_key}" for c in calls)
    # 사직로 once, 자하문로 throttled three times (429), 명동 먹자골목 once (not found).
    assert [c.params["query"] for c in calls].count("서울특별시 종로구 자하문로4길 6") == 3
    assert report.geocoding == {
        "addresses": 3,
        "located": 1,
        "not_found": 1,
        "pending": 1,
        "kakao_calls": 5,
        "error": None,
    }
    rows = _rows(report.dataset)
    located = [r for r in rows.values() if r["lat"] is not None]
    assert {(r["type"], r["lat"], r["lng"]) for r in located} == {
        ("general", 37.5759, 126.9723),
        ("recycling", 37.5759, 126.9723),
    }
    assert report.without_coordinates == 2

    # Found and not-found answers are remembered: a re-import asks Kakao only what failed.
    with responses.RequestsMock() as rsps:
        rsps.add(
            responses.GET,
            kakao_local.ADDRESS_URL,
            json=kakao_address("서울 종로구 자하문로4길 6", "126.9706", "37.5769"),
        )
        again = bin_import.import_file(path)
        asked = [c.request.params["query"] for c in rsps.calls]
        assert asked == ["서울특별시 종로구 자하문로4길 6"]
    assert again.without_coordinates == 1 and len(_rows(report.dataset)) == 4


def test_a_refused_key_stops_geocoding_and_keeps_the_bins(kakao_key, tmp_path):
    path = _write(tmp_path / "street.json", json.dumps(STREET_ITEMS, ensure_ascii=False), "utf-8")
    with responses.RequestsMock() as rsps:
        rsps.add(
            responses.GET,
            kakao_local.ADDRESS_URL,
            status=401,
            json={"errorType": "AccessDeniedError", "message": "wrong appKey"},
        )
        report = bin_import.import_file(path)
        assert len(rsps.calls) == 1
    assert report.bins == 4 and report.without_coordinates == 4
    assert report.geocoding["pending"] == 3 and "401" in report.geocoding["error"]


def test_geocoding_is_paced(kakao_key, monkeypatch):
    """On a clock that only sleeping moves (calls take no time), every call after the first
    waits exactly its turn: the pacing, not the machine's speed, is what is tested."""
    clock = [1000.0]
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(kakao_local, "GEOCODE_PER_SECOND", 40.0)
    monkeypatch.setattr(kakao_local, "_next_call", 0.0)
    monkeypatch.setattr(kakao_local.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(kakao_local.time, "sleep", sleep)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, kakao_local.ADDRESS_URL, json=NO_MATCH)
        kakao_local.geocode([f"서울특별시 중구 없는길 {n}" for n in range(4)])
        assert len(rsps.calls) == 4
    assert waits == pytest.approx([0.025, 0.025, 0.025])
    assert clock[0] == pytest.approx(1000.075)


def test_cli_imports_files_and_reports(database, tmp_path, capsys):
    from knative import cli

    path = _write(tmp_path / "x.csv", "경도,위도\n127.0471,37.6688\n0,0\n", "utf-8")
    assert cli.main(["import-bins", path, "--type", "lamp", "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert (report["types"], report["imported"], report["skipped"]) == (
        ["lamp"],
        1,
        {"zero_coordinates": 1},
    )
    assert cli.main(["import-bins", path, "--type", "lamp"]) == 0
    assert "skipped 1 x zero_coordinates, e.g. line 3: '0', '0'" in capsys.readouterr().out
    assert cli.main(["import-bins", str(tmp_path / "missing.csv")]) == 1
    assert cli.main(["import-bins", path, "--type", "plastic"]) == 2


def test_local_start_imports_the_bundled_data_once(env):
    from knative import local

    system = local.start(with_cron=False)
    system.stop()
    first = {k: s["imported_at"] for k, s in _datasets().items()}
    assert len(first) == len(EXPECTED) and _count() == BINS
    system = local.start(with_cron=False)
    system.stop()
    assert {k: s["imported_at"] for k, s in _datasets().items()} == first


def _datasets() -> dict[str, dict]:
    with db.engine().connect() as conn:
        return {r["key"]: dict(r) for r in conn.execute(select(bins.bin_datasets)).mappings()}


def test_the_daily_import_runs_from_its_ping_once_per_event(system):
    from datetime import UTC, datetime

    from eventing.cron import ping

    event = ping(system.registry["datasets_import"], datetime.now(UTC))
    assert system.broker.publish(event) == 1
    assert system.broker.wait_idle(60)
    first = {k: s["imported_at"] for k, s in _datasets().items()}
    assert len(first) == len(EXPECTED) and _count() == BINS
    system.broker.publish(event)  # delivered again: the same event changes nothing
    assert system.broker.wait_idle(60)
    assert {k: s["imported_at"] for k, s in _datasets().items()} == first


def test_a_file_imported_by_an_older_importer_is_imported_again(database):
    path = REGISTERS / "bins_jongno.csv"
    bin_import.import_file(path)
    assert bin_import.import_file(path, only_if_changed=True).unchanged
    state = bins.dataset_state("seoul_clothing_bins/bins_jongno.csv")
    bins.store_report(state["key"], {**state["report"], "version": bin_import.VERSION - 1})
    again = bin_import.import_file(path, only_if_changed=True)
    assert not again.unchanged and again.version == bin_import.VERSION
    assert {row["city"] for row in _rows(again.dataset).values()} == {"서울특별시"}

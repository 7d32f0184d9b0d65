"""The result, here: with the user's district known (lat/lng, else the profile), a completed
result says where it goes there; what the data lacks for the district is null."""

from __future__ import annotations

import pytest
from conftest import DATASETS, login
from test_corrections import _a_guide_named, _confirm
from test_waste import MILK, run

from shared.locations import bin_import
from shared.waste import fees

GWANAK_OFFICE = (37.4784, 126.9516)  # 관악구청


@pytest.fixture
def job(system):
    fees.import_all(only_if_changed=False)
    bin_import.import_file(DATASETS / "locations" / "seoul_battery_boxes" / "gwanak.csv")
    client = system.app.test_client()
    headers = login(client)
    job_id, first = run(client, system, headers, hint="우유팩", data=MILK)
    assert first.status_code == 200
    return client, headers, job_id


def _result(client, headers, job_id, **query) -> dict:
    response = client.get(f"/api/v1/waste/result/{job_id}", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_no_district_no_where_and_the_profile_district_gives_one(job):
    client, headers, job_id = job
    assert "where" not in _result(client, headers, job_id)
    client.put("/api/v1/users/profile", headers=headers, json={"district": "관악구"})
    where = _result(client, headers, job_id)["where"]
    assert where["district"] == "서울특별시 관악구" and where["district_code"]
    # A paper pack is a recyclable: 관악구's recyclables collection; no bag, no fee, no point.
    schedule = client.get("/api/v1/users/schedule", headers=headers).get_json()
    recyclables = {tuple(a["recyclables"]["days"]) for a in schedule["areas"]}
    if len(recyclables) == 1:
        assert tuple(where["collection"]["days"]) == recyclables.pop()
    else:
        assert where["collection"] is None  # areas differ: which is the user's is unknown
    assert (where["bag"], where["fees"], where["drop_off"]) == (None, None, None)
    assert where["data_dates"]["schedule"].startswith("행정안전부")


def test_a_battery_goes_to_the_nearest_battery_box_where_the_user_stands(job):
    client, headers, job_id = job
    battery = _a_guide_named("AA 건전지")
    assert _confirm(client, headers, job_id, battery["id"]).status_code == 200
    lat, lng = GWANAK_OFFICE
    where = _result(client, headers, job_id, lat=lat, lng=lng)["where"]
    assert where["district"] == "서울특별시 관악구"  # from where the user stands, no profile
    assert "battery" in where["drop_off"]["accepts"] and where["drop_off"]["distance_m"] < 1000
    assert where["collection"] is None  # it goes to the box, not out with the recyclables


def test_bulky_waste_has_its_fees_and_general_waste_its_bag(job):
    client, headers, job_id = job
    client.put("/api/v1/users/profile", headers=headers, json={"district": "서울 관악구"})
    sofa = _a_guide_named("소파")
    assert _confirm(client, headers, job_id, sofa["id"]).status_code == 200
    where = _result(client, headers, job_id)["where"]
    assert {"name": "소파", "size": "1인용 당", "fee_krw": 3000} in where["fees"]
    assert where["data_dates"]["fees"]

    # General waste goes in 관악구's household bag, at its price per size.
    seed = _a_guide_named("아보카도씨")
    assert _confirm(client, headers, job_id, seed["id"]).status_code == 200
    where = _result(client, headers, job_id)["where"]
    assert where["fees"] is None and where["bag"]["kind"] == "규격봉투"
    bags = client.get("/api/v1/waste/bags", headers=headers).get_json()["bags"]
    household = next(
        b
        for b in bags
        if b["use"] == "생활쓰레기" and b["kind"] == "규격봉투" and "가정" in b["target"]
    )
    assert where["bag"]["prices"] == household["prices"] and where["data_dates"]["bags"]


def test_the_next_collection_date_follows_the_weekdays_and_the_window():
    from datetime import datetime

    from shared.users.where import KST, next_collection

    thursday_8am = datetime(2026, 12, 3, 8, 0, tzinfo=KST)  # a Thursday
    assert next_collection(("목",), "06:00-09:00", thursday_8am).isoformat() == "2026-12-03"
    assert next_collection(("목",), "06:00-07:00", thursday_8am).isoformat() == "2026-12-10"
    assert next_collection(("월", "금"), None, thursday_8am).isoformat() == "2026-12-04"
    assert next_collection(("목",), "20:00-06:00", thursday_8am).isoformat() == "2026-12-03"
    assert next_collection(("기타",), "06:00-09:00", thursday_8am) is None

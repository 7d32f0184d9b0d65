"""Fees and bag prices per district: the national tables as published, districts resolved as
everywhere else, item names matched forgivingly, each answer with the data's date."""

from __future__ import annotations

import jsonschema
import pytest
from conftest import error_code, login

from shared.waste import fees

FEES = "/api/v1/waste/fees"
BAGS = "/api/v1/waste/bags"


@pytest.fixture
def api(system):
    reports = {r["dataset"]: r for r in fees.import_all(only_if_changed=False)}
    client = system.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = login(client)["Authorization"]
    client.reports = reports
    return client


def _conforms(function: str, body: dict) -> dict:
    from functions import load_all

    jsonschema.validate(body, load_all()[function].responses[200])
    return body


def test_the_tables_import_as_published(api):
    fee_report = api.reports[fees.FEES]
    bag_report = api.reports[fees.BAGS]
    assert (fee_report["read"], fee_report["imported"], fee_report["skipped"]) == (22818, 22818, {})
    assert (bag_report["read"], bag_report["imported"]) == (662, 656)
    assert bag_report["skipped"] == {"no price above 0": 6}
    assert len(fees.fee_districts()) >= 142 and len(fees.bag_districts()) >= 229


@pytest.mark.parametrize("district", ["관악구", "서울 관악구", "서울특별시 관악구"])
def test_fees_for_an_item_in_any_form_of_the_district(api, district):
    body = api.get(FEES, query_string={"district": district, "q": "소파"}).get_json()
    body = _conforms("waste_fees", body)
    assert body["district"] == "서울특별시 관악구" and body["district_code"] == "3200000"
    assert body["items"][0] == {
        "name": "소파",
        "category": "가구류",
        "size": "1인용 당",
        "fee_krw": 3000,
    }
    assert body["data_date"]


def test_item_names_match_forgivingly(api):
    # 강남구 writes 쇼파; 관악구 writes 소파: either spelling finds either.
    gangnam = api.get(FEES, query_string={"district": "강남구", "q": "소파"}).get_json()
    assert gangnam["items"] and {i["name"] for i in gangnam["items"]} == {"쇼파"}
    assert sorted(i["fee_krw"] for i in gangnam["items"]) == [3000, 5000, 7000, 10000]
    spaced = api.get(FEES, query_string={"district": "관악구", "q": "소 파"}).get_json()
    assert spaced["items"][0]["name"] == "소파"
    nothing = api.get(FEES, query_string={"district": "관악구", "q": "우주선"}).get_json()
    assert nothing["items"] == [] and nothing["data_date"]
    everything = api.get(FEES, query_string={"district": "관악구"}).get_json()
    assert len(everything["items"]) > 50


def test_bag_prices_with_food_waste_bags(api):
    body = _conforms(
        "waste_bags", api.get(BAGS, query_string={"district": "수원시 장안구"}).get_json()
    )
    assert body["district"] == "경기도 수원시" and body["data_date"] == "2026-01-24"
    food = [b for b in body["bags"] if b["use"] == "음식물쓰레기"]
    assert food and food[0]["prices"]["1"] == 40 and food[0]["prices"]["3"] == 120
    gangnam = api.get(BAGS, query_string={"district": "강남구"}).get_json()
    standard = next(b for b in gangnam["bags"] if b["kind"] == "규격봉투")
    assert standard["prices"] == {"5": 130, "10": 250, "20": 490, "30": 740, "50": 1250}


def test_ambiguous_unknown_and_missing_districts(api):
    response = api.get(FEES, query_string={"district": "중구", "q": "소파"})
    assert (
        response.status_code == 422
        and "서울특별시 중구" in response.get_json()["error"]["details"]["choices"]
    )
    response = api.get(FEES, query_string={"district": "강동구"})  # not in the fee data
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    assert error_code(api.get(BAGS)) == "VALIDATION_FAILED"  # no profile district either
    api.put("/api/v1/users/profile", json={"district": "관악구"})
    assert api.get(BAGS).get_json()["district"] == "서울특별시 관악구"

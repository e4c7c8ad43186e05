"""/crs and /crs/transform through HTTP, on a bare app: no database involved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from geo import crs
from geo.errors import install_handlers
from geo.routers.crs import router

TIANJIN_EYE = [117.18026, 39.15336]


@pytest.fixture(scope="module")
def api() -> Iterator[TestClient]:
    app = FastAPI()
    install_handlers(app)
    app.include_router(router)
    with TestClient(app) as client:
        yield client


def post(api: TestClient, body: Any, **params: str) -> Any:
    return api.post("/crs/transform", params=params, json=body)


def assert_error(response: Any, code: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code, body
    return body


def test_list(api: TestClient) -> None:
    response = api.get("/crs")
    assert response.status_code == 200
    body = response.json()
    assert body["storageCrs"] == "EPSG:4490" and body["defaultCrs"] == "CRS84"
    by_id = {entry["id"]: entry for entry in body["crs"]}
    assert len(by_id) == 10
    assert by_id["EPSG:4490"]["axisOrder"] == ["lat", "lon"]
    assert by_id["EPSG:4548"]["axisOrder"] == ["northing", "easting"]
    assert by_id["CRS84"]["uri"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert by_id["GCJ02"]["projBacked"] is False
    assert by_id["EPSG:3857"]["projBacked"] is True


def test_transform_geometry(api: TestClient) -> None:
    response = post(
        api, {"type": "Point", "coordinates": TIANJIN_EYE}, **{"from": "CRS84", "to": "4548"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    assert response.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4548>"
    e, n = response.json()["coordinates"]
    expected = crs.transform_xy(*TIANJIN_EYE, "CRS84", "EPSG:4548")
    assert e == pytest.approx(float(expected[0])) and n == pytest.approx(float(expected[1]))


def test_transform_feature(api: TestClient) -> None:
    feature = {
        "type": "Feature",
        "id": 7,
        "properties": {"名称": "天津之眼"},
        "geometry": {"type": "LineString", "coordinates": [TIANJIN_EYE, [117.19, 39.16]]},
    }
    response = post(api, feature, **{"from": "EPSG:4490", "to": "GCJ-02"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == 7 and body["properties"] == {"名称": "天津之眼"}
    assert body["geometry"] == crs.transform(feature["geometry"], "EPSG:4490", "GCJ02")


def test_transform_collection_round_trip(api: TestClient) -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"n": i},
                "geometry": {"type": "Point", "coordinates": p},
            }
            for i, p in enumerate([TIANJIN_EYE, [117.2, 39.1], [116.9, 39.3]])
        ],
    }
    there = post(api, collection, **{"from": "CRS84", "to": "BD-09"})
    assert there.status_code == 200, there.text
    back = post(api, there.json(), **{"from": "bd09", "to": "urn:ogc:def:crs:OGC:1.3:CRS84"})
    assert back.status_code == 200, back.text
    for original, returned in zip(collection["features"], back.json()["features"], strict=True):
        assert returned["properties"] == original["properties"]
        got = returned["geometry"]["coordinates"]
        want = original["geometry"]["coordinates"]
        assert got == pytest.approx(want, abs=1e-9)


def test_unknown_crs(api: TestClient) -> None:
    body = assert_error(
        post(api, {"type": "Point", "coordinates": [1, 2]}, **{"from": "EPSG:9999", "to": "4490"}),
        "UnknownCRS",
    )
    assert "EPSG:9999" in body["message"]
    assert "GCJ02" in body["details"]["supported"]


def test_malformed_json(api: TestClient) -> None:
    response = api.post(
        "/crs/transform",
        params={"from": "CRS84", "to": "4490"},
        content=b'{"type": "Point", "coordinates": [1, 2]',
        headers={"content-type": "application/json"},
    )
    assert_error(response, "MalformedJSON")


def test_empty_body(api: TestClient) -> None:
    response = api.post("/crs/transform", params={"from": "CRS84", "to": "4490"})
    assert_error(response, "MalformedJSON")


def test_nan_literal_is_malformed(api: TestClient) -> None:
    response = api.post(
        "/crs/transform",
        params={"from": "CRS84", "to": "4490"},
        content=b'{"type": "Point", "coordinates": [NaN, 2]}',
    )
    assert_error(response, "MalformedJSON")


def test_deeply_nested_json_is_a_400(api: TestClient) -> None:
    deep = b'{"type": "Point", "coordinates": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = api.post("/crs/transform", params={"from": "CRS84", "to": "4490"}, content=deep)
    assert_error(response, "MalformedJSON")


def test_non_number_coordinates(api: TestClient) -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Point", "coordinates": [1, 2]},
            },
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Point", "coordinates": [117.1, "39.1"]},
            },
        ],
    }
    body = assert_error(post(api, collection, **{"from": "CRS84", "to": "4490"}), "InvalidGeoJSON")
    assert body["message"].startswith("features[1].geometry.coordinates[1]: not a number")
    assert body["details"]["path"] == "features[1].geometry.coordinates[1]"


def test_body_that_is_not_geojson(api: TestClient) -> None:
    body = assert_error(post(api, [1, 2], **{"from": "CRS84", "to": "4490"}), "InvalidGeoJSON")
    assert "(root)" in body["message"]
    assert_error(post(api, {"type": "Circle"}, **{"from": "CRS84", "to": "4490"}), "InvalidGeoJSON")


def test_untransformable_coordinates(api: TestClient) -> None:
    point = {"type": "Point", "coordinates": [117.0, 95.0]}
    assert_error(post(api, point, **{"from": "CRS84", "to": "3857"}), "TransformFailed")


def test_unknown_query_parameter(api: TestClient) -> None:
    body = assert_error(
        post(
            api,
            {"type": "Point", "coordinates": [1, 2]},
            **{"from": "CRS84", "to": "4490", "form": "x"},
        ),
        "UnknownParameter",
    )
    assert body["details"]["unknown"] == ["form"]


def test_missing_query_parameter(api: TestClient) -> None:
    response = post(api, {"type": "Point", "coordinates": [1, 2]}, **{"from": "CRS84"})
    body = assert_error(response, "InvalidParameterValue")
    assert "to" in body["message"]

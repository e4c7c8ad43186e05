"""Identify's work is bounded: a collection named twice counts once, at most 20 may be named,
and the area searched times the collections searched has a ceiling.

`{"layers": ["addresses"] * 30, "geometry": <0.2° box>}` used to run the same sub-query 30
times over every address in 384 km² and held a worker for half a minute.
"""

from __future__ import annotations

from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient

from layers import identify
from tests.layers_helpers import make_points_layer, square

SYSTEM = ["addresses", "districts", "subdistricts", "communities", "grids"]


@pytest.fixture(scope="module")
def points(client: TestClient, make_department) -> str:
    return make_points_layer(client, make_department().editor, n=20)


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_repeated_layers_count_once(client: TestClient, points: str) -> None:
    box = square(117.1, 39.0, 0.2)  # 384 km², holding all 20 points
    body = {"geometry": box, "layers": [points] * 30, "limit": 1000}
    ids = _ids(client.post("/identify", json=body))
    assert len(ids) == len(set(ids)) == 20
    params = {"lon": 117.2, "lat": 39.1, "radius": 3000, "layers": ",".join([points] * 30)}
    ids = _ids(client.get("/identify", params=params | {"limit": 1000}))
    assert len(ids) == len(set(ids)) == 20


def test_at_most_twenty_layers(client: TestClient, points: str) -> None:
    names = [points, *SYSTEM] + [f"nosuch_{i}" for i in range(identify.MAX_LAYERS - 5)]
    assert len(set(names)) == identify.MAX_LAYERS + 1
    for response in (
        client.post("/identify", json={"geometry": square(117.2, 39.1, 0.01), "layers": names}),
        client.get("/identify", params={"lon": 117.2, "lat": 39.1, "layers": ",".join(names)}),
    ):
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "TooManyLayers" and "at most 20" in body["message"]
        assert body["details"] == {"limit": 20, "count": 21}


def test_area_times_layers_is_bounded(client: TestClient, points: str, make_department) -> None:
    big = client.post(
        "/identify", json={"geometry": square(117.1, 39.0, 0.2), "layers": [points, "districts"]}
    )
    assert big.status_code == 400, big.text
    body = big.json()
    assert body["code"] == "AreaTooLarge" and "500 km²" in body["message"]
    assert body["details"]["layers"] == 2 and 380 < body["details"]["area_km2"] < 390
    smaller = {"geometry": square(117.15, 39.05, 0.1), "layers": [points, "districts"]}
    assert len(_ids(client.post("/identify", json=smaller | {"limit": 1000}))) >= 20
    # The largest radius over the sample's six collections passes; one more does not.
    six = [points, *SYSTEM]
    params = {"lon": 117.2, "lat": 39.1, "radius": identify.MAX_RADIUS_M}
    assert client.get("/identify", params=params | {"layers": ",".join(six)}).status_code == 200
    other = make_points_layer(client, make_department().editor, n=2)
    seven = client.get("/identify", params=params | {"layers": ",".join([*six, other])})
    assert seven.status_code == 400 and seven.json()["code"] == "AreaTooLarge", seven.text


def test_area_is_measured_on_the_ellipsoid() -> None:
    # 0.2° x 0.2° at 39° N: 22.2 km north-south by 17.3 km east-west.
    box = shapely.box(117.1, 39.0, 117.3, 39.2)
    assert identify.area_km2(box) == pytest.approx(384, rel=0.01)
    assert identify.area_km2(shapely.Point(117.2, 39.1)) == 0

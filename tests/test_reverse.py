"""Reverse geocoding: nearest address by KNN, the areas and grid containing the point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from addressbook.geocoding.reverse import reverse
from geo.crs import transform_xy
from geo.db import session_scope
from tests.address_library import ROOMS, Stored, fresh_names, load, pick, plans, statements

GRID = "TEST-REVERSE-G01"


@pytest.fixture(scope="module")
def room(database_url: str) -> Iterator[Stored]:
    """A library address, with a small test grid drawn around it."""
    load()
    with session_scope() as session:
        (found,) = pick(session, ROOMS)
        session.execute(
            text(
                "INSERT INTO grids (code, name, community_code, staff_name, staff_phone, geom) "
                "VALUES (:code, '测试网格', :community, '张伟', '13800000000', "
                "ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(:x, :y), 4490), 0.002)))"
            ),
            {"code": GRID, "community": found.community_code, "x": found.lon, "y": found.lat},
        )
    with fresh_names():
        yield found
    with session_scope() as session:
        session.execute(text("DELETE FROM grids WHERE code = :code"), {"code": GRID})


def test_the_nearest_address_and_what_contains_the_point(room: Stored) -> None:
    with session_scope() as session:
        found = reverse(session, room.lon + 0.00002, room.lat, staff=True)
        anonymous = reverse(session, room.lon + 0.00002, room.lat)
    # Grid staff contacts are personal data: only for callers with a key (staff=True).
    assert anonymous.grid is not None and "staff_name" not in anonymous.grid
    assert found.address is not None
    assert found.address["district_code"] == room.district_code
    assert found.address["distance"] < 5
    assert (found.address["lon"], found.address["lat"]) == pytest.approx((room.lon, room.lat))
    assert found.district is not None and found.district["code"] == room.district_code
    assert found.subdistrict is not None and found.subdistrict["code"] == room.subdistrict_code
    assert found.community is not None and found.community["code"] == room.community_code
    assert found.grid is not None and found.grid["code"] == GRID
    assert found.grid["staff_name"] == "张伟"


def test_radius_limits_the_address_but_not_the_areas(room: Stored) -> None:
    probe = (room.lon + 0.0003, room.lat + 0.0002)
    with session_scope() as session:
        nearest = reverse(session, *probe)
        assert nearest.address is not None
        distance = nearest.address["distance"]
        inside = reverse(session, *probe, radius=distance * 1.01)
        outside = reverse(session, *probe, radius=distance * 0.99)
    assert inside.address is not None and inside.address["id"] == nearest.address["id"]
    assert outside.address is None
    assert outside.district is not None and outside.district["code"] == room.district_code


def test_other_crs_in_and_out(client: TestClient, room: Stored) -> None:
    x, y = transform_xy([room.lon], [room.lat], "EPSG:4490", "GCJ02")
    body = client.get(
        "/addresses/reverse", params={"lon": float(x[0]), "lat": float(y[0]), "crs": "GCJ02"}
    ).json()
    assert body["crs"] == "GCJ02"
    assert body["address"]["district_code"] == room.district_code
    assert body["address"]["distance"] < 1
    assert body["address"]["location"]["coordinates"] == pytest.approx(
        [float(x[0]), float(y[0])], abs=1e-6
    )
    assert body["label"] == body["address"]["standard"]
    assert body["grid"]["code"] == GRID


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"lon": 121.47, "lat": 31.23}, "OutsideExtent"),  # Shanghai
        ({"lon": 39.13, "lat": 117.2}, "OutsideExtent"),  # swapped axes
        ({"lon": 117.2, "lat": 39.13, "crs": "EPSG:3857"}, "OutsideExtent"),  # degrees as metres
        ({"lon": 117.2, "lat": 39.13, "radius": 0}, "InvalidParameterValue"),
        ({"lon": 117.2, "lat": 39.13, "radius": 1e9}, "InvalidParameterValue"),
        ({"lon": "east", "lat": 39.13}, "InvalidParameterValue"),
        ({"lon": 117.2}, "InvalidParameterValue"),
        ({"lon": 117.2, "lat": 39.13, "crs": "EPSG:0"}, "UnknownCRS"),
    ],
)
def test_bad_points_are_rejected(
    client: TestClient, room: Stored, params: dict[str, object], code: str
) -> None:
    response = client.get("/addresses/reverse", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code


def test_the_knn_uses_the_spatial_index(room: Stored) -> None:
    with session_scope() as session, statements() as seen:
        reverse(session, room.lon, room.lat, radius=100)
    ((sql, params),) = [(s, p) for s, p in seen if "<->" in s]
    plan = plans(sql, params)
    assert "Index Scan using idx_addresses_geom on addresses" in plan
    assert "Order By: (geom <->" in plan
    assert "Seq Scan" not in plan

"""Overlay, identify and statistics, including address-library collections as layers, and the
query plans: no sequential scan of a layer table where an index must serve."""

from __future__ import annotations

import csv
import io

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.db import session_scope
from layers import catalogue, features, overlay
from layers.cql import Compiler, parse
from layers.identify import identify_sql
from tests.layers_helpers import collection, layer_id, point_features, square, upload

# Two 0.01-degree squares; points p0..p9 step 0.001 in x from CENTER fall in the first.
CELLS = [square(117.1995, 39.0995), square(117.2095, 39.0995)]


@pytest.fixture(scope="module")
def world(client: TestClient, make_department):
    dept = make_department()
    points = layer_id()
    r = upload(client, dept.editor, points, collection(point_features(15)), access="public")
    assert r.status_code == 201
    cells = layer_id()
    feats = [
        {"type": "Feature", "geometry": g, "properties": {"cell": f"c{i}"}}
        for i, g in enumerate(CELLS)
    ]
    assert upload(client, dept.editor, cells, collection(feats), access="public").status_code == 201
    private = layer_id()
    assert (
        upload(
            client, dept.editor, private, collection(point_features(3)), access="private"
        ).status_code
        == 201
    )
    with session_scope() as s:  # one district polygon, as the address library would hold it
        s.execute(text("DELETE FROM admin_areas WHERE code = '120199999999'"))
        s.execute(
            text(
                "INSERT INTO admin_areas (code, name, level, geom) VALUES "
                "('120199999999', '测试区', 'district', ST_Multi(ST_GeomFromText("
                "'POLYGON((117.19 39.09, 117.215 39.09, "
                "117.215 39.2, 117.19 39.2, 117.19 39.09))', 4490)))"
            )
        )
    yield dept, points, cells, private
    # The address library's tables are shared by the whole test session: leave them as found.
    with session_scope() as s:
        s.execute(text("DELETE FROM admin_areas WHERE code = '120199999999'"))


def _post(client, body, headers=None):
    return client.post("/overlay", json=body, headers=headers or {})


def test_overlay_aggregate_counts_and_sums(client: TestClient, world) -> None:
    _, points, cells, _ = world
    r = _post(client, {"layer": points, "other": cells, "output": "aggregate", "property": "pop"})
    assert r.status_code == 200, r.text
    by_cell = {f["properties"]["cell"]: f["properties"] for f in r.json()["features"]}
    inside0 = [i for i in range(15) if 117.2 + i * 0.001 <= 117.2095]
    assert by_cell["c0"]["count"] == len(inside0)
    assert by_cell["c0"]["pop_sum"] == sum(i % 7 for i in inside0)
    assert by_cell["c1"]["count"] == 15 - len(inside0)
    r = _post(client, {"layer": points, "other": cells, "output": "aggregate", "format": "csv"})
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["id", "cell", "count", "wkt"] and len(rows) == 3


def test_overlay_features_and_predicates(client: TestClient, world) -> None:
    _, points, cells, _ = world
    r = _post(client, {"layer": points, "other": cells, "predicate": "within"})
    feats = r.json()["features"]
    assert len(feats) == 15 and {f"{cells}.cell"} <= set(feats[0]["properties"])
    r = _post(client, {"layer": cells, "other": points, "predicate": "contains"})
    assert len(r.json()["features"]) == 15
    r = _post(
        client,
        {
            "layer": points,
            "other": points,
            "predicate": "dwithin",
            "distance": 110,
            "filter": "name = 'p0'",
        },
    )
    names = sorted(f["properties"][f"{points}.name"] for f in r.json()["features"])
    assert names == ["p0", "p1"]  # p1 is ~103 m away, p2 ~205 m
    r = _post(client, {"layer": points, "other": "districts", "output": "features", "limit": 5})
    body = r.json()
    assert len(body["features"]) == 5 and body["truncated"] is True


def test_overlay_bad_input(client: TestClient, world, make_department) -> None:
    dept, points, cells, private = world
    stranger = make_department()
    cases = [
        ({"layer": points, "other": private}, 404, stranger.viewer),
        ({"layer": private, "other": cells}, 404, {}),
        ({"layer": points, "other": cells, "predicate": "near"}, 400, {}),
        ({"layer": points, "other": cells, "predicate": "dwithin"}, 400, {}),
        ({"layer": points, "other": cells, "output": "aggregate", "property": "name"}, 400, {}),
        ({"layer": points, "other": cells, "filter": "nosuch = 1"}, 400, {}),
        ({"layer": points, "other": cells, "surprise": 1}, 400, {}),
    ]
    for body, status, headers in cases:
        r = _post(client, body, headers)
        assert r.status_code == status, (body, r.text)
    assert _post(client, {"layer": points, "other": private}, dept.viewer).status_code == 200
    r = client.post("/overlay", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "MalformedJSON"


def test_identify_nearest_first(client: TestClient, world, make_department) -> None:
    dept, points, cells, private = world
    r = client.get("/identify", params={"lon": 117.2021, "lat": 39.101, "radius": 150})
    assert r.status_code == 200, r.text
    found = r.json()["features"]
    distances = [f["properties"]["distance_m"] for f in found]
    assert distances == sorted(distances)
    # Inside a cell and the test district (other tests' areas may cover the point too).
    at_point = {f["properties"]["collection"] for f in found if f["properties"]["distance_m"] == 0}
    assert {cells, "districts"} <= at_point
    collections = {f["properties"]["collection"] for f in found}
    assert {points, cells, "districts"} <= collections and private not in collections
    owner = client.get(
        "/identify", params={"lon": 117.2021, "lat": 39.101, "radius": 150}, headers=dept.viewer
    )
    assert private in {f["properties"]["collection"] for f in owner.json()["features"]}
    stranger = make_department()
    r = client.get(
        "/identify", params={"lon": 117.2, "lat": 39.1, "layers": private}, headers=stranger.viewer
    )
    assert r.status_code == 404
    r = client.get("/identify", params={"lon": 39.1, "lat": 117.2})
    assert r.status_code == 400 and "swapped" in r.json()["message"]
    assert (
        client.get("/identify", params={"lon": 117.2, "lat": 39.1, "radius": -1}).status_code == 400
    )


def test_identify_in_a_polygon(client: TestClient, world, make_department) -> None:
    dept, points, cells, private = world
    area = square(117.2032, 39.1003, 0.0035)  # around points 4..6, inside cell c0
    r = client.post("/identify", json={"geometry": area, "layers": [points, cells]})
    assert r.status_code == 200, r.text
    found = r.json()["features"]
    mine = sorted(f["properties"]["fid"] for f in found if f["properties"]["collection"] == points)
    inside = [
        i + 1
        for i in range(15)
        if 117.2032 <= 117.2 + i * 0.001 <= 117.2067 and 39.1003 <= 39.1 + i * 0.0005 <= 39.1038
    ]
    assert mine == inside and inside
    assert [f["properties"]["cell"] for f in found if f["properties"]["collection"] == cells] == [
        "c0"
    ]
    distances = [f["properties"]["distance_m"] for f in found]
    assert distances == sorted(distances)
    stranger = make_department()
    body = {"geometry": square(117.2005, 39.1002, 0.001), "layers": [private]}  # its point 1
    assert client.post("/identify", json=body, headers=stranger.viewer).status_code == 404
    owner = client.post("/identify", json=body, headers=dept.viewer).json()["features"]
    assert {f["properties"]["collection"] for f in owner} == {private}
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[117.2, 39.1], [117.21, 39.11], [117.21, 39.1], [117.2, 39.11], [117.2, 39.1]]
        ],
    }
    for bad, word in (
        ({"geometry": bowtie}, "invalid geometry"),
        ({"geometry": square(39.1, 117.2)}, "extent"),
        ({"geometry": {"type": "Polygon", "coordinates": "x"}}, "geometry"),
        ({"geometry": area, "crs": "EPSG:99999"}, "crs"),
        ({"geometry": area, "radius": 3}, "radius"),
    ):
        r = client.post("/identify", json=bad)
        assert r.status_code == 400 and word in r.json()["message"].lower(), (bad, r.text)


def test_stats_by_district(client: TestClient, world, make_department) -> None:
    _, points, _, private = world
    r = client.get(f"/collections/{points}/stats", params={"by": "district", "property": "pop"})
    assert r.status_code == 200, r.text
    test_area = next(f for f in r.json()["features"] if f["properties"]["code"] == "120199999999")
    inside = [i for i in range(15) if 117.2 + i * 0.001 <= 117.215]
    assert test_area["properties"]["count"] == len(inside)
    assert test_area["properties"]["pop_sum"] == sum(i % 7 for i in inside)
    assert test_area["geometry"]["type"] == "MultiPolygon"
    assert client.get(f"/collections/{points}/stats", params={"by": "province"}).status_code == 400
    assert (
        client.get(
            f"/collections/{points}/stats", params={"by": "grid", "property": "name"}
        ).status_code
        == 400
    )
    stranger = make_department()
    assert (
        client.get(
            f"/collections/{private}/stats", params={"by": "grid"}, headers=stranger.viewer
        ).status_code
        == 404
    )


# -- plans ---------------------------------------------------------------------------------------


def _plan(sql: str, params: dict, parallel: bool = False) -> str:
    with session_scope() as s:
        if parallel:  # as overlay.aggregate runs it
            overlay.allow_parallel(s)
        return overlay.explain(s, sql, params)


@pytest.fixture(scope="module")
def big(client: TestClient, make_department):
    """Enough rows that a sequential scan would be the planner's choice without the index."""
    dept = make_department()
    lid = layer_id()
    feats = point_features(3000, step=0.0001)
    assert upload(client, dept.editor, lid, collection(feats), access="public").status_code == 201
    with session_scope() as s:
        s.execute(text(f'ANALYZE layerdata."l_{lid}"'))
    return lid


def _source(lid: str):
    from geo.auth import Principal

    with session_scope() as s:
        return catalogue.readable_source(s, Principal(None, None, None), lid)


def test_items_bbox_uses_the_spatial_index(big: str) -> None:
    source = _source(big)
    query = features.Query(bbox=(117.2, 39.1, 117.201, 39.1005), limit=1000)
    clause, params = features.where(source, query)
    sql = f"SELECT * FROM {source.relation()} t WHERE {clause} ORDER BY t.id LIMIT 1000"
    plan = _plan(sql, params)
    assert "Seq Scan" not in plan and "geom_idx" in plan, plan


def test_cql_dwithin_uses_the_spatial_index(big: str) -> None:
    source = _source(big)
    compiled = Compiler(source, "CRS84").compile(
        parse("S_DWITHIN(geom, POINT(117.2 39.1), 50, meters)", None)
    )
    plan = _plan(f"SELECT * FROM {source.relation()} t WHERE {compiled.sql}", compiled.params)
    assert "Seq Scan" not in plan, plan


def test_overlay_probes_the_layer_index(big: str, world) -> None:
    _, _, cells, _ = world
    for predicate, distance in (("intersects", None), ("dwithin", 50.0), ("assign", None)):
        join = overlay.Join(
            overlay.Side(_source(big), "l"), overlay.Side(_source(cells), "o"), predicate, distance
        )
        sql, params = overlay.aggregate_sql(join, "pop")
        plan = _plan(sql, params | {"limit": 10, "offset": 0}, parallel=True)
        assert f'Seq Scan on "l_{big}"' not in plan and "Index" in plan, (predicate, plan)


def test_identify_uses_the_spatial_index(big: str) -> None:
    source = _source(big)
    sql = identify_sql([source], 30)
    params = {
        "x": 117.2,
        "y": 39.1,
        "dx": 0.0005,
        "dy": 0.0003,
        "r": 30,
        "limit": 10,
        "c0": source.id,
    }
    plan = _plan(sql, params)
    assert "Seq Scan" not in plan, plan
    area = shapely.to_wkb(shapely.box(117.19, 39.09, 117.2, 39.1))
    plan = _plan(identify_sql([source], None), params | {"area": area})
    assert "Seq Scan" not in plan and "Index" in plan, plan

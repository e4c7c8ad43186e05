"""Tiles of departments' layers through the layers API: who may read them, and how uploads,
edits, access changes and deletes invalidate exactly the layer's tiles."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Dept
from tests.layers_helpers import collection, layer_id, make_points_layer, point_features, upload
from tests.tiles_fixtures import decode, tile_at

TILE = tile_at(117.21, 39.105, 11)
PATH = f"{TILE.z}/{TILE.x}/{TILE.y}.mvt"


@pytest.fixture(scope="module")
def police(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


@pytest.fixture(scope="module")
def health(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


@pytest.fixture(scope="module")
def outsider(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


def count(response) -> int:
    return sum(len(layer["features"]) for layer in decode(response.content).values())


def test_private_layer_tiles_only_for_its_department(
    client: TestClient, police: Dept, outsider: Dept, admin_headers: dict[str, str]
) -> None:
    lid = make_points_layer(client, police.editor, n=20, access="private")
    url = f"/tiles/{lid}/{PATH}"
    own = client.get(url, headers=police.viewer)
    assert own.status_code == 200
    assert count(own) == 20
    assert own.headers["cache-control"] == "private, no-store"
    assert client.get(url, headers=admin_headers).status_code == 200
    for headers in ({}, outsider.viewer):
        refused = client.get(url, headers=headers)
        assert refused.status_code == 404
        assert lid in refused.json()["message"]
    # A composite with one unreadable layer is refused whole.
    assert client.get(f"/tiles/districts,{lid}/{PATH}").status_code == 404
    assert client.get(f"/collections/{lid}/tiles/WebMercatorQuad").status_code == 404


def test_query_key_for_map_clients_and_the_audit_trail(
    client: TestClient, police: Dept, admin_headers: dict[str, str]
) -> None:
    lid = make_points_layer(client, police.editor, n=5, access="private")
    key = police.viewer["Authorization"].removeprefix("Bearer ")
    assert client.get(f"/tiles/{lid}/{PATH}?key={key}").status_code == 200
    tilejson = client.get(f"/tiles/{lid}/tilejson.json?key={key}").json()
    # The tile URL carries a tile token for the map client, never the key itself.
    assert key not in tilejson["tiles"][0] and "&token=" in tilejson["tiles"][0]
    events = client.get(
        "/audit", params={"action": "layer.read", "department": police.code}, headers=admin_headers
    ).json()["events"]
    reads = [e for e in events if e["target"] == lid]
    assert reads and reads[0]["details"]["via"] == f"tile {TILE}"


def test_shared_layer_for_the_named_departments_only(
    client: TestClient, police: Dept, health: Dept, outsider: Dept
) -> None:
    lid = make_points_layer(client, police.editor, access="shared", shared_with=health.code)
    url = f"/tiles/{lid}/{PATH}"
    assert client.get(url, headers=health.viewer).status_code == 200
    assert client.get(url, headers=outsider.viewer).status_code == 404
    assert client.get(url).status_code == 404


def test_edits_and_uploads_invalidate_exactly_that_layers_tiles(
    client: TestClient, police: Dept
) -> None:
    edited = make_points_layer(client, police.editor, n=10)
    other = make_points_layer(client, police.editor, n=10)
    before = {lid: client.get(f"/tiles/{lid}/{PATH}") for lid in (edited, other)}
    both = client.get(f"/tiles/{edited},{other}/{PATH}")
    assert before[edited].headers["cache-control"].startswith("public")

    feature = point_features(1, start=11)[0]
    created = client.post(f"/collections/{edited}/items", json=feature, headers=police.editor)
    assert created.status_code == 201, created.text
    after = client.get(
        f"/tiles/{edited}/{PATH}", headers={"If-None-Match": before[edited].headers["etag"]}
    )
    assert after.status_code == 200
    assert count(after) == 11
    # The other layer's tile is untouched: its ETag still validates.
    unchanged = client.get(
        f"/tiles/{other}/{PATH}", headers={"If-None-Match": before[other].headers["etag"]}
    )
    assert unchanged.status_code == 304
    composite = client.get(f"/tiles/{edited},{other}/{PATH}")
    assert composite.headers["etag"] != both.headers["etag"]
    assert [len(v["features"]) for v in decode(composite.content).values()] == [11, 10]

    appended = upload(
        client, police.editor, edited, collection(point_features(4, start=12)), mode="append"
    )
    assert appended.status_code == 200, appended.text
    assert count(client.get(f"/tiles/{edited}/{PATH}")) == 15


def test_access_change_and_delete_take_effect_at_once(client: TestClient, police: Dept) -> None:
    lid = make_points_layer(client, police.editor, n=3)
    url = f"/tiles/{lid}/{PATH}"
    assert client.get(url).status_code == 200
    closed = client.patch(f"/collections/{lid}", json={"access": "private"}, headers=police.editor)
    assert closed.status_code == 200, closed.text
    assert client.get(url).status_code == 404
    assert client.get(url, headers=police.viewer).headers["cache-control"] == "private, no-store"
    assert client.delete(f"/collections/{lid}", headers=police.editor).status_code == 204
    assert client.get(url, headers=police.viewer).status_code == 404


def test_style_and_tileset_of_a_department_layer(client: TestClient, police: Dept) -> None:
    lid = layer_id()
    square = {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[117.2, 39.1], [117.21, 39.1], [117.21, 39.11], [117.2, 39.1]]],
        },
        "properties": {"name": "片区", "area": 1.5},
    }
    assert (
        upload(client, police.editor, lid, collection([square]), access="public").status_code == 201
    )
    style = client.get(f"/styles/{lid}.json").json()
    kinds = {layer["id"]: layer["type"] for layer in style["layers"]}
    assert kinds == {"background": "background", f"{lid}-fill": "fill", f"{lid}-outline": "line"}
    tileset = client.get(f"/collections/{lid}/tiles/WebMercatorQuad").json()
    schema = tileset["layers"][0]["propertiesSchema"]["properties"]
    assert schema["name"] == {"type": "string"} and schema["area"] == {"type": "number"}
    tile = client.get(f"/collections/{lid}/tiles/WebMercatorQuad/{TILE.z}/{TILE.y}/{TILE.x}")
    assert decode(tile.content)[lid]["features"][0]["properties"]["name"] == "片区"

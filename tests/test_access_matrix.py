"""Issue 11's access matrix: every read route × every kind of caller, against one private layer.

Callers: the owner; a grantee whose area holds half of the features (p0..p9); a grantee whose
area holds none of them; a grantee with every feature but only the `name` attribute; a grantee
whose grant has expired; a department without a grant; an anonymous caller. Each probe states
what a caller must see through that route, from one description of what each caller may see
(`Caller`): which features, which attributes, whether it may download.
"""

from __future__ import annotations

import csv
import io
import math
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.db import session_scope
from tests.layers_helpers import collection, make_points_layer, square, upload

ALL = [f"p{i}" for i in range(20)]
PROPS = ("name", "pop", "score")
HALF = square(117.1995, 39.0995, 0.0100)  # p0..p9
ELSEWHERE = square(117.3, 39.3, 0.01)  # inside the city, no feature
DISTRICT = "120197777777"  # a test district around every feature (statistics)
ZOOM = 10


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    # The features the caller sees (None: the layer does not exist for it).
    features: frozenset[str] | None
    props: tuple[str, ...] = PROPS
    download: bool = True
    keyed: bool = True


@dataclass(frozen=True)
class World:
    lid: str
    cells: str
    ids: dict[str, int]
    callers: dict[str, Caller]


def _tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


TILE = _tile_xy(117.21, 39.105, ZOOM)


@pytest.fixture(scope="module")
def world(client: TestClient, make_department) -> Any:
    owner, inside, outside, attrs, expired, other = (make_department() for _ in range(6))
    lid = make_points_layer(client, owner.editor, access="private")
    cells = "cells_" + lid
    cell = {"type": "Feature", "geometry": square(117.19, 39.09, 0.05), "properties": {"c": "a"}}
    r = upload(client, owner.editor, cells, collection([cell]), access="public")
    assert r.status_code == 201, r.text
    grants = [
        (inside, {"level": "download", "area": HALF}),
        (outside, {"level": "download", "area": ELSEWHERE}),
        (attrs, {"level": "download", "attributes": ["name"]}),
        (
            expired,
            {
                "level": "download",
                "expires_at": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
            },
        ),
    ]
    for dept, body in grants:
        r = client.post(
            f"/collections/{lid}/grants", json={"grantee": dept.code, **body}, headers=owner.editor
        )
        assert r.status_code == 201, r.text
    # The expired grantee reads once while its grant holds (every cache remembers it), then it
    # runs out; nothing is written when it does.
    x, y = TILE
    assert client.get(f"/tiles/{lid}/{ZOOM}/{x}/{y}.mvt", headers=expired.viewer).status_code == 200
    page = client.get(f"/collections/{lid}/items?limit=100", headers=owner.viewer).json()
    ids = {f["properties"]["name"]: f["id"] for f in page["features"]}
    with session_scope() as s:
        s.execute(text("DELETE FROM admin_areas WHERE code = :c"), {"c": DISTRICT})
        s.execute(
            text(
                "INSERT INTO admin_areas (code, name, level, geom) VALUES (:c, '矩阵测试区', "
                "'district', ST_Multi(ST_GeomFromText('POLYGON((117.19 39.09, 117.24 39.09, "
                "117.24 39.14, 117.19 39.14, 117.19 39.09))', 4490)))"
            ),
            {"c": DISTRICT},
        )
    time.sleep(2.1)
    callers = [
        Caller("owner", owner.viewer, frozenset(ALL)),
        Caller("grantee in area", inside.viewer, frozenset(ALL[:10])),
        Caller("grantee outside area", outside.viewer, frozenset()),
        Caller("grantee with attributes withheld", attrs.viewer, frozenset(ALL), ("name",)),
        Caller("expired grantee", expired.viewer, None),
        Caller("other department", other.viewer, None),
        Caller("anonymous", {}, None, keyed=False),
    ]
    yield World(lid, cells, ids, {c.name: c for c in callers})
    with session_scope() as s:  # the address library's tables are shared by the session
        s.execute(text("DELETE FROM admin_areas WHERE code = :c"), {"c": DISTRICT})


def _absent(r: Any) -> None:
    assert r.status_code == 404, (r.status_code, r.text[:200])


def _names(features: list[dict[str, Any]], key: str = "name") -> set[str]:
    return {f["properties"][key] for f in features}


def _keys(features: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> set[str]:
    return {k for f in features for k in f["properties"] if k not in drop}


# -- probes: (client, world, caller) -> None, asserting what the caller sees ---------------------


def collections_list(client: TestClient, w: World, c: Caller) -> None:
    docs = {d["id"]: d for d in client.get("/collections", headers=c.headers).json()["collections"]}
    if c.features is None:
        assert w.lid not in docs
        return
    assert [p["name"] for p in docs[w.lid]["properties"]] == list(c.props)


def collection_doc(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}", headers=c.headers)
    if c.features is None:
        return _absent(r)
    assert [p["name"] for p in r.json()["properties"]] == list(c.props)


def queryables(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/queryables", headers=c.headers)
    if c.features is None:
        return _absent(r)
    assert set(r.json()["properties"]) == {"geometry", *c.props}


def items(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items?limit=100", headers=c.headers)
    if c.features is None:
        return _absent(r)
    doc = r.json()
    assert doc["numberMatched"] == len(c.features)
    assert _names(doc["features"]) == c.features
    if c.features:
        assert _keys(doc["features"]) == set(c.props)


def items_bbox(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(
        f"/collections/{w.lid}/items?limit=100&bbox=117.204,39.0,117.3,39.2", headers=c.headers
    )
    if c.features is None:
        return _absent(r)
    assert _names(r.json()["features"]) == c.features & set(ALL[4:])


def items_csv(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items?limit=100&f=csv", headers=c.headers)
    if c.features is None:
        return _absent(r)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["id", *c.props, "wkt"] and len(rows) == 1 + len(c.features)


def item_inside(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items/{w.ids['p3']}", headers=c.headers)
    if c.features is None or "p3" not in c.features:
        return _absent(r)
    assert set(r.json()["properties"]) == set(c.props)


def item_outside(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items/{w.ids['p15']}", headers=c.headers)
    if c.features is None or "p15" not in c.features:
        return _absent(r)
    assert set(r.json()["properties"]) == set(c.props)


def history(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items/{w.ids['p3']}/history", headers=c.headers)
    if c.features is None or "p3" not in c.features:
        return _absent(r)
    assert {k for v in r.json()["versions"] for k in v["properties"]} == set(c.props)


def cql_filter(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items", params={"filter": "pop >= 0"}, headers=c.headers)
    if c.features is None:
        return _absent(r)
    if "pop" not in c.props:
        assert r.status_code == 400 and "unknown property 'pop'" in r.json()["message"]
        assert "pop" not in r.text.split("queryables")[-1]
        return
    assert r.json()["numberMatched"] == len(c.features)


def cql_filter_json(client: TestClient, w: World, c: Caller) -> None:
    tree = '{"op": ">", "args": [{"property": "score"}, -1]}'
    r = client.get(f"/collections/{w.lid}/items", params={"filter": tree}, headers=c.headers)
    if c.features is None:
        return _absent(r)
    assert r.status_code == (200 if "score" in c.props else 400)


def sortby(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items", params={"sortby": "-pop"}, headers=c.headers)
    if c.features is None:
        return _absent(r)
    assert r.status_code == (200 if "pop" in c.props else 400)


def properties_list(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items", params={"properties": "pop"}, headers=c.headers)
    if c.features is None:
        return _absent(r)
    assert r.status_code == (200 if "pop" in c.props else 400)


def property_equals(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/items", params={"pop": "3"}, headers=c.headers)
    if c.features is None:
        return _absent(r)
    assert r.status_code == (200 if "pop" in c.props else 400)


def export_csv(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/export?f=csv", headers=c.headers)
    if c.features is None:
        return _absent(r)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["id", *c.props, "wkt"] and len(rows) == 1 + len(c.features)


def export_gpkg(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/export?f=gpkg", headers=c.headers)
    if c.features is None:
        return _absent(r)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.gpkg"
        path.write_bytes(r.content)
        with sqlite3.connect(path) as db:
            tables = [row[0] for row in db.execute("SELECT table_name FROM gpkg_contents")]
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{w.lid}")')]
            count = db.execute(f'SELECT count(*) FROM "{w.lid}"').fetchone()[0]
    assert tables == [w.lid], tables
    assert [n for n in columns if n in PROPS] == list(c.props) and count == len(c.features)


def _mvt(r: Any, c: Caller, lid: str) -> None:
    if c.features is None:
        return _absent(r)
    if not c.features:
        assert r.status_code == 204
        return
    assert r.status_code == 200, r.text
    found = mapbox_vector_tile.decode(r.content)[lid]["features"]
    assert _names(found) == c.features
    assert _keys(found) == set(c.props)


def tile(client: TestClient, w: World, c: Caller) -> None:
    x, y = TILE
    _mvt(client.get(f"/tiles/{w.lid}/{ZOOM}/{x}/{y}.mvt", headers=c.headers), c, w.lid)


def tile_composite(client: TestClient, w: World, c: Caller) -> None:
    """The same tile with a public layer beside it, asked again: the cache keeps them apart."""
    x, y = TILE
    r = client.get(f"/tiles/{w.cells},{w.lid}/{ZOOM}/{x}/{y}.mvt", headers=c.headers)
    if c.features is None:
        return _absent(r)
    decoded = mapbox_vector_tile.decode(r.content)
    found = decoded.get(w.lid, {"features": []})["features"]
    assert _names(found) == c.features and w.cells in decoded


def tile_ogc(client: TestClient, w: World, c: Caller) -> None:
    x, y = TILE
    url = f"/collections/{w.lid}/tiles/WebMercatorQuad/{ZOOM}/{y}/{x}"
    _mvt(client.get(url, headers=c.headers), c, w.lid)


def tilejson(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/tiles/{w.lid}/tilejson.json", headers=c.headers)
    if c.features is None:
        return _absent(r)
    (layer,) = r.json()["vector_layers"]
    assert set(layer["fields"]) - {"id"} == set(c.props)


def tileset(client: TestClient, w: World, c: Caller) -> None:
    for url in (f"/collections/{w.lid}/tiles", f"/collections/{w.lid}/tiles/WebMercatorQuad"):
        r = client.get(url, headers=c.headers)
        if c.features is None:
            _absent(r)
            continue
        assert r.status_code == 200
        assert '"pop"' not in r.text or "pop" in c.props


def style(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/styles/{w.lid}.json", headers=c.headers)
    if c.features is None:
        return _absent(r)
    assert r.status_code == 200


def overlay_features(client: TestClient, w: World, c: Caller) -> None:
    body = {"layer": w.lid, "other": w.cells, "limit": 100}
    r = client.post("/overlay", json=body, headers=c.headers)
    if c.features is None:
        return _absent(r)
    found = r.json()["features"]
    assert _names(found) == c.features
    if found:
        assert _keys(found, (f"{w.cells}.id", f"{w.cells}.c")) == set(c.props)


def overlay_aggregate(client: TestClient, w: World, c: Caller) -> None:
    body = {"layer": w.lid, "other": w.cells, "output": "aggregate", "property": "pop"}
    r = client.post("/overlay", json=body, headers=c.headers)
    if c.features is None:
        return _absent(r)
    if "pop" not in c.props:
        assert r.status_code == 400
        return
    (cell,) = r.json()["features"]
    assert cell["properties"]["count"] == len(c.features)


def stats(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/stats?by=district", headers=c.headers)
    if c.features is None:
        return _absent(r)
    counts = {f["properties"]["code"]: f["properties"]["count"] for f in r.json()["features"]}
    assert counts.get(DISTRICT, 0) == len(c.features)


def identify_point(client: TestClient, w: World, c: Caller) -> None:
    # p3 is at (117.203, 39.1015); its neighbours p2 and p4 lie about 100 m away.
    params = {"lon": 117.203, "lat": 39.1015, "radius": 150, "layers": w.lid}
    r = client.get("/identify", params=params, headers=c.headers)
    if c.features is None:
        return _absent(r)
    found = r.json()["features"]
    assert _names(found) == c.features & {"p2", "p3", "p4"}
    assert _keys(found, ("collection", "fid", "distance_m")) <= set(c.props)


def identify_every_layer(client: TestClient, w: World, c: Caller) -> None:
    params = {"lon": 117.203, "lat": 39.1015, "radius": 150}
    found = client.get("/identify", params=params, headers=c.headers).json()["features"]
    mine = [f for f in found if f["properties"]["collection"] == w.lid]
    assert _names(mine) == (c.features or frozenset()) & {"p2", "p3", "p4"}


def identify_polygon(client: TestClient, w: World, c: Caller) -> None:
    body = {"geometry": square(117.19, 39.09, 0.05), "layers": [w.lid], "limit": 100}
    r = client.post("/identify", json=body, headers=c.headers)
    if c.features is None:
        return _absent(r)
    assert _names(r.json()["features"]) == c.features


def grants_of_layer(client: TestClient, w: World, c: Caller) -> None:
    r = client.get(f"/collections/{w.lid}/grants", headers=c.headers)
    if not c.keyed:
        assert r.status_code == 401
        return
    if c.features is None:
        return _absent(r)
    expected = 4 if c.name == "owner" else 1
    assert len(r.json()["grants"]) == expected


PROBES = [
    collections_list,
    collection_doc,
    queryables,
    items,
    items_bbox,
    items_csv,
    item_inside,
    item_outside,
    history,
    cql_filter,
    cql_filter_json,
    sortby,
    properties_list,
    property_equals,
    export_csv,
    export_gpkg,
    tile,
    tile_composite,
    tile_ogc,
    tilejson,
    tileset,
    style,
    overlay_features,
    overlay_aggregate,
    stats,
    identify_point,
    identify_every_layer,
    identify_polygon,
    grants_of_layer,
]
CALLERS = [
    "owner",
    "grantee in area",
    "grantee outside area",
    "grantee with attributes withheld",
    "expired grantee",
    "other department",
    "anonymous",
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("probe", PROBES, ids=[p.__name__ for p in PROBES])
def test_access_matrix(client: TestClient, world: World, probe: Any, caller: str) -> None:
    probe(client, world, world.callers[caller])


def test_matrix_covers_every_read_route(app: Any) -> None:
    """A read route added later must join the matrix (or be named here as not layer data)."""
    not_layer_data = {
        "/tiles/{layers}/labels.geojson",  # labels for polygon layers with names only
        # The sharing catalogue's entry (layers.records): metadata every department may read.
        "/collections/{collection_id}/catalogue-entry",
    }
    probed = {
        "/collections",
        "/collections/{collection_id}",
        "/collections/{collection_id}/queryables",
        "/collections/{collection_id}/items",
        "/collections/{collection_id}/items/{feature_id}",
        "/collections/{collection_id}/items/{feature_id}/history",
        "/collections/{collection_id}/export",
        "/tiles/{layers}/{z}/{x}/{y}.mvt",
        "/collections/{collection_id}/tiles/{tms}/{tile_matrix}/{tile_row}/{tile_col}",
        "/collections/{collection_id}/tiles",
        "/collections/{collection_id}/tiles/{tms}",
        "/tiles/{layers}/tilejson.json",
        "/styles/{layers}.json",
        "/overlay",
        "/identify",
        "/collections/{collection_id}/stats",
        "/collections/{collection_id}/grants",
    }
    paths = [route.path for route in app.routes if "GET" in (getattr(route, "methods", None) or ())]
    layer_routes = {p for p in paths if "{collection_id}" in p or "{layers}" in p}
    assert layer_routes - probed - not_layer_data == set()

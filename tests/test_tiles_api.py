"""The tile routes over HTTP, on the address library's system layers: tiles, composite, errors,
conditional requests, OGC API - Tiles, TileJSON and styles."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.db import get_engine, session_scope
from geo.versions import bump
from tests.tiles_fixtures import CENTRE, decode, tile_at

MVT = "application/vnd.mapbox-vector-tile"
REPO = Path(__file__).resolve().parents[1]
# Codes no real area has, so these rows never collide with an imported hierarchy.
TEST_AREAS = (
    ("990000000001", "测试东区", "district", (117.2, 39.1, 117.3, 39.2)),
    ("990000000002", "测试西区", "district", (117.1, 39.1, 117.2, 39.2)),
    ("990000000101", "测试街道", "subdistrict", (117.15, 39.12, 117.25, 39.14)),
)
Z12 = tile_at(*CENTRE, 12)
TILE = f"{Z12.z}/{Z12.x}/{Z12.y}"


@pytest.fixture(scope="module")
def areas(client: TestClient) -> Iterator[None]:
    """Rows of the address library's admin area table, as its import writes them."""
    with get_engine().begin() as conn:
        for code, name, level, (west, south, east, north) in TEST_AREAS:
            conn.execute(
                text(
                    "INSERT INTO admin_areas (code, name, level, geom) VALUES (:code, :name, "
                    ":level, ST_Multi(ST_MakeEnvelope(:w, :s, :e, :n, 4490)))"
                ),
                {"code": code, "name": name, "level": level}
                | {"w": west, "s": south, "e": east, "n": north},
            )
    with session_scope() as session:
        bump(session, "admin_areas")
    yield
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM admin_areas WHERE code LIKE '99000000%'"))
    with session_scope() as session:
        bump(session, "admin_areas")


def names(layer: dict) -> set[str]:
    return {f["properties"]["name"] for f in layer["features"]}


def test_single_layer_tile(client: TestClient, areas: None) -> None:
    response = client.get(f"/tiles/districts/{TILE}.mvt")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MVT
    layers = decode(response.content)
    assert list(layers) == ["districts"]
    assert {"测试东区", "测试西区"} <= names(layers["districts"])
    features = layers["districts"]["features"]
    feature = next(f for f in features if f["properties"]["name"] == "测试东区")
    assert feature["properties"]["code"] == "990000000001"
    assert feature["properties"]["level"] == "district"
    assert isinstance(feature["id"], int)
    assert response.headers["etag"].startswith('"')
    assert response.headers["cache-control"].startswith("public, max-age=")


def test_composite_tile_has_one_layer_per_id_in_order(client: TestClient, areas: None) -> None:
    response = client.get(f"/tiles/subdistricts,districts/{TILE}.mvt")
    assert response.status_code == 200
    layers = decode(response.content)
    assert list(layers) == ["subdistricts", "districts"]
    assert "测试街道" in names(layers["subdistricts"])
    assert "测试街道" not in names(layers["districts"])
    alone = client.get(f"/tiles/subdistricts/{TILE}.mvt").content
    assert response.content.startswith(alone)


def test_empty_tile_is_204_with_etag(client: TestClient, areas: None) -> None:
    far = tile_at(100.0, 30.0, 12)
    response = client.get(f"/tiles/districts,subdistricts/{far.z}/{far.x}/{far.y}.mvt")
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["etag"]


def test_ogc_tile_is_the_same_tile(client: TestClient, areas: None) -> None:
    ogc = client.get(f"/collections/districts/tiles/WebMercatorQuad/{Z12.z}/{Z12.y}/{Z12.x}")
    assert ogc.status_code == 200
    assert ogc.content == client.get(f"/tiles/districts/{TILE}.mvt").content
    assert ogc.headers["etag"] == client.get(f"/tiles/districts/{TILE}.mvt").headers["etag"]


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/districts/a/1/1.mvt",
        "/tiles/districts/1/1.5/1.mvt",
        "/tiles/districts/1/1/%20.mvt",
        "/collections/districts/tiles/WebMercatorQuad/x/0/0",
    ],
)
def test_non_integer_tile_address_is_400(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameterValue"
    assert "integer" in response.json()["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/districts/23/0/0.mvt",
        "/tiles/districts/-1/0/0.mvt",
        "/tiles/districts/2/4/0.mvt",
        "/tiles/districts/2/0/4.mvt",
        "/tiles/districts/3/-1/0.mvt",
        "/collections/districts/tiles/WebMercatorQuad/1/2/0",
    ],
)
def test_tile_outside_the_matrix_set_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "TileOutOfRange"


def test_unknown_layer_in_a_list_is_404_naming_it(client: TestClient) -> None:
    response = client.get(f"/tiles/districts,no_such_layer/{TILE}.mvt")
    assert response.status_code == 404
    assert "no_such_layer" in response.json()["message"]
    assert client.get("/collections/no_such_layer/tiles").status_code == 404


def test_fifty_layers_is_400(client: TestClient) -> None:
    ids = ",".join(f"layer_{i}" for i in range(50))
    response = client.get(f"/tiles/{ids}/{TILE}.mvt")
    assert response.status_code == 400
    assert response.json()["code"] == "TooManyLayers"
    assert response.json()["details"] == {"count": 50, "max": 20}


@pytest.mark.parametrize(
    ("ids", "code"),
    [("districts,districts", "DuplicateLayer"), ("districts,,grids", "InvalidParameterValue")],
)
def test_malformed_layer_lists_are_400(client: TestClient, ids: str, code: str) -> None:
    response = client.get(f"/tiles/{ids}/{TILE}.mvt")
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_unknown_query_parameter_is_400(client: TestClient) -> None:
    response = client.get(f"/tiles/districts/{TILE}.mvt?zoom=3")
    assert response.status_code == 400
    assert response.json()["code"] == "UnknownParameter"


def test_if_none_match_304_and_stale_etag_gets_200(client: TestClient, areas: None) -> None:
    url = f"/tiles/districts/{TILE}.mvt"
    first = client.get(url)
    etag = first.headers["etag"]
    cached = client.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
    # An edit of the admin areas bumps their version: the old ETag is stale.
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE admin_areas SET name = '测试东区新' WHERE code = '990000000001'"))
    with session_scope() as session:
        bump(session, "admin_areas")
    fresh = client.get(url, headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] != etag
    assert "测试东区新" in names(decode(fresh.content)["districts"])
    # Other layers' tiles are keyed by their own versions and keep their ETags.
    grids = client.get(f"/tiles/grids/{TILE}.mvt")
    assert client.get(f"/tiles/grids/{TILE}.mvt").headers["etag"] == grids.headers["etag"]
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE admin_areas SET name = '测试东区' WHERE code = '990000000001'"))
    with session_scope() as session:
        bump(session, "admin_areas")


def test_tile_matrix_sets(client: TestClient) -> None:
    listing = client.get("/tileMatrixSets").json()
    assert [t["id"] for t in listing["tileMatrixSets"]] == ["WebMercatorQuad"]
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["id"] == "WebMercatorQuad"
    assert [m["id"] for m in tms["tileMatrices"]] == [str(z) for z in range(23)]
    assert tms["tileMatrices"][10]["matrixWidth"] == 1024
    assert client.get("/tileMatrixSets/WorldCRS84Quad").status_code == 404


def test_ogc_tileset_metadata(client: TestClient, areas: None) -> None:
    tilesets = client.get("/collections/districts/tiles").json()
    (tileset,) = tilesets["tilesets"]
    assert tileset["dataType"] == "vector"
    assert tileset["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    meta = client.get("/collections/districts/tiles/WebMercatorQuad").json()
    assert meta["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    limits = {lim["tileMatrix"]: lim for lim in meta["tileMatrixSetLimits"]}
    assert set(limits) == {str(z) for z in range(23)}
    assert limits["12"]["minTileCol"] <= Z12.x <= limits["12"]["maxTileCol"]
    assert limits["12"]["minTileRow"] <= Z12.y <= limits["12"]["maxTileRow"]
    item = next(link for link in meta["links"] if link["rel"] == "item")
    assert item["type"] == MVT
    template = "/collections/districts/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}"
    assert item["href"].split("?")[0].endswith(template)
    assert meta["layers"][0]["geometryDimension"] == 2
    assert client.get("/collections/districts/tiles/Other").status_code == 404


def test_conformance_lists_ogc_api_tiles(client: TestClient) -> None:
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in classes
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset" in classes


def test_tilejson(client: TestClient, areas: None) -> None:
    doc = client.get("/tiles/districts,addresses/tilejson.json").json()
    assert doc["tilejson"] == "3.0.0"
    (template,) = doc["tiles"]
    # ?v=: the layers' data version (tests/test_tile_versions.py)
    assert re.fullmatch(
        r"http://testserver/tiles/districts,addresses/\{z\}/\{x\}/\{y\}\.mvt\?v=\d+", template
    )
    assert (doc["minzoom"], doc["maxzoom"]) == (0, 22)
    west, south, east, north = doc["bounds"]
    assert west < CENTRE[0] < east and south < CENTRE[1] < north
    layers = {v["id"]: v for v in doc["vector_layers"]}
    assert list(layers) == ["districts", "addresses"]
    assert layers["districts"]["fields"]["name"] == "String"
    assert "id" not in layers["districts"]["fields"]  # integer ids are MVT feature ids
    assert "full_address" in layers["addresses"]["fields"]


def test_urls_carry_a_token_for_a_query_key_and_nothing_for_a_header_key(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    key = admin_headers["Authorization"].removeprefix("Bearer ")
    by_query = client.get(f"/tiles/districts/tilejson.json?key={key}").json()
    assert re.search(r"/\{z\}/\{x\}/\{y\}\.mvt\?v=\d+&token=", by_query["tiles"][0])
    assert key not in by_query["tiles"][0]
    style = client.get(f"/styles/districts.json?key={key}").json()
    assert "&token=" in style["sources"]["geo"]["tiles"][0]
    assert key not in str(style)
    by_header = client.get("/tiles/districts/tilejson.json", headers=admin_headers).json()
    assert "key=" not in by_header["tiles"][0] and "token=" not in by_header["tiles"][0]


def test_style_draws_areas_as_outlines_with_labels(client: TestClient, areas: None) -> None:
    style = client.get("/styles/districts,grids,addresses.json").json()
    assert style["version"] == 8
    assert "glyphs" not in style  # labels are drawn with the browser's fonts (see tiles.styles)
    layers = {layer["id"]: layer for layer in style["layers"]}
    assert layers["background"]["type"] == "background"
    assert layers["districts-outline"]["type"] == "line"
    assert layers["districts-label"]["layout"]["text-field"] == ["get", "name"]
    assert "districts-fill" not in layers
    assert layers["addresses-circle"]["source-layer"] == "addresses"
    order = [layer["id"] for layer in style["layers"]]
    assert order.index("districts-outline") < order.index("addresses-circle")
    assert order.index("addresses-circle") < order.index("districts-label")
    assert {layer.get("source") for layer in style["layers"]} == {None, "geo", "geo-labels"}
    # Names come from one point per area, so an area spanning several tiles is named once.
    assert layers["districts-label"]["source"] == "geo-labels"
    labels_url = style["sources"]["geo-labels"]["data"]
    assert labels_url == "http://testserver/tiles/districts,grids/labels.geojson"


def test_label_points_one_per_named_area(client: TestClient, areas: None) -> None:
    response = client.get("/tiles/districts,subdistricts,addresses/labels.geojson")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    features = response.json()["features"]
    mine = {"测试东区", "测试西区", "测试街道"}
    ours = {f["properties"]["name"]: f for f in features if f["properties"]["name"] in mine}
    assert set(ours) == mine
    assert ours["测试街道"]["properties"]["layer"] == "subdistricts"
    lon, lat = ours["测试东区"]["geometry"]["coordinates"]
    assert 117.2 < lon < 117.3 and 39.1 < lat < 39.2
    again = client.get(
        "/tiles/districts,subdistricts,addresses/labels.geojson",
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304


def test_style_is_valid_for_maplibre(client: TestClient, tmp_path: Path) -> None:
    """Checked by MapLibre's own validator (the npm package's gl-style-validate)."""
    validator = REPO / "node_modules/.bin/gl-style-validate"
    if not validator.exists():
        pytest.fail("node_modules missing: run `make test-deps` (npm ci)")
    style = client.get("/styles/districts,subdistricts,communities,grids,addresses.json").json()
    path = tmp_path / "style.json"
    path.write_text(json.dumps(style, ensure_ascii=False))
    result = subprocess.run([str(validator), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_map_page_and_vendored_maplibre(client: TestClient) -> None:
    page = client.get("/map")
    assert page.status_code == 200
    assert "/map/assets/vendor/maplibre-gl.js" in page.text
    script = client.get("/map/assets/vendor/maplibre-gl.js")
    assert script.status_code == 200
    assert len(script.content) > 500_000
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["maplibre-gl"]
    assert (REPO / "tiles/static/vendor/VERSION").read_text().strip() == pinned
    assert pinned.startswith("5.")
    assert client.get("/map/assets/map.js").status_code == 200

"""Offline packages (tiles.pmtiles_export): `GET /tiles/{layers}.pmtiles` and `geo tiles export`.

Archives are read back with the pmtiles reader library and their tiles decoded with
mapbox-vector-tile; every tile must be the very bytes the tile API serves at the same z/x/y, and
every tile the API serves with features must be in the archive.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from pmtiles.reader import MemorySource, Reader, all_tiles
from pmtiles.tile import Compression, TileType
from sqlalchemy import text

from geo.db import session_scope
from tests.audit_helpers import AdminDept, with_admin
from tests.conftest import Dept
from tests.layers_helpers import make_points_layer
from tiles.pmtiles_export import tile_count, zoom_tiles

MEDIA = "application/vnd.pmtiles"
POINTS = 20
ZOOMS = (8, 14)


@pytest.fixture(scope="module")
def admin_dept(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable[..., Dept]
) -> AdminDept:
    return with_admin(client, admin_headers, make_department)


@pytest.fixture(scope="module")
def public_layer(client: TestClient, admin_dept: AdminDept) -> str:
    return make_points_layer(client, admin_dept.dept.editor, n=POINTS, access="public")


def read(archive: bytes) -> tuple[Reader, dict[tuple[int, int, int], bytes]]:
    source = MemorySource(archive)
    return Reader(source), {tuple(zxy): data for zxy, data in all_tiles(source)}


def served(client: TestClient, layers: str, z: int, x: int, y: int, headers: dict) -> bytes:
    r = client.get(f"/tiles/{layers}/{z}/{x}/{y}.mvt", headers=headers)
    assert r.status_code in (200, 204), r.text
    return r.content


def export(client: TestClient, layers: str, headers: dict, **params: str):
    return client.get(f"/tiles/{layers}.pmtiles", params=params, headers=headers)


def test_archive_tiles_are_the_served_tiles(
    client: TestClient, admin_headers: dict[str, str], public_layer: str
) -> None:
    r = export(client, public_layer, admin_headers, zooms=f"{ZOOMS[0]}-{ZOOMS[1]}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA
    assert int(r.headers["content-length"]) == len(r.content)
    reader, tiles = read(r.content)
    header = reader.header()
    assert header["tile_type"] == TileType.MVT
    assert header["tile_compression"] == Compression.GZIP
    assert (header["min_zoom"], header["max_zoom"]) == ZOOMS
    assert header["clustered"]

    bounds = tuple(reader.metadata()["bounds"])
    # Every tile of the area: in the archive exactly when the API serves it with features,
    # and then the same bytes.
    with_features = 0
    for z in range(ZOOMS[0], ZOOMS[1] + 1):
        for _, tile in zoom_tiles(bounds, z):
            expected = served(client, public_layer, tile.z, tile.x, tile.y, admin_headers)
            stored = tiles.get((tile.z, tile.x, tile.y))
            if not expected:
                assert stored is None, tile
                continue
            assert stored is not None, tile
            assert gzip.decompress(stored) == expected, tile
            assert reader.get(tile.z, tile.x, tile.y) == stored
            with_features += 1
    assert with_features == len(tiles)
    # Decoded by the real client library: every point at every zoom.
    for z in range(ZOOMS[0], ZOOMS[1] + 1):
        ids: set[int] = set()
        for (tz, _, _), data in tiles.items():
            if tz == z:
                layer = mapbox_vector_tile.decode(gzip.decompress(data))[public_layer]
                ids |= {f["id"] for f in layer["features"]}
        assert len(ids) == POINTS, z


def test_metadata_is_the_tilejson_for_the_zooms(
    client: TestClient, admin_headers: dict[str, str], public_layer: str
) -> None:
    r = export(client, public_layer, admin_headers, zooms="10-12")
    assert r.status_code == 200, r.text
    reader, _ = read(r.content)
    meta = reader.metadata()
    tilejson = client.get(f"/tiles/{public_layer}/tilejson.json").json()
    assert meta["name"] == tilejson["name"] == public_layer
    assert meta["attribution"] == tilejson["attribution"]
    assert (meta["minzoom"], meta["maxzoom"]) == (10, 12)
    expected_layers = [v | {"minzoom": 10, "maxzoom": 12} for v in tilejson["vector_layers"]]
    assert meta["vector_layers"] == expected_layers
    # The layer's exact extent by default (make_points_layer walks north-east from 117.2, 39.1),
    # also in the header.
    last = POINTS - 1
    extent = [117.2, 39.1, 117.2 + last * 0.001, 39.1 + last * 0.0005]
    assert meta["bounds"] == pytest.approx(extent, abs=1e-7)
    header = reader.header()
    assert header["min_lon_e7"] / 1e7 == pytest.approx(meta["bounds"][0], abs=1e-6)
    assert header["max_lat_e7"] / 1e7 == pytest.approx(meta["bounds"][3], abs=1e-6)
    assert set(meta["versions"]) == {public_layer}
    # The viewer draws the archive with the layers of the live style (tiles.styles).
    live = client.get(f"/styles/{public_layer}.json").json()["layers"]
    assert meta["geo:style_layers"] == [layer for layer in live if layer.get("source") == "geo"]
    assert {layer["source-layer"] for layer in meta["geo:style_layers"]} == {public_layer}


def test_bbox_narrows_the_archive(
    client: TestClient, admin_headers: dict[str, str], public_layer: str
) -> None:
    # The first few points only (make_points_layer walks north-east from 117.2, 39.1).
    bbox = "117.1995,39.0995,117.2035,39.1015"
    r = export(client, public_layer, admin_headers, zooms="16", bbox=bbox)
    assert r.status_code == 200, r.text
    reader, tiles = read(r.content)
    assert reader.metadata()["bounds"] == [117.1995, 39.0995, 117.2035, 39.1015]
    assert {z for z, _, _ in tiles} == {16}
    ids = {
        f["id"]
        for data in tiles.values()
        for f in mapbox_vector_tile.decode(gzip.decompress(data))[public_layer]["features"]
    }
    assert 4 <= len(ids) < POINTS


def test_tile_count_is_morecantiles() -> None:
    bbox = (117.0, 38.9, 117.5, 39.3)
    tms = morecantile.tms.get("WebMercatorQuad")
    expected = sum(1 for _ in tms.tiles(*bbox, zooms=list(range(8, 14))))
    assert tile_count(bbox, (8, 13)) == expected
    ordered = [tile_id for tile_id, _ in zoom_tiles(bbox, 13)]
    assert ordered == sorted(ordered) and len(ordered) == len(set(ordered))


def test_non_admins_are_refused(
    client: TestClient, admin_dept: AdminDept, public_layer: str
) -> None:
    r = export(client, public_layer, admin_dept.dept.editor)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    assert r.json()["code"] == "Forbidden"
    assert export(client, public_layer, admin_dept.dept.viewer).status_code == 403
    anonymous = export(client, public_layer, {})
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "Unauthorized"


def test_department_admin_exports_what_its_department_may_download(
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
    admin_dept: AdminDept,
) -> None:
    own = make_points_layer(client, admin_dept.dept.editor, n=5, access="private")
    r = export(client, own, admin_dept.admin, zooms="12-14")
    assert r.status_code == 200, r.text
    _, tiles = read(r.content)
    assert tiles
    # The export is on the audit trail, as every read of a non-public layer.
    with session_scope() as session:
        via = session.scalars(
            text(
                "SELECT details->>'via' FROM audit_log WHERE action = 'layer.read' "
                "AND target = :t ORDER BY id"
            ),
            {"t": own},
        ).all()
    assert any(v.startswith("pmtiles z12-14") for v in via), via

    other = with_admin(client, admin_headers, make_department)
    theirs = make_points_layer(client, other.dept.editor, n=5, access="private")
    r = export(client, theirs, admin_dept.admin, zooms="12-14")
    assert r.status_code == 404
    assert r.json()["code"] == "NotFound"
    # The platform administrator exports any layer.
    assert export(client, theirs, admin_headers, zooms="12-14").status_code == 200


def test_over_the_size_limit_is_413(
    client: TestClient, admin_headers: dict[str, str], public_layer: str
) -> None:
    r = export(client, public_layer, admin_headers, zooms="8-18", bbox="116.7,38.5,118.1,40.3")
    assert r.status_code == 413
    body = r.json()
    assert body["code"] == "ExportTooLarge"
    assert body["details"]["tiles"] > body["details"]["max"] == 250_000
    assert body["message"].startswith("离线包含")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"zooms": "16-8"}, "zooms"),
        ({"zooms": "a-b"}, "zooms"),
        ({"zooms": "8-23"}, "zooms"),
        ({"zooms": "-1"}, "zooms"),
        ({"bbox": "117,39,118"}, "bbox"),
        ({"bbox": "118,39,117,40"}, "bbox"),
        ({"bbox": "117,39,200,40"}, "bbox"),
        ({"bbox": "117,39,118,89"}, "bbox"),
        ({"bbox": "117,39,118,nan"}, "bbox"),
    ],
)
def test_bad_zooms_and_bbox_are_400(
    client: TestClient, admin_headers: dict[str, str], public_layer: str, params: dict, name: str
) -> None:
    r = export(client, public_layer, admin_headers, **params)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidParameterValue"
    assert r.json()["details"]["parameter"] == name


def test_an_area_without_features_is_422(
    client: TestClient, admin_headers: dict[str, str], public_layer: str
) -> None:
    r = export(client, public_layer, admin_headers, zooms="12-14", bbox="117.6,39.3,117.65,39.35")
    assert r.status_code == 422
    assert r.json()["code"] == "NothingToExport"


def geo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": "120"},
        timeout=300,
    )


def test_cli_writes_the_same_archive_with_progress(
    client: TestClient, admin_headers: dict[str, str], public_layer: str, tmp_path: Path
) -> None:
    out = tmp_path / "offline.pmtiles"
    result = geo("tiles", "export", public_layer, "--zooms", "10-13", str(out))
    assert result.returncode == 0, result.stderr
    assert "导出瓦片" in result.stderr  # the progress bar's last frame
    assert "已写入" in result.stderr
    _, from_cli = read(out.read_bytes())
    r = export(client, public_layer, admin_headers, zooms="10-13")
    _, from_api = read(r.content)
    assert from_cli == from_api and from_cli
    count = tile_count(tuple(Reader(MemorySource(r.content)).metadata()["bounds"]), (10, 13))
    assert f"{count}/{count}" in result.stderr


def test_cli_bad_layer_fails_with_a_clear_message(client: TestClient, tmp_path: Path) -> None:
    out = tmp_path / "none.pmtiles"
    result = geo("tiles", "export", "no_such_layer_x", str(out))
    assert result.returncode == 1
    assert "导出失败" in result.stderr and "no_such_layer_x" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
    result = geo("tiles", "export", "districts", "--zooms", "9-3", str(out))
    assert result.returncode == 1
    assert "缩放级别" in result.stderr

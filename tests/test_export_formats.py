"""Whole-layer downloads in every format and CRS, from a real `geo serve` process, read back
with GDAL (pyogrio, and Debian's `ogrinfo` for the Shapefile's Chinese attribute text)."""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import text

from geo.crs import transform_xy
from geo.db import session_scope
from layers.export import FORMATS, shapefile_names
from tests.address_library import load
from tests.conftest import Dept
from tests.layers_helpers import collection, layer_id, square, upload
from tests.live_server import live_server

N = 9
NAMES = [
    "和平路站",
    "南京路站",
    "滨江道站",
    "=1+1",
    "营口道站",
    "小白楼站",
    "下瓦房站",
    "西南楼站",
    "尖山路站",
]
CRS_CHOICES = ["EPSG:4490", "EPSG:4326", "EPSG:4548", "EPSG:3857", "GCJ02", "BD09"]


def points() -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [117.20 + i * 0.01, 39.10 + i * 0.005]},
            "properties": {"名称": NAMES[i], "人口": i * 10, "面积": i / 4},
        }
        for i in range(N)
    ]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with live_server() as running:
        yield running.base


@pytest.fixture(scope="module")
def owner(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


@pytest.fixture(scope="module")
def layer(client: TestClient, owner: Dept) -> str:
    lid = layer_id("exp")
    r = upload(client, owner.editor, lid, collection(points()), access="private")
    assert r.status_code == 201, r.text
    return lid


def download(server: str, headers: dict[str, str], lid: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{server}/collections/{lid}/export", params=params, headers=headers, timeout=60
    )


def read_back(fmt: str, content: bytes, folder: Path) -> tuple[list[str], list[Any], Any]:
    """(names, rows of (名称, 人口), geometries) as GDAL reads the file."""
    path = folder / f"layer.{FORMATS[fmt].suffix}"
    path.write_bytes(content)
    source = f"/vsizip/{path}" if fmt == "shp" else str(path)
    df = pyogrio.read_dataframe(source, read_geometry=fmt not in ("csv", "xlsx"))
    if fmt in ("csv", "xlsx"):
        geoms = shapely.from_wkt(df["wkt"].to_numpy())
    else:
        geoms = df.geometry.to_numpy()
    rows = [(str(n), int(p)) for n, p in zip(df["名称"], df["人口"], strict=True)]
    return list(df.columns), rows, geoms


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("crs", CRS_CHOICES)
def test_every_format_in_every_crs_round_trips(
    server: str, owner: Dept, layer: str, fmt: str, crs: str, tmp_path: Path
) -> None:
    r = download(server, owner.viewer, layer, f=fmt, crs=crs)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == FORMATS[fmt].media_type.split(";")[0]
    assert f'filename="{layer}.{FORMATS[fmt].suffix}"' in r.headers["content-disposition"]
    names, rows, geoms = read_back(fmt, r.content, tmp_path)
    assert "名称" in names and "人口" in names
    assert sorted(rows) == sorted((NAMES[i], i * 10) for i in range(N))
    # Coordinates in the chosen CRS as the project's own transforms give them, x/y order.
    order = [NAMES.index(n) for n, _ in rows]
    lon = np.array([117.20 + i * 0.01 for i in order])
    lat = np.array([39.10 + i * 0.005 for i in order])
    x, y = transform_xy(lon, lat, "EPSG:4490", crs)
    tolerance = 1e-3 if crs in ("EPSG:4548", "EPSG:3857") else 1e-8
    assert np.allclose(shapely.get_x(geoms), x, atol=tolerance, rtol=0)
    assert np.allclose(shapely.get_y(geoms), y, atol=tolerance, rtol=0)
    if crs in ("GCJ02", "BD09"):
        # Offset from WGS 84 by hundreds of metres: the file holds the offset coordinates.
        assert abs(shapely.get_x(geoms)[0] - lon[0]) > 1e-3


def test_files_declare_their_crs(server: str, owner: Dept, layer: str, tmp_path: Path) -> None:
    for fmt in ("gpkg", "shp", "geojson"):
        r = download(server, owner.viewer, layer, f=fmt, crs="EPSG:4548")
        path = tmp_path / f"x.{FORMATS[fmt].suffix}"
        path.write_bytes(r.content)
        info = pyogrio.read_info(f"/vsizip/{path}" if fmt == "shp" else path)
        assert info["crs"] == "EPSG:4548", (fmt, info["crs"])
        assert info["features"] == N


def test_shapefile_chinese_attributes_read_back_with_ogrinfo(
    server: str, owner: Dept, layer: str, tmp_path: Path
) -> None:
    r = download(server, owner.viewer, layer, f="shp", crs="EPSG:4490")
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    members = sorted(archive.namelist())
    assert members == sorted(f"{layer}.{s}" for s in ("cpg", "dbf", "prj", "shp", "shx"))
    assert archive.read(f"{layer}.cpg").strip() == b"UTF-8"
    path = tmp_path / "layer.zip"
    path.write_bytes(r.content)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", f"/vsizip/{path}"], capture_output=True, check=True
    ).stdout.decode("utf-8")
    assert "名称 (String)" in out and "人口 (Integer" in out
    for name in NAMES:
        assert f"名称 (String) = {name}" in out
    assert f"Feature Count: {N}" in out


def test_shapefile_names_are_cut_between_characters() -> None:
    assert shapefile_names(["所属街道名称", "所属街道编码", "a", "A", "fid_source"]) == [
        "所属街",
        "所属_1",
        "a",
        "A_1",
        "fid_source",
    ]
    assert all(len(n.encode()) <= 10 for n in shapefile_names(["一二三四五六七八九十"] * 12))


def test_xlsx_text_is_never_a_formula(server: str, owner: Dept, layer: str) -> None:
    r = download(server, owner.viewer, layer, f="xlsx")
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert sheet is not None
    cells = [row[1] for row in sheet.iter_rows(min_row=2)]
    formula = next(c for c in cells if c.value == "=1+1")
    assert formula.data_type == "s"


def test_a_scoped_grantee_exports_only_its_area_and_attributes(
    client: TestClient,
    server: str,
    owner: Dept,
    layer: str,
    make_department: Callable[..., Dept],
    tmp_path: Path,
) -> None:
    friend = make_department()
    # The first four points (117.20..117.23, 39.100..39.115).
    area = square(117.195, 39.095, 0.04)
    r = client.post(
        f"/collections/{layer}/grants",
        json={"grantee": friend.code, "level": "download", "area": area, "attributes": ["名称"]},
        headers=owner.editor,
    )
    assert r.status_code == 201, r.text
    for fmt in FORMATS:
        r = download(server, friend.viewer, layer, f=fmt, crs="GCJ02")
        assert r.status_code == 200, r.text
        path = tmp_path / f"scoped.{FORMATS[fmt].suffix}"
        path.write_bytes(r.content)
        df = pyogrio.read_dataframe(f"/vsizip/{path}" if fmt == "shp" else path)
        assert sorted(df["名称"]) == sorted(NAMES[:4]), fmt
        assert "人口" not in df.columns and "面积" not in df.columns, fmt
    # A view grant is not enough to download.
    viewer = make_department()
    client.post(
        f"/collections/{layer}/grants",
        json={"grantee": viewer.code, "level": "view"},
        headers=owner.editor,
    )
    assert download(server, viewer.viewer, layer, f="geojson").status_code == 403


def test_bad_format_and_crs_are_named(server: str, owner: Dept, layer: str) -> None:
    r = download(server, owner.viewer, layer, f="kml")
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert "kml" in r.text and "geojson" in r.text
    r = download(server, owner.viewer, layer, f="geojson", crs="EPSG:9999")
    assert r.status_code == 400
    assert r.json()["code"] == "UnknownCRS" and r.json()["details"]["crs"] == "EPSG:9999"
    assert download(server, {}, layer, f="geojson").status_code == 404


def test_a_shapefile_of_mixed_geometries_is_refused(
    client: TestClient, server: str, owner: Dept
) -> None:
    lid = layer_id("mixed")
    body = {"id": lid, "geometry_type": "Geometry", "access": "public"}
    assert client.post("/collections", json=body, headers=owner.editor).status_code == 201
    for geometry in ({"type": "Point", "coordinates": [117.2, 39.1]}, square(117.3, 39.1)):
        feature = {"type": "Feature", "geometry": geometry, "properties": {}}
        r = client.post(f"/collections/{lid}/items", json=feature, headers=owner.editor)
        assert r.status_code == 201, r.text
    r = download(server, owner.viewer, lid, f="shp")
    assert r.status_code == 409 and r.json()["code"] == "MixedGeometryTypes", r.text
    assert download(server, owner.viewer, lid, f="gpkg").status_code == 200


def test_a_system_collection_exports_with_shapefile_names_cut(server: str, tmp_path: Path) -> None:
    """The address library's addresses (public): long names cut to 10 bytes, none lost."""
    r = download(server, {}, "addresses", f="shp")
    assert r.status_code == 200, r.text
    path = tmp_path / "addresses.zip"
    path.write_bytes(r.content)
    fields = list(pyogrio.read_info(f"/vsizip/{path}")["fields"])
    assert fields[:4] == ["fid_source", "code", "full_addre", "district_c"]
    assert len(fields) == 13 and len({f.lower() for f in fields}) == 13


@pytest.mark.parametrize("fmt", FORMATS)
def test_features_without_geometry_export_in_every_format(
    server: str, fmt: str, tmp_path: Path
) -> None:
    """Communities on record without an outline (no geometry) are exported with an empty one,
    not a 500 (GeoJSON wrote `None.encode()`, XLSX measured `len(None)`)."""
    load()
    with session_scope() as session:
        outlines = session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE geom IS NULL) FROM current_admin_areas"
                " WHERE level = 'community'"
            )
        ).one()
    assert outlines[1] > 0, "the sample library has no community without an outline"
    r = download(server, {}, "communities", f=fmt, crs="EPSG:4490")
    assert r.status_code == 200, r.text
    path = tmp_path / f"communities.{FORMATS[fmt].suffix}"
    path.write_bytes(r.content)
    source = f"/vsizip/{path}" if fmt == "shp" else str(path)
    read = pyogrio.read_dataframe(source, read_geometry=fmt not in ("csv", "xlsx"))
    assert len(read) == outlines[0]

"""Whole-layer downloads: GeoPackage (read back with GDAL) and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyogrio
from fastapi.testclient import TestClient

from tests.layers_helpers import make_points_layer


def test_geopackage_export_round_trips(client: TestClient, make_department, tmp_path: Path) -> None:
    dept = make_department()
    lid = make_points_layer(client, dept.editor, 12, access="private")
    r = client.get(f"/collections/{lid}/export", params={"f": "gpkg"}, headers=dept.viewer)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geopackage+sqlite3"
    path = tmp_path / "x.gpkg"
    path.write_bytes(r.content)
    info = pyogrio.read_info(path)
    assert info["features"] == 12 and info["crs"] == "EPSG:4490"
    df = pyogrio.read_dataframe(path)
    assert sorted(df["name"]) == sorted(f"p{i}" for i in range(12))
    assert abs(df.geometry.x.min() - 117.2) < 1e-9  # written x/y (lon/lat) as files are
    assert client.get(f"/collections/{lid}/export").status_code == 404


def test_csv_export(client: TestClient, make_department) -> None:
    dept = make_department()
    lid = make_points_layer(client, dept.editor, 7)
    r = client.get(f"/collections/{lid}/export", params={"f": "csv"})
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 8 and rows[0][-1] == "wkt"
    assert client.get(f"/collections/{lid}/export", params={"f": "kml"}).status_code == 400

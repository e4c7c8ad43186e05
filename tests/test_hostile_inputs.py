"""Hostile input is a 4xx that names the problem, never a 500 (issue "Robustness first").

Each case here used to be a 500 (or a dropped connection, or silently garbled data): ids with a
trailing newline, NUL in paths, query strings and JSON bodies, integers beyond bigint, NaN and
non-finite CRS results, an Excel file sent as CSV, a GBK shapefile without its .cpg, and upload
copies left behind by a worker killed mid-upload.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openpyxl
import orjson
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo import spool
from geo.db import get_engine
from geo.errors import error_body
from geo.inputs import _NulScanner
from tests.conftest import Dept
from tests.layers_helpers import (
    collection,
    layer_id,
    make_points_layer,
    point_features,
    upload,
)
from tests.live_server import live_server


@pytest.fixture(scope="module")
def dept(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    return body


# -- ids and control characters -------------------------------------------------------------------


def test_ids_with_a_trailing_newline_are_refused(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    r = client.post(
        "/departments", json={"name": "x", "code": "sa9559_priv\n"}, headers=admin_headers
    )
    _error(r, 400, "InvalidParameterValue")
    codes = [
        d["code"] for d in client.get("/departments", headers=admin_headers).json()["departments"]
    ]
    assert "sa9559_priv\n" not in codes

    r = client.post(
        "/collections", json={"id": "nl_layer\n", "geometry_type": "Point"}, headers=dept.editor
    )
    _error(r, 400, "InvalidParameterValue")
    r = client.post(
        "/collections",
        json={
            "id": layer_id(),
            "geometry_type": "Point",
            "properties": [{"name": "name\n", "type": "string"}],
        },
        headers=dept.editor,
    )
    _error(r, 400, "InvalidSchema")
    # The same id in a path: the newline is refused before any route sees it.
    r = upload(client, dept.editor, "nl_upload%0A", collection(point_features(2)))
    body = _error(r, 400, "InvalidCharacter")
    assert body["details"]["parameter"] == "path"


def test_control_characters_in_paths_and_queries(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    lid = make_points_layer(client, dept.editor)
    for url in (f"/collections/{lid}%00/items", "/areas/1%00", "/departments/x%00"):
        body = _error(client.get(url, headers=admin_headers), 400, "InvalidCharacter")
        assert body["details"] == {
            "parameter": "path",
            "character": "U+0000",
            "position": body["details"]["position"],
        }
    for url, name in (
        ("/addresses/geocode?q=a%00b", "q"),
        ("/addresses/suggest?q=%01", "q"),
        (f"/collections/{lid}/items?name=a%00b", "name"),
        ("/audit?department=a%00", "department"),
    ):
        body = _error(client.get(url, headers=admin_headers), 400, "InvalidCharacter")
        assert body["details"]["parameter"] == name
        assert repr(name) in body["message"]
    # A line break in free text is text (a pasted address, a multi-line CQL2 filter).
    assert client.get("/addresses/geocode?q=%E5%8F%8B%E8%B0%8A%E8%B7%AF%0A").status_code == 200
    r = client.get(f"/collections/{lid}/items", params={"filter": "pop >\n 3"})
    assert r.status_code == 200, r.text


def test_nul_in_json_bodies(client: TestClient, admin_headers: dict[str, str], dept: Dept) -> None:
    lid = make_points_layer(client, dept.editor)
    r = client.post("/departments", json={"name": "a\x00b"}, headers=admin_headers)
    assert _error(r, 400, "InvalidCharacter")["details"]["parameter"] == "body"
    r = client.patch(f"/collections/{lid}", json={"title": "t\x00"}, headers=dept.editor)
    _error(r, 400, "InvalidCharacter")
    feature = point_features(1)[0] | {"properties": {"name": "a\x00b", "pop": 1, "score": 1.0}}
    r = client.post(
        f"/collections/{lid}/items",
        content=orjson.dumps(feature),
        headers={**dept.editor, "Content-Type": "application/geo+json"},
    )
    _error(r, 400, "InvalidCharacter")
    r = client.post(
        "/overlay",
        json={"layer": lid, "other": "districts", "predicate": "within", "filter": "\x00"},
    )
    _error(r, 400, "InvalidCharacter")
    # An escaped backslash followed by the text u0000 is not a NUL.
    feature["properties"]["name"] = "C:\\u0000"
    r = client.post(
        f"/collections/{lid}/items",
        content=orjson.dumps(feature),
        headers={**dept.editor, "Content-Type": "application/geo+json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["name"] == "C:\\u0000"


@pytest.mark.parametrize(
    ("body", "nul_at"),
    [
        (b'{"a": "x\\u0000"}', 8),
        (b'{"a": "x\\\\u0000"}', None),  # \\ then u0000: text, not an escape
        (b'{"a": "x\\\\\\u0000"}', 10),
        (b'{"a": "\\\\\\\\u0000"}', None),
        (b'{"a": "plain"}', None),
    ],
)
def test_nul_scanner_across_every_chunk_boundary(body: bytes, nul_at: int | None) -> None:
    for size in range(1, len(body) + 1):
        scanner = _NulScanner()
        found = None
        for start in range(0, len(body), size):
            found = scanner.feed(body[start : start + size])
            if found is not None:
                break
        assert found == nul_at, (body, size)


def test_nul_in_uploads(client: TestClient, dept: Dept) -> None:
    r = upload(
        client, dept.editor, layer_id(), collection(point_features(2)), metadata={"title": "a\x00"}
    )
    body = _error(r, 400, "InvalidCharacter")
    assert body["details"] == {"parameter": "metadata", "path": "title"}
    features = point_features(3)
    features[1]["properties"]["name"] = "bad\x00name"
    body = _error(
        upload(client, dept.editor, layer_id(), collection(features)), 422, "InvalidFeatures"
    )
    assert body["details"]["errors"][0]["index"] == 1
    assert "NUL" in body["details"]["errors"][0]["reason"]
    csv_body = b"lon,lat,name\n117.2,39.1,ok\n117.21,39.11,a\x00b\n"
    r = upload(client, dept.editor, layer_id(), csv_body, "nul.csv")
    body = _error(r, 422, "InvalidFeatures")
    assert body["details"]["errors"][0]["index"] == 1
    # Batch geocoding checks the whole file before its streamed 200.
    r = client.post(
        "/addresses/geocode/batch",
        files={"file": ("a.csv", "address\n天津市\n友谊\x00路\n".encode())},
        headers=dept.viewer,
    )
    assert _error(r, 400, "InvalidCharacter")["details"] == {"line": 3}


# -- numbers --------------------------------------------------------------------------------------


def test_integers_beyond_bigint_are_400s(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    lid = make_points_layer(client, dept.editor)
    for url in (
        f"/collections/{lid}/items?offset=100000000000000000000",
        f"/collections/{lid}/items?limit=100000000000000000000",
        "/audit?offset=263505758635994185728",
        "/areas?offset=263505758635994185728",
        f"/departments/{dept.code}/keys/100000000000000000000",
        "/addresses/100000000000000000000",
    ):
        method = "DELETE" if "/keys/" in url else "GET"
        body = _error(
            client.request(method, url, headers=admin_headers), 400, "InvalidParameterValue"
        )
        assert body["details"]["maximum"] <= 2**63 - 1, url
    body = _error(
        client.get("/audit?limit=100000", headers=admin_headers), 400, "InvalidParameterValue"
    )
    assert "from 1 to 10000" in body["message"]
    r = client.post(
        "/overlay",
        json={"layer": lid, "other": "districts", "predicate": "within", "offset": 2**63 + 1},
    )
    _error(r, 400, "InvalidParameterValue")
    # Still an integer up to the bound: an offset past the end is an empty page.
    r = client.get(f"/collections/{lid}/items?offset=9223372036854775807")
    assert r.status_code == 200 and r.json()["numberReturned"] == 0


def test_non_finite_numbers_are_400s(client: TestClient, dept: Dept) -> None:
    lid = make_points_layer(client, dept.editor)
    for url in (
        "/grids/at?lon=nan&lat=nan",
        "/grids/at?lon=inf&lat=39.1",
        "/identify?lon=117.2&lat=-inf",
        "/identify?lon=117.2&lat=39.1&radius=nan",
        "/addresses/reverse?lon=1e400&lat=39.1",
    ):
        body = _error(client.get(url), 400, "InvalidParameterValue")
        assert body["details"]["parameter"] in ("lon", "lat", "radius"), url
    # The box's corners are finite, their images in EPSG:4490 are not, or the old outline
    # (shapely's segmentize of a 1e308-wide box) failed: all were 500s.
    for bbox, bbox_crs in (
        ("1e308,1e308,1e308,1e308", "EPSG:3857"),
        ("0,0,1e308,1e308", "EPSG:4548"),
        ("0,0,1e308,1e308", "BD09"),
        ("-1e308,-1e308,1.7e308,1.7e308", "EPSG:4527"),
    ):
        r = client.get(f"/collections/{lid}/items", params={"bbox": bbox, "bbox-crs": bbox_crs})
        assert r.status_code in (200, 400), (bbox, bbox_crs, r.text)
        if r.status_code == 400:
            assert r.json()["code"] == "TransformFailed"
        else:
            assert r.json()["numberReturned"] == 0
    # Error details that echo a NaN still render as JSON.
    json.dumps(error_body("X", "m", {"lon": float("nan"), "at": [float("inf")]}), allow_nan=False)


# -- spreadsheets and encodings -------------------------------------------------------------------


def _workbook(rows: list[list[Any]], sheet: str = "Sheet1", extra_sheet: bool = False) -> bytes:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet
    for row in rows:
        ws.append(row)
    if extra_sheet:
        book.create_sheet("notes").append(["nothing", "here"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_upload_with_lon_lat(client: TestClient, dept: Dept) -> None:
    content = _workbook(
        [
            ["名称", "经度", "纬度", "床位", "编码"],
            ["医院甲", 117.2, 39.1, 100, "0012"],
            [None, None, None, None, None],  # an empty row is skipped, as in CSV
            ["医院乙", 117.21, 39.11, 30, "0013"],
        ],
        extra_sheet=True,
    )
    lid = layer_id()
    r = upload(client, dept.editor, lid, content, "医院.xlsx", access="public")
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "xlsx" and r.json()["features"] == 2
    assert {p["name"]: p["type"] for p in r.json()["properties"]} == {
        "名称": "string",
        "床位": "integer",
        "编码": "string",
    }
    items = client.get(f"/collections/{lid}/items", params={"sortby": "床位"}).json()["features"]
    assert [f["properties"]["名称"] for f in items] == ["医院乙", "医院甲"]
    assert items[1]["properties"]["编码"] == "0012"
    assert items[1]["geometry"]["coordinates"] == pytest.approx([117.2, 39.1])

    # A named sheet, with format= given for a file whose name says something else.
    r = upload(client, dept.editor, layer_id(), content, "export.dat", format="xlsx", layer="nope")
    assert _error(r, 400, "InvalidParameterValue")["details"]["sheets"] == ["Sheet1", "notes"]
    r = upload(client, dept.editor, layer_id(), content, "export.dat", format="xlsx", layer="notes")
    _error(r, 400, "NoGeometryColumns")


def test_xlsx_address_column_goes_through_the_geocoder(client: TestClient, dept: Dept) -> None:
    content = _workbook([["name", "address"], ["甲", "天津市不存在区无此路99999号"]])
    r = upload(client, dept.editor, layer_id(), content, "addresses.xlsx")
    body = _error(r, 422, "InvalidFeatures")
    assert "不存在区" in body["details"]["errors"][0]["reason"]


def test_xlsx_sent_as_csv_names_the_fix(client: TestClient, dept: Dept) -> None:
    content = _workbook([["lon", "lat"], [117.2, 39.1]])
    for name, params in (("points.csv", {"format": "csv"}), ("points.csv", {}), ("x.zip", {})):
        r = upload(client, dept.editor, layer_id(), content, name, **params)
        body = _error(r, 400, "InvalidFile")
        assert "format=xlsx" in body["message"]
    # The legacy binary format is named too (an OLE compound file's signature).
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504
    r = upload(client, dept.editor, layer_id(), ole, "old.csv")
    assert ".xls" in _error(r, 400, "InvalidFile")["message"]


def test_csv_encodings(client: TestClient, dept: Dept) -> None:
    text = "名称,经度,纬度\n医院甲,117.2,39.1\n"
    for encoded, name in (
        (text.encode("utf-8"), "UTF-8"),
        (b"\xef\xbb\xbf" + text.encode("utf-8"), "UTF-8"),
        (text.encode("gb18030"), "GB18030"),
        (text.encode("utf-16"), "UTF-16"),
    ):
        lid = layer_id()
        r = upload(client, dept.editor, lid, encoded, "h.csv", access="public")
        assert r.status_code == 201, r.text
        assert r.json()["encoding"] == name
        feature = client.get(f"/collections/{lid}/items").json()["features"][0]
        assert feature["properties"] == {"名称": "医院甲"}
    # Neither UTF-8 nor GB18030 (0x80 and 0xFF are not GB18030 lead bytes): a 400, not a 500.
    r = upload(client, dept.editor, layer_id(), b"lon,lat,name\n117.2,39.1,\x80\xff\n", "x.csv")
    _error(r, 400, "InvalidEncoding")


def _zipped_shapefile(folder: Path, encoding: str, cpg: str | None) -> bytes:
    """A real shapefile written by GDAL with Chinese field names and values in ``encoding``;
    its .cpg replaced by ``cpg`` (None: no .cpg, as many Chinese desktop GIS exports)."""
    folder.mkdir()
    pyogrio.raw.write(
        str(folder / "poi.shp"),
        shapely.to_wkb(np.array(shapely.points([117.2, 117.3], [39.1, 39.2]), dtype=object)),
        [np.array(["友谊路", "南京路"], dtype=object), np.array([1, 2])],
        ["名称", "编号"],
        driver="ESRI Shapefile",
        crs="EPSG:4490",
        geometry_type="Point",
        encoding=encoding,
    )
    (folder / "poi.cpg").unlink(missing_ok=True)
    if cpg is not None:
        (folder / "poi.cpg").write_text(cpg)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.iterdir()):
            z.write(p, p.name)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("encoding", "cpg", "detected"),
    [
        ("GBK", None, "GB18030"),  # garbled as Ãû³Æ before
        ("UTF-8", None, "UTF-8"),  # garbled too: GDAL read it as ISO-8859-1
        ("GBK", "936", "GB18030"),
        ("GBK", "ANSI 936", "GB18030"),
    ],
)
def test_shapefile_encodings(
    client: TestClient, dept: Dept, tmp_path: Path, encoding: str, cpg: str | None, detected: str
) -> None:
    lid = layer_id()
    content = _zipped_shapefile(tmp_path / "shp", encoding, cpg)
    r = upload(client, dept.editor, lid, content, "poi.zip", access="public")
    assert r.status_code == 201, r.text
    assert r.json()["encoding"] == detected
    assert [p["name"] for p in r.json()["properties"]] == ["名称", "编号"]
    items = client.get(f"/collections/{lid}/items", params={"sortby": "编号"}).json()["features"]
    assert [f["properties"]["名称"] for f in items] == ["友谊路", "南京路"]


# -- the upload spool -----------------------------------------------------------------------------


def _spooled_uploads(base: Path, pid_prefix: str | None = None) -> list[Path]:
    return [
        p
        for p in base.glob("*/layer-upload-*/upload.geojson")
        if pid_prefix is None or p.parent.parent.name.startswith(pid_prefix)
    ]


def test_a_killed_upload_leaves_nothing_after_the_next_start(
    client: TestClient, dept: Dept
) -> None:
    """kill -9 mid-upload, then start again: the dead worker's spooled copy is swept, while
    the folder of a live process (this one) sharing the data directory is kept."""
    lid = make_points_layer(client, dept.editor, access="public")
    mine = spool.process_folder()
    base = spool.root()
    content = collection(point_features(60_000))  # ~9 MB
    with get_engine().connect() as db:
        table = db.execute(text("SELECT table_name FROM layers WHERE id = :id"), {"id": lid})
        # The upload spools its file, then waits on this lock in the database.
        db.execute(text(f"LOCK TABLE layerdata.{table.scalar_one()} IN ACCESS EXCLUSIVE MODE"))
        with live_server() as srv:
            failures: list[BaseException] = []

            def send() -> None:
                try:
                    httpx.post(
                        f"{srv.base}/collections/{lid}/upload",
                        params={"mode": "append"},
                        files={"file": ("big.geojson", content)},
                        headers=dept.editor,
                        timeout=120,
                    )
                except httpx.HTTPError as exc:
                    failures.append(exc)

            sender = threading.Thread(target=send)
            sender.start()
            deadline = time.monotonic() + 60
            while True:
                left = [p for p in _spooled_uploads(base) if p.stat().st_size == len(content)]
                if left or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert left, "the upload was never spooled under $GEO_DATA_DIR/spool:\n" + srv.log()
            assert not str(left[0]).startswith(str(mine))
            srv.kill9()
            sender.join(timeout=60)
            assert failures, "the upload should have died with its server"
        db.rollback()
    assert left[0].exists(), "kill -9 ran no cleanup: the copy is still there"
    dead_folder = left[0].parent.parent
    with live_server() as srv:
        assert srv.alive()
        assert not dead_folder.exists()
        assert mine.is_dir() and (mine / spool.LOCK_NAME).exists()
        # The new server's uploads go through the spool and are removed when done.
        r = httpx.post(
            f"{srv.base}/collections/{lid}/upload",
            params={"mode": "append"},
            files={"file": ("small.geojson", collection(point_features(3)))},
            headers=dept.editor,
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert _spooled_uploads(base) == []
    assert os.path.isdir(mine)

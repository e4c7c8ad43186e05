"""Uploads: every format, every mode, and the Bad input list of issue 4 (each rejected with a
4xx naming the problem, nothing written)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import orjson
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import crs
from geo.db import session_scope
from geo.settings import get_settings
from tests.layers_helpers import (
    CENTER,
    collection,
    layer_id,
    mercator_mismatches,
    point_features,
    square,
    upload,
)


def _count(lid: str) -> int | None:
    with session_scope() as s:
        if (
            s.execute(text("SELECT to_regclass(:t)"), {"t": f'layerdata."l_{lid}"'}).scalar()
            is None
        ):
            return None
        return int(s.execute(text(f'SELECT count(*) FROM layerdata."l_{lid}"')).scalar_one())


@pytest.fixture(scope="module")
def dept(make_department):
    return make_department()


def test_geojson_create_infers_schema(client: TestClient, dept) -> None:
    lid = layer_id()
    feats = point_features(30)
    feats[3]["properties"]["pop"] = 2.5  # widens integer -> number
    feats[5]["properties"]["extra"] = "only here"
    feats[7]["properties"]["id"] = "x"  # a system column name: renamed
    r = upload(client, dept.editor, lid, collection(feats), access="public")
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["features"] == 30 and report["geometry_type"] == "Point"
    types = {p["name"]: p["type"] for p in report["properties"]}
    assert types == {
        "name": "string",
        "pop": "number",
        "score": "number",
        "extra": "string",
        "id_": "string",
    }
    assert report["renamed"] == {"id": "id_"}
    assert _count(lid) == 30
    items = client.get(f"/collections/{lid}/items", params={"limit": 100}).json()
    assert items["numberMatched"] == 30
    assert items["features"][0]["geometry"]["coordinates"] == pytest.approx(list(CENTER))


def test_byte_order_mark_from_windows_tools(client: TestClient, dept) -> None:
    bom = b"\xef\xbb\xbf"
    lid = layer_id()
    r = upload(client, dept.editor, lid, bom + collection(point_features(3)))
    assert r.status_code == 201, r.text
    lines = b"\n".join(orjson.dumps(f) for f in point_features(2, start=3))
    r = upload(client, dept.editor, lid, bom + lines, filename="more.ndjson", mode="append")
    assert r.status_code == 200, r.text
    assert _count(lid) == 5


def test_ndjson_append_and_gcj02_input(client: TestClient, dept) -> None:
    lid = layer_id()
    assert upload(client, dept.editor, lid, collection(point_features(5))).status_code == 201
    gcj = point_features(4, start=100)
    for f in gcj:
        x, y = f["geometry"]["coordinates"]
        gx, gy = crs.transform_xy([x], [y], "EPSG:4490", "GCJ02")
        f["geometry"]["coordinates"] = [float(gx[0]), float(gy[0])]
    body = b"\n".join(orjson.dumps(f) for f in gcj) + b"\n"
    r = upload(client, dept.editor, lid, body, "more.ndjson", mode="append", crs="GCJ02")
    assert r.status_code == 200, r.text
    assert r.json()["features"] == 4 and _count(lid) == 9
    with session_scope() as s:
        x, y = s.execute(
            text(f'SELECT ST_X(geom), ST_Y(geom) FROM layerdata."l_{lid}" WHERE name = :n'),
            {"n": "p100"},
        ).one()
    expected = point_features(1, start=100)[0]["geometry"]["coordinates"]
    assert x == pytest.approx(expected[0], abs=1e-7) and y == pytest.approx(expected[1], abs=1e-7)


def test_geopackage_and_zipped_shapefile(client: TestClient, dept, tmp_path: Path) -> None:
    geoms = shapely.points(np.array([[117.2 + i * 0.01, 39.1] for i in range(12)]))
    wkb = shapely.to_wkb(geoms)
    fields = [np.array([f"站{i}" for i in range(12)], dtype=object), np.arange(12, dtype="int64")]
    gpkg = tmp_path / "police.gpkg"
    pyogrio.raw.write(
        str(gpkg),
        wkb,
        fields,
        ["name", "officers"],
        driver="GPKG",
        crs="EPSG:4490",
        geometry_type="Point",
    )
    lid = layer_id()
    r = upload(client, dept.editor, lid, gpkg.read_bytes(), "police.gpkg")
    assert r.status_code == 201, r.text
    assert r.json()["crs"] == "EPSG:4490" and r.json()["features"] == 12
    assert {p["name"]: p["type"] for p in r.json()["properties"]} == {
        "name": "string",
        "officers": "integer",
    }

    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    # Gauss-Kruger CM 117E (EPSG:4548) metres: the file's .prj says so, the service converts.
    x, y = crs.transform_xy([117.2, 117.3], [39.1, 39.2], "EPSG:4490", "EPSG:4548")
    pyogrio.raw.write(
        str(shp_dir / "roads.shp"),
        shapely.to_wkb(np.array([shapely.linestrings(np.column_stack([x, y]))], dtype=object)),
        [np.array(["主路"], dtype=object)],
        ["name"],
        driver="ESRI Shapefile",
        crs="EPSG:4548",
        geometry_type="LineString",
        encoding="UTF-8",
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for p in shp_dir.iterdir():
            z.write(p, p.name)
    lid2 = layer_id()
    r = upload(client, dept.editor, lid2, buffer.getvalue(), "roads.zip", access="public")
    assert r.status_code == 201, r.text
    assert r.json()["crs"] == "EPSG:4548" and r.json()["geometry_type"] == "LineString"
    feature = client.get(f"/collections/{lid2}/items").json()["features"][0]
    assert feature["properties"]["name"] == "主路"
    assert feature["geometry"]["coordinates"][0] == pytest.approx([117.2, 39.1], abs=1e-7)


def test_csv_lon_lat(client: TestClient, dept) -> None:
    lid = layer_id()
    text_csv = (
        "名称,经度,纬度,床位\n医院A,117.2,39.1,100\n医院B,117.21,39.11,\n医院C,117.22,39.12,30\n"
    )
    r = upload(client, dept.editor, lid, text_csv.encode("gb18030"), "hospitals.csv")
    assert r.status_code == 201, r.text
    assert {p["name"]: p["type"] for p in r.json()["properties"]} == {
        "名称": "string",
        "床位": "integer",
    }
    assert _count(lid) == 3
    bad = "name,lon,lat\na,117.2,39.1\nb,not-a-number,39.1\n"
    r = upload(client, dept.editor, layer_id(), bad.encode(), "bad.csv")
    assert r.status_code == 422
    assert r.json()["details"]["errors"][0]["index"] == 1


def test_csv_address_column_is_geocoded(client: TestClient, dept) -> None:
    lid = layer_id()
    body = "name,address\n甲,天津市不存在区无此路99999号\n"
    r = upload(client, dept.editor, lid, body.encode(), "addr.csv")
    # An address the library cannot match confidently is reported, never guessed.
    assert r.status_code == 422, r.text
    assert "address" in r.json()["details"]["errors"][0]["reason"]
    assert _count(lid) is None


def _gist_indexes(s: Session, lid: str) -> list[str]:
    """The columns of layer ``lid``'s live table indexed by GiST, one entry per index."""
    return sorted(
        s.execute(
            text(
                "SELECT a.attname FROM pg_index i "
                "JOIN pg_class ix ON ix.oid = i.indexrelid JOIN pg_am am ON am.oid = ix.relam "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                "WHERE i.indrelid = to_regclass(:t) AND am.amname = 'gist'"
            ),
            {"t": f'layerdata."l_{lid}"'},
        ).scalars()
    )


def test_replace_is_atomic_swap_with_history(client: TestClient, dept) -> None:
    lid = layer_id()
    assert upload(client, dept.editor, lid, collection(point_features(5))).status_code == 201
    r = upload(client, dept.editor, lid, collection(point_features(3, start=50)), mode="replace")
    assert r.status_code == 200, r.text
    assert r.json()["archived"] == 5
    with session_scope() as s:
        ids = s.execute(text(f'SELECT id FROM layerdata."l_{lid}" ORDER BY id')).scalars().all()
        hist = s.execute(
            text(f"SELECT count(*) FROM layerdata.\"l_{lid}__history\" WHERE action = 'replace'")
        ).scalar()
        gist = _gist_indexes(s, lid)
    assert ids == [6, 7, 8] and hist == 5 and gist == ["geom", "geom_3857"]


def test_upsert_by_key(client: TestClient, dept) -> None:
    lid = layer_id()
    assert (
        upload(
            client, dept.editor, lid, collection(point_features(4)), key_property="name"
        ).status_code
        == 201
    )
    changed = point_features(2, start=3)
    changed[0]["properties"]["pop"] = 99
    r = upload(client, dept.editor, lid, collection(changed), mode="upsert")
    assert r.status_code == 200, r.text
    assert (r.json()["updated"], r.json()["inserted"]) == (1, 1)
    with session_scope() as s:
        row = s.execute(
            text(f"SELECT pop, version FROM layerdata.\"l_{lid}\" WHERE name = 'p3'")
        ).one()
    assert tuple(row) == (99, 2)
    dup = collection(point_features(1) + point_features(1))
    r = upload(client, dept.editor, lid, dup, mode="upsert")
    assert r.status_code == 422 and r.json()["code"] == "DuplicateKeys"


# -- bad input -----------------------------------------------------------------------------------


def test_malformed_json(client: TestClient, dept) -> None:
    lid = layer_id()
    r = upload(client, dept.editor, lid, b'{"type":"FeatureCollection","features":[{"type":')
    assert r.status_code == 400 and r.json()["code"] == "MalformedJSON"
    assert _count(lid) is None


def test_one_bad_geometry_among_10000_rejects_the_file(client: TestClient, dept) -> None:
    lid = layer_id()
    feats = point_features(10_000, step=0.00001)
    feats[7321]["geometry"] = {"type": "Point", "coordinates": ["117.2", 39.1]}
    r = upload(client, dept.editor, lid, collection(feats))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["details"]["count"] == 1 and body["details"]["total"] == 10_000
    assert body["details"]["errors"][0]["index"] == 7321
    assert _count(lid) is None
    # Also for an existing layer: nothing appended.
    assert upload(client, dept.editor, lid, collection(point_features(3))).status_code == 201
    feats[7321]["geometry"] = {"type": "Polygon", "coordinates": [[[117.2, 39.1], [117.3, 39.1]]]}
    r = upload(client, dept.editor, lid, collection(feats), mode="append")
    assert r.status_code == 422 and r.json()["details"]["errors"][0]["index"] == 7321
    assert _count(lid) == 3


def test_mixed_geometry_types(client: TestClient, dept) -> None:
    lid = layer_id()
    feats = point_features(3)
    feats[2]["geometry"] = square(117.2, 39.1)
    r = upload(client, dept.editor, lid, collection(feats))
    assert r.status_code == 422
    assert "mixed geometry types" in r.json()["details"]["errors"][0]["reason"]
    assert r.json()["details"]["errors"][0]["index"] == 2
    assert _count(lid) is None


def test_self_intersecting_polygon_rejected_or_repaired(client: TestClient, dept) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[117.2, 39.1], [117.3, 39.2], [117.3, 39.1], [117.2, 39.2], [117.2, 39.1]]
        ],
    }
    feats = [
        {"type": "Feature", "geometry": square(117.1, 39.0), "properties": {"n": 1}},
        {"type": "Feature", "geometry": bowtie, "properties": {"n": 2}},
    ]
    lid = layer_id()
    r = upload(client, dept.editor, lid, collection(feats))
    assert r.status_code == 422
    err = r.json()["details"]["errors"][0]
    assert err["index"] == 1 and "Self-intersection" in err["reason"]
    assert _count(lid) is None
    r = upload(client, dept.editor, lid, collection(feats), make_valid="true")
    assert r.status_code == 201, r.text
    assert r.json()["repaired"] == 1 and r.json()["geometry_type"] == "MultiPolygon"
    with session_scope() as s:
        assert s.execute(
            text(f'SELECT bool_and(ST_IsValid(geom)) FROM layerdata."l_{lid}"')
        ).scalar()


def test_swapped_coordinates_outside_city(client: TestClient, dept) -> None:
    feats = point_features(2)
    feats[1]["geometry"]["coordinates"] = [39.1, 117.2]
    lid = layer_id()
    r = upload(client, dept.editor, lid, collection(feats))
    assert r.status_code == 422
    assert "swapped" in r.json()["details"]["errors"][0]["reason"]
    assert _count(lid) is None


def test_unknown_crs(client: TestClient, dept) -> None:
    lid = layer_id()
    r = upload(client, dept.editor, lid, collection(point_features(2)), crs="EPSG:999999")
    assert r.status_code == 400 and r.json()["code"] == "UnknownCRS"
    assert _count(lid) is None


def test_property_of_wrong_type(client: TestClient, dept) -> None:
    lid = layer_id()
    meta = {
        "properties": [
            {"name": "name", "type": "string"},
            {"name": "pop", "type": "integer"},
            {"name": "score", "type": "number"},
        ]
    }
    feats = point_features(3)
    feats[1]["properties"]["pop"] = "many"
    r = upload(client, dept.editor, lid, collection(feats), metadata=meta)
    assert r.status_code == 422
    err = r.json()["details"]["errors"][0]
    assert err["index"] == 1 and "pop" in err["reason"] and "integer" in err["reason"]
    assert _count(lid) is None


def test_zip_bomb(client: TestClient, dept) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.shp", b"\0" * (50 * 1024 * 1024))
        z.writestr("bomb.shx", b"")
        z.writestr("bomb.dbf", b"")
    assert len(buffer.getvalue()) < 1024 * 1024
    lid = layer_id()
    r = upload(client, dept.editor, lid, buffer.getvalue(), "bomb.zip")
    assert r.status_code in (400, 413) and r.json()["code"] == "ZipBomb"
    assert _count(lid) is None


def test_shapefile_missing_dbf(client: TestClient, dept, tmp_path: Path) -> None:
    pyogrio.raw.write(
        str(tmp_path / "a.shp"),
        shapely.to_wkb(np.array([shapely.Point(117.2, 39.1)], dtype=object)),
        [np.array([1])],
        ["n"],
        driver="ESRI Shapefile",
        crs="EPSG:4490",
        geometry_type="Point",
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for suffix in (".shp", ".shx", ".prj"):
            z.write(tmp_path / f"a{suffix}", f"a{suffix}")
    lid = layer_id()
    r = upload(client, dept.editor, lid, buffer.getvalue(), "a.zip")
    assert r.status_code == 400 and r.json()["code"] == "IncompleteShapefile"
    assert "a.dbf" in r.json()["message"]


def test_deeply_nested_json(client: TestClient, dept) -> None:
    deep = (
        b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"a":'
        + b"[" * 5000
        + b"]" * 5000
        + b'},"geometry":null}]}'
    )
    lid = layer_id()
    r = upload(client, dept.editor, lid, deep)
    assert r.status_code == 400 and r.json()["code"] == "TooDeep"
    nd = orjson.dumps(
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [117.2, 39.1]},
            "properties": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        }
    )
    r = upload(client, dept.editor, lid, nd, "x.ndjson")
    assert r.status_code == 422 and "nested" in r.json()["details"]["errors"][0]["reason"]


def test_oversized_file_and_too_many_features(client: TestClient, dept, monkeypatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "max_upload_bytes", 2000)
    lid = layer_id()
    r = upload(client, dept.editor, lid, collection(point_features(100)))
    assert r.status_code == 413 and r.json()["code"] == "PayloadTooLarge"
    monkeypatch.setattr(settings, "max_upload_bytes", 10**9)
    monkeypatch.setattr(settings, "max_features", 10)
    r = upload(client, dept.editor, lid, collection(point_features(11)))
    assert r.status_code == 413 and r.json()["code"] == "TooManyFeatures"
    assert _count(lid) is None


def test_other_departments_private_layer_upload(client: TestClient, dept, make_department) -> None:
    other = make_department()
    lid = layer_id()
    assert upload(client, other.editor, lid, collection(point_features(2))).status_code == 201
    for mode in ("append", "replace", "upsert"):
        r = upload(
            client, dept.editor, lid, collection(point_features(2)), mode=mode, key_property="name"
        )
        assert r.status_code == 404, r.text
    r = upload(client, dept.editor, lid, collection(point_features(2)))
    assert r.status_code == 409  # ids are global; the 409 names no owner
    assert _count(lid) == 2
    assert upload(client, dept.viewer, layer_id(), collection(point_features(2))).status_code == 403
    assert upload(client, {}, layer_id(), collection(point_features(2))).status_code == 401


def test_unsupported_format_and_bad_csv(client: TestClient, dept) -> None:
    r = upload(client, dept.editor, layer_id(), b"hello", "notes.docx")
    assert r.status_code == 415
    rows = io.StringIO()
    csv.writer(rows).writerows([["name", "where"], ["a", "b"]])
    r = upload(client, dept.editor, layer_id(), rows.getvalue().encode(), "x.csv")
    assert r.status_code == 400 and r.json()["code"] == "NoGeometryColumns"
    # Found while fuzzing: a field over the csv module's 128 KiB limit was a 500.
    huge = f"lon,lat,name\n117.2,39.1,{'y' * 200_000}\n".encode()
    r = upload(client, dept.editor, layer_id(), huge, "x.csv", lon_column="lon", lat_column="lat")
    assert r.status_code == 400 and r.json()["code"] == "InvalidFile", r.text


def test_big_layers_are_stored_in_spatial_order(client: TestClient, dept, monkeypatch) -> None:
    from layers.ingest import target

    monkeypatch.setattr(target, "SPATIAL_ORDER_MIN_FEATURES", 10)
    feats = point_features(40)
    feats.reverse()  # uploaded east to west: spatial order is the reverse of the file's
    lid = layer_id()
    assert upload(client, dept.editor, lid, collection(feats)).status_code == 201
    with session_scope() as s:
        rows = s.execute(
            text(f'SELECT id, name, ST_X(geom) FROM layerdata."l_{lid}" ORDER BY ctid')
        ).all()
        gist = _gist_indexes(s, lid)
    xs = [r[2] for r in rows]
    assert xs == sorted(xs) and gist == ["geom", "geom_3857"]
    assert {r[1]: r[0] for r in rows}["p39"] == 1  # ids kept from the upload order
    r = upload(client, dept.editor, lid, collection(point_features(12)), mode="replace")
    assert r.status_code == 200, r.text
    with session_scope() as s:
        ids = s.execute(text(f'SELECT id FROM layerdata."l_{lid}" ORDER BY id')).scalars().all()
    assert ids == list(range(41, 53))
    r = client.post(
        f"/collections/{lid}/items",
        json={
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [117.3, 39.2]},
            "properties": {"name": "new"},
        },
        headers=dept.editor,
    )
    assert r.status_code == 201 and r.json()["id"] == 53


def _mercator_disagrees(lid: str) -> tuple[int, int]:
    with session_scope() as s:
        return mercator_mismatches(s, f"l_{lid}")


def test_web_mercator_copy_follows_every_write(client: TestClient, dept, monkeypatch) -> None:
    """layers.storage.MERCATOR_COLUMN, which tiles read: create, a promotion to multi-part
    geometry, append, upsert, replace and single-feature edits all keep it equal to the stored
    geometry transformed."""
    from layers.ingest import json_readers

    # Two features a batch: the multi-part polygon arrives after the first batch was stored as
    # Polygons, so the column is promoted (layers.storage.promote_geometry) mid-upload.
    monkeypatch.setattr(json_readers, "BATCH", 2)
    lid = layer_id()
    polygons = [
        {"type": "Feature", "geometry": square(117.2 + i / 100, 39.1), "properties": {"k": i}}
        for i in range(3)
    ]
    multi = {
        "type": "Feature",
        "geometry": {"type": "MultiPolygon", "coordinates": [square(117.3, 39.2)["coordinates"]]},
        "properties": {"k": 3},
    }
    r = upload(client, dept.editor, lid, collection([*polygons, multi]), key_property="k")
    assert r.status_code == 201, r.text
    assert r.json()["geometry_type"] == "MultiPolygon"
    assert _mercator_disagrees(lid) == (4, 0)
    extra = {**multi, "properties": {"k": 4}}
    r = upload(client, dept.editor, lid, collection([extra]), mode="append")
    assert r.status_code == 200, r.text
    assert _mercator_disagrees(lid) == (5, 0)
    moved = {**polygons[0], "geometry": square(117.25, 39.15)}
    r = upload(client, dept.editor, lid, collection([moved]), mode="upsert", key_property="k")
    assert r.status_code == 200, r.text
    assert _mercator_disagrees(lid) == (5, 0)
    with session_scope() as s:
        fid = s.execute(text(f'SELECT id FROM layerdata."l_{lid}" WHERE k = 1')).scalar_one()
    r = client.put(
        f"/collections/{lid}/items/{fid}",
        json={"type": "Feature", "geometry": square(117.4, 39.3), "properties": {"k": 1}},
        headers={**dept.editor, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    with session_scope() as s:
        x = s.execute(
            text(f'SELECT ST_XMin(geom_3857) FROM layerdata."l_{lid}" WHERE id = :f'), {"f": fid}
        ).scalar_one()
    assert x == pytest.approx(117.4 * 20037508.342789244 / 180)
    assert _mercator_disagrees(lid) == (5, 0)
    r = upload(client, dept.editor, lid, collection(polygons[:2]), mode="replace")
    assert r.status_code == 200, r.text
    assert _mercator_disagrees(lid) == (2, 0)
    with session_scope() as s:
        assert _gist_indexes(s, lid) == ["geom", "geom_3857"]

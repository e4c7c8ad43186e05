"""The upload preview (POST /collections/{id}/upload/preview): the same reading and checks as the
upload, nothing written, and an answer that is what the upload then stores."""

from __future__ import annotations

import functools
import io
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from shapely.geometry import shape
from sqlalchemy import text

from geo import crs
from geo.db import session_scope
from geo.settings import get_settings
from layers.ingest import json_readers
from tests.layers_helpers import collection, layer_id, point_features, upload
from tests.live_server import live_server


@pytest.fixture(scope="module")
def dept(make_department):
    return make_department()


preview = functools.partial(upload, endpoint="upload/preview")


def written() -> dict[str, Any]:
    """Everything an upload writes: layer tables, catalogue rows, versions, audit entries."""
    with session_scope() as s:
        return {
            name: s.execute(text(sql)).scalar_one()
            for name, sql in {
                "tables": "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = 'layerdata'",
                "layers": "SELECT count(*) FROM layers",
                "versions": "SELECT coalesce(sum(version), 0) FROM data_versions",
                "audit": "SELECT count(*) FROM audit_log",
            }.items()
        }


def items(client: TestClient, headers: dict[str, str], lid: str) -> list[dict[str, Any]]:
    page = client.get(f"/collections/{lid}/items", params={"limit": 1000}, headers=headers)
    assert page.status_code == 200, page.text
    return list(page.json()["features"])


def assert_same_features(shown: list[dict[str, Any]], stored: list[dict[str, Any]]) -> None:
    assert len(shown) == len(stored)
    for a, b in zip(shown, stored, strict=True):
        assert a["properties"] == b["properties"]
        assert a["geometry"]["type"] == b["geometry"]["type"]
        assert shape(a["geometry"]).equals_exact(shape(b["geometry"]), 1e-8), (a, b)


def points_xlsx(bad_row: bool) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["名称", "lon", "lat"])
    sheet.append(["和平路站", 117.20, 39.12])
    sheet.append(["南京路站", "经度错误" if bad_row else 117.21, 39.125])
    sheet.append(["滨江道站", 117.19, 39.118])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_preview_writes_nothing_and_is_what_the_upload_stores(client: TestClient, dept) -> None:
    lid = layer_id()
    feats = point_features(30)
    feats[3]["properties"]["pop"] = 2.5  # widens integer -> number
    feats[7]["properties"]["id"] = "x"  # a system column name: renamed
    body = collection(feats)
    before = written()
    r = preview(client, dept.editor, lid, body, metadata={"title": "站点"}, limit=20)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert written() == before
    assert client.get(f"/collections/{lid}", headers=dept.editor).status_code == 404
    assert shown["committable"] is True and shown["invalid"] == {
        "count": 0,
        "total": 30,
        "errors": [],
    }
    assert shown["features"] == shown["total"] == 30
    assert len(shown["first_features"]["features"]) == 20
    xs = [f["geometry"]["coordinates"][0] for f in feats]
    ys = [f["geometry"]["coordinates"][1] for f in feats]
    assert shown["bbox"] == pytest.approx([min(xs), min(ys), max(xs), max(ys)], abs=1e-8)

    r = upload(client, dept.editor, lid, body, metadata={"title": "站点"})
    assert r.status_code == 201, r.text
    report = r.json()
    for key in ("features", "geometry_type", "properties", "renamed", "format", "crs"):
        assert shown[key] == report[key], key
    assert_same_features(shown["first_features"]["features"], items(client, dept.editor, lid)[:20])


def test_a_schema_widened_after_the_first_features(client: TestClient, dept, monkeypatch) -> None:
    """Batches of 5: the second batch turns `pop` into text and the points into MultiPoints,
    after the first five were kept as integers and Points; the preview shows them as stored."""
    monkeypatch.setattr(json_readers, "BATCH", 5)
    feats = point_features(8)
    for f, word in zip(feats[5:], ("many", "few", "none"), strict=True):
        f["properties"]["pop"] = word
    feats[6]["properties"]["late"] = True
    feats[5]["geometry"] = {"type": "MultiPoint", "coordinates": [[117.3, 39.2], [117.31, 39.2]]}
    lid = layer_id()
    shown = preview(client, dept.editor, lid, collection(feats)).json()
    assert shown["committable"] and shown["geometry_type"] == "MultiPoint"
    assert {p["name"]: p["type"] for p in shown["properties"]}["pop"] == "string"
    assert upload(client, dept.editor, lid, collection(feats)).status_code == 201
    stored = items(client, dept.editor, lid)
    assert stored[0]["properties"]["pop"] == "0" and stored[0]["properties"]["late"] is None
    assert_same_features(shown["first_features"]["features"], stored)


def test_gcj02_lands_where_the_upload_puts_it(client: TestClient, dept) -> None:
    truth = point_features(4, start=100)
    gcj = orjson.loads(orjson.dumps(truth))
    for f in gcj:
        x, y = f["geometry"]["coordinates"]
        gx, gy = crs.transform_xy([x], [y], "EPSG:4490", "GCJ02")
        f["geometry"]["coordinates"] = [float(gx[0]), float(gy[0])]
    body = b"\n".join(orjson.dumps(f) for f in gcj) + b"\n"
    lid = layer_id()
    shown = preview(client, dept.editor, lid, body, "shops.ndjson", crs="GCJ02").json()
    assert shown["crs"] == "GCJ02"
    first = shown["first_features"]["features"]
    for f, t in zip(first, truth, strict=True):  # moved back by GCJ-02's ~500 m offset
        assert f["geometry"]["coordinates"] == pytest.approx(t["geometry"]["coordinates"], abs=1e-6)
    r = upload(client, dept.editor, lid, body, "shops.ndjson", crs="GCJ02")
    assert r.status_code == 201, r.text
    assert_same_features(first, items(client, dept.editor, lid))


def test_invalid_features_are_reported_not_refused(client: TestClient, dept) -> None:
    """A bad row: the preview answers with the 422's report and the good features, the upload
    refuses the file with that same report."""
    lid = layer_id()
    before = written()
    r = preview(client, dept.editor, lid, points_xlsx(bad_row=True), "stops.xlsx")
    assert r.status_code == 200, r.text
    shown = r.json()
    assert written() == before
    refused = upload(client, dept.editor, lid, points_xlsx(bad_row=True), "stops.xlsx")
    assert refused.status_code == 422 and refused.json()["code"] == "InvalidFeatures"
    assert shown["invalid"] == refused.json()["details"]
    assert shown["invalid"]["errors"][0]["index"] == 1 and shown["committable"] is False
    assert shown["features"] == 2 and shown["total"] == 3
    names = [f["properties"]["名称"] for f in shown["first_features"]["features"]]
    assert names == ["和平路站", "滨江道站"]
    fixed = preview(client, dept.editor, lid, points_xlsx(bad_row=False), "stops.xlsx").json()
    assert fixed["committable"] is True and fixed["features"] == 3
    committed = upload(client, dept.editor, lid, points_xlsx(bad_row=False), "stops.xlsx")
    assert committed.status_code == 201, committed.text
    assert_same_features(fixed["first_features"]["features"], items(client, dept.editor, lid))


def test_an_append_is_checked_against_the_layer(client: TestClient, dept) -> None:
    lid = layer_id()
    assert upload(client, dept.editor, lid, collection(point_features(3))).status_code == 201
    more = point_features(3, start=10)
    more[0]["properties"]["pop"] = "seven"  # the layer's pop is an integer
    more[2]["properties"]["colour"] = "red"  # not in the layer's schema
    before = written()
    shown = preview(client, dept.editor, lid, collection(more), mode="append").json()
    assert written() == before
    refused = upload(client, dept.editor, lid, collection(more), mode="append")
    assert refused.status_code == 422
    assert shown["invalid"] == refused.json()["details"]
    reasons = [e["reason"] for e in shown["invalid"]["errors"]]
    assert "integer" in reasons[0] and "not in the layer schema" in reasons[1]
    assert [p["name"] for p in shown["properties"]] == ["name", "pop", "score"]
    # The same schema types the values: a number file value in an integer column stays whole.
    good = point_features(2, start=20)
    shown = preview(client, dept.editor, lid, collection(good), mode="append").json()
    assert shown["committable"] and shown["features"] == 2
    assert upload(client, dept.editor, lid, collection(good), mode="append").status_code == 200
    assert_same_features(shown["first_features"]["features"], items(client, dept.editor, lid)[3:])


def test_replace_and_upsert_say_what_they_would_change(client: TestClient, dept) -> None:
    lid = layer_id()
    first = upload(client, dept.editor, lid, collection(point_features(4)), key_property="name")
    assert first.status_code == 201
    changed = point_features(3, start=2)  # p2, p3 are in the layer; p4 is new
    before = written()
    shown = preview(client, dept.editor, lid, collection(changed), mode="upsert").json()
    assert (shown["updated"], shown["inserted"]) == (2, 1)
    shown_replace = preview(client, dept.editor, lid, collection(changed), mode="replace").json()
    assert shown_replace["archived"] == 4
    dup = collection(point_features(1) + point_features(1))
    r = preview(client, dept.editor, lid, dup, mode="upsert")
    assert r.status_code == 422 and r.json()["code"] == "DuplicateKeys"
    assert written() == before
    r = upload(client, dept.editor, lid, collection(changed), mode="upsert")
    assert (r.json()["updated"], r.json()["inserted"]) == (2, 1)
    r = upload(client, dept.editor, lid, collection(changed), mode="replace")
    assert r.json()["archived"] == 5


def _cases(tmp: Path) -> list[tuple[str, bytes, str, dict[str, Any]]]:
    return [
        ("unsupported", b"%PDF-1.4", "report.pdf", {}),
        ("empty", b"", "empty.geojson", {}),
        ("malformed", b'{"type": "FeatureCollection", "features": [', "x.geojson", {}),
        ("no geometry columns", "名称,备注\n和平路站,无坐标\n".encode(), "notes.csv", {}),
        ("no features", collection([]), "none.geojson", {}),
        ("bad crs", collection(point_features(1)), "x.geojson", {"crs": "EPSG:99999"}),
        ("bad mode", collection(point_features(1)), "x.geojson", {"mode": "merge"}),
        ("not a zip", b"PK\x03\x04 broken", "x.zip", {}),
    ]


def test_bad_files_get_the_uploads_4xx(client: TestClient, dept, tmp_path: Path) -> None:
    before = written()
    for label, content, name, params in _cases(tmp_path):
        lid = layer_id()
        shown = preview(client, dept.editor, lid, content, name, **params)
        refused = upload(client, dept.editor, lid, content, name, **params)
        assert 400 <= refused.status_code < 500, (label, refused.text)
        assert (shown.status_code, shown.json()["code"]) == (
            refused.status_code,
            refused.json()["code"],
        ), label
    assert written() == before


def test_who_may_preview_and_limits(client: TestClient, dept, make_department, monkeypatch) -> None:
    other = make_department()
    theirs = layer_id()
    assert upload(client, other.editor, theirs, collection(point_features(2))).status_code == 201
    body = collection(point_features(2))
    checks = [
        (dept.editor, theirs, {"mode": "append"}, 404),  # another department's private layer
        (dept.editor, theirs, {}, 409),  # ids are global
        (dept.viewer, layer_id(), {}, 403),
        ({}, layer_id(), {}, 401),
        (dept.editor, "districts", {"mode": "append"}, 405),
        (dept.editor, layer_id(), {"limit": 0}, 400),
        (dept.editor, layer_id(), {"limit": 1001}, 400),
    ]
    for headers, lid, params, status in checks:
        assert preview(client, headers, lid, body, **params).status_code == status, (lid, params)
    settings = get_settings()
    monkeypatch.setattr(settings, "max_features", 10)
    r = preview(client, dept.editor, layer_id(), collection(point_features(11)))
    assert r.status_code == 413 and r.json()["code"] == "TooManyFeatures"
    monkeypatch.setattr(settings, "max_upload_bytes", 2000)
    r = preview(client, dept.editor, layer_id(), collection(point_features(100)))
    assert r.status_code == 413 and r.json()["code"] == "PayloadTooLarge"


def test_progress_as_ndjson(client: TestClient, dept, monkeypatch) -> None:
    """Asked for NDJSON, the preview says how far it got after each batch, then the outcome the
    JSON answer holds; errors found while reading are the last line, with their status."""
    monkeypatch.setattr(json_readers, "BATCH", 5)
    lid = layer_id()
    body = collection(point_features(12))
    plain = preview(client, dept.editor, lid, body).json()
    streamed = client.post(
        f"/collections/{lid}/upload/preview",
        files={"file": ("data.geojson", body)},
        headers={**dept.editor, "Accept": "application/x-ndjson"},
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"] == "application/x-ndjson"
    assert streamed.headers["x-accel-buffering"] == "no"
    lines = [orjson.loads(line) for line in streamed.content.splitlines()]
    assert lines[:-1] == [{"read": 5}, {"read": 10}, {"read": 12}]
    assert lines[-1] == {"status": 200, "result": plain}
    assert upload(client, dept.editor, lid, body).status_code == 201
    again = client.post(
        f"/collections/{lid}/upload/preview",
        files={"file": ("data.geojson", body)},
        headers={**dept.editor, "Accept": "application/x-ndjson"},
    )
    last = orjson.loads(again.content.splitlines()[-1])
    assert last["status"] == 409 and last["error"]["code"] == "Conflict"
    monkeypatch.setattr(get_settings(), "max_upload_bytes", 200)
    too_big = client.post(
        f"/collections/{layer_id()}/upload/preview",
        files={"file": ("data.geojson", body)},
        headers={**dept.editor, "Accept": "application/x-ndjson"},
    )
    assert too_big.status_code == 413  # before any reading: a plain 413


def test_progress_lines_arrive_while_the_file_is_read(database_url: str, dept) -> None:
    """Through a real server: each batch's line is sent when the batch is done, not held back
    until the end (30,000 points: three batches of 10,000)."""
    body = collection(point_features(30_000, step=0.00001))
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with (
        live_server() as running,
        httpx.stream(
            "POST",
            f"{running.base}/collections/{layer_id()}/upload/preview",
            files={"file": ("many.geojson", body)},
            headers={**dept.editor, "Accept": "application/x-ndjson"},
            timeout=120,
        ) as r,
    ):
        assert r.status_code == 200
        for line in r.iter_lines():
            arrivals.append((time.perf_counter(), orjson.loads(line)))
    reads = [(at, line["read"]) for at, line in arrivals if "read" in line]
    assert [n for _, n in reads] == [10_000, 20_000, 30_000]
    end, outcome = arrivals[-1]
    assert outcome["status"] == 200 and outcome["result"]["features"] == 30_000
    assert end - reads[0][0] > 0.05, arrivals  # the first batch was told before the others


def test_an_upload_tells_its_progress_and_answers_once_committed(
    client: TestClient, dept, monkeypatch
) -> None:
    monkeypatch.setattr(json_readers, "BATCH", 5)
    ndjson = {**dept.editor, "Accept": "application/x-ndjson"}
    lid = layer_id()
    before = written()
    bad = point_features(12)
    bad[7]["geometry"] = None
    r = client.post(
        f"/collections/{lid}/upload", files={"file": ("d.geojson", collection(bad))}, headers=ndjson
    )
    last = orjson.loads(r.content.splitlines()[-1])
    assert last["status"] == 422 and last["error"]["details"]["errors"][0]["index"] == 7
    assert written() == before
    r = client.post(
        f"/collections/{lid}/upload",
        files={"file": ("d.geojson", collection(point_features(12)))},
        headers=ndjson,
    )
    lines = [orjson.loads(line) for line in r.content.splitlines()]
    assert lines[:-1] == [{"read": 5}, {"read": 10}, {"read": 12}]
    assert lines[-1]["status"] == 201 and lines[-1]["result"]["features"] == 12
    # Told once committed: the layer is there for the next request.
    assert len(items(client, dept.editor, lid)) == 12

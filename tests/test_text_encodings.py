"""Every reader of uploaded text files takes UTF-8, UTF-8 with a BOM, GB18030 (what Excel on
Chinese Windows writes, here with a character outside GBK that GB18030 encodes in 4 bytes) and
UTF-16 with its BOM, through geo.text_files, and reads the same rows from each; bytes that are
none of them are a 400 InvalidEncoding with nothing written."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from addressbook.areas.import_areas import DIVISIONS, read_divisions
from addressbook.ingest import demo
from addressbook.places.read import read_places
from addressbook.quality.table import open_table
from geo.db import session_scope
from geo.errors import ApiError
from geo.text_files import detect
from tests.conftest import Dept
from tests.layers_helpers import layer_id, upload
from tests.test_address_import import counts, demo_rows, library, post, to_csv

__all__ = ["library"]  # the address import's fixture (admin areas, grids; cleaned up after)

RARE = "𠀀"  # U+20000, outside GBK: 4 bytes in GB18030
ENCODINGS = ["utf-8", "utf-8-sig", "gb18030", "utf-16"]
BAD = {
    # Latin-1 text: not UTF-8 (lone é) and not GB18030 (é then a space is no GB18030 pair).
    "latin-1": "name,lon,lat,address,category\nCafé ,117.2,39.1,x,park\n".encode("latin-1"),
    # Binary: 0x80 and 0xFF are lead bytes neither UTF-8 nor GB18030 accepts.
    "binary": b"name,lon,lat\n\x80\xff\x00\x01\xfe\x80,117.2,39.1\n",
}


def encoded(content: str, encoding: str) -> bytes:
    data = content.encode(encoding)
    assert encoding != "gb18030" or len(RARE.encode(encoding)) == 4
    return data


def rows_csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def test_the_detected_encodings(tmp_path: Path) -> None:
    content = f"名称\n天津{RARE}\n"
    found = {e: detect(io.BytesIO(content.encode(e))).name for e in ENCODINGS}
    assert found == {
        "utf-8": "UTF-8",
        "utf-8-sig": "UTF-8",
        "gb18030": "GB18030",
        "utf-16": "UTF-16",
    }
    for data in BAD.values():
        with pytest.raises(ApiError) as caught:
            detect(io.BytesIO(data))
        assert caught.value.status == 400 and caught.value.code == "InvalidEncoding"
        assert "GB18030" in caught.value.message and "UTF-8" in caught.value.message


# --- layer upload ---------------------------------------------------------------------------

LAYER_CSV = rows_csv(
    [["名称", "经度", "纬度"], [f"医院{RARE}", "117.2", "39.1"], ["诊所", "117.21", "39.11"]]
)


@pytest.fixture(scope="module")
def layer_dept(make_department: Any) -> Dept:
    return make_department()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_layer_upload(client: TestClient, layer_dept: Dept, encoding: str) -> None:
    lid = layer_id()
    r = upload(
        client, layer_dept.editor, lid, encoded(LAYER_CSV, encoding), "h.csv", access="public"
    )
    assert r.status_code == 201, r.text
    features = client.get(f"/collections/{lid}/items").json()["features"]
    assert sorted(f["properties"]["名称"] for f in features) == [f"医院{RARE}", "诊所"]


@pytest.mark.parametrize("bad", sorted(BAD))
def test_layer_upload_refuses_bad_bytes(client: TestClient, layer_dept: Dept, bad: str) -> None:
    lid = layer_id()
    r = upload(client, layer_dept.editor, lid, BAD[bad], "x.csv")
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidEncoding"
    assert client.get(f"/collections/{lid}", headers=layer_dept.editor).status_code == 404


# --- address import (HTTP) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def editor(make_department: Any) -> Dept:
    return make_department("encodings", address_authority=True)


def address_rows(library: demo.Communities) -> list[dict[str, Any]]:
    rows = demo_rows(library, 6, seed=73)
    for row in rows:
        row["road"] = f"{row['road']}{RARE}" if row.get("road") else f"编码{RARE}路"
    return rows


def test_address_import(client: TestClient, library: demo.Communities, editor: Dept) -> None:
    rows = address_rows(library)
    content = to_csv(rows).decode()
    reports = []
    for encoding in ENCODINGS:
        r = post(client, editor, encoded(content, encoding))
        assert r.status_code == 200, (encoding, r.text)
        reports.append(r.json())
    # The first import creates the rows; each other encoding reads the very same rows again.
    assert reports[0]["created"] == len(rows)
    assert [(r["created"], r["updated"], r["unchanged"]) for r in reports[1:]] == [
        (0, 0, len(rows))
    ] * 3
    with session_scope() as session:
        roads = session.execute(
            text("SELECT count(*) FROM addresses WHERE road LIKE :p"), {"p": f"%{RARE}"}
        ).scalar_one()
    assert roads == len(rows)


@pytest.mark.parametrize("bad", sorted(BAD))
def test_address_import_refuses_bad_bytes(
    client: TestClient, library: demo.Communities, editor: Dept, bad: str
) -> None:
    before = counts()
    r = post(client, editor, BAD[bad])
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidEncoding"
    assert counts() == before


# --- batch geocoding (HTTP) ------------------------------------------------------------------

BATCH_CSV = rows_csv(
    [["编号", "地址"], ["1", f"天津市河西区友谊路32号{RARE}"], ["2", "和平区南京路"]]
)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_batch_geocoding(client: TestClient, layer_dept: Dept, encoding: str) -> None:
    files = {"file": ("in.csv", encoded(BATCH_CSV, encoding), "text/csv")}
    r = client.post("/addresses/geocode/batch", files=files, headers=layer_dept.viewer)
    assert r.status_code == 200, r.text
    out = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["编号"], row["地址"]) for row in out] == [
        ("1", f"天津市河西区友谊路32号{RARE}"),
        ("2", "和平区南京路"),
    ]


@pytest.mark.parametrize("bad", sorted(BAD))
def test_batch_geocoding_refuses_bad_bytes(client: TestClient, layer_dept: Dept, bad: str) -> None:
    files = {"file": ("in.csv", BAD[bad], "text/csv")}
    r = client.post(
        "/addresses/geocode/batch",
        params={"column": "name"},
        files=files,
        headers=layer_dept.viewer,
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidEncoding"


# --- places import ---------------------------------------------------------------------------

PLACES_CSV = rows_csv(
    [
        ["category", "name", "aliases", "lon", "lat"],
        ["park", f"编码{RARE}公园", "编码园", "117.205", "39.1"],
    ]
)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_places_read(encoding: str) -> None:
    rows = read_places(io.BytesIO(encoded(PLACES_CSV, encoding)), "p.csv")
    assert [(r.category, r.name, r.aliases, r.lon, r.lat) for r in rows] == [
        ("park", f"编码{RARE}公园", ("编码园",), "117.205", "39.1")
    ]


@pytest.mark.parametrize("bad", sorted(BAD))
def test_places_import_refuses_bad_bytes(
    client: TestClient, admin_headers: dict[str, str], bad: str
) -> None:
    files = {"file": (f"enc-{bad}.csv", BAD[bad], "text/csv")}
    r = client.post("/places/import", files=files, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidEncoding"
    with session_scope() as session:
        kept = session.execute(
            text("SELECT count(*) FROM places WHERE source = :s"), {"s": f"enc-{bad}.csv"}
        ).scalar_one()
    assert kept == 0


# --- the address quality report's reader ------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_quality_report_table(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(encoded(BATCH_CSV, encoding))
    table = open_table(path, "list.csv", None)
    assert table.header == ["编号", "地址"] and table.rows == 2
    assert list(table.read()) == [["1", f"天津市河西区友谊路32号{RARE}"], ["2", "和平区南京路"]]


@pytest.mark.parametrize("bad", sorted(BAD))
def test_quality_report_refuses_bad_bytes(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(BAD[bad])
    with pytest.raises(ApiError) as caught:
        open_table(path, "list.csv", "name")
    assert caught.value.status == 400 and caught.value.code == "InvalidEncoding"


# --- the admin divisions table (geo addresses import-areas) -----------------------------------


def test_divisions_table_reads_alike(tmp_path: Path) -> None:
    expected = [(a.code, a.name, a.level) for a in read_divisions()]
    path = tmp_path / "divisions.csv"
    for encoding in ("gb18030", "utf-16"):
        path.write_bytes(DIVISIONS.read_text(encoding="utf-8-sig").encode(encoding))
        assert [(a.code, a.name, a.level) for a in read_divisions(path)] == expected
    path.write_bytes(BAD["binary"])
    with pytest.raises(ApiError) as caught:
        read_divisions(path)
    assert caught.value.code == "InvalidEncoding"

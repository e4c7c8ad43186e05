"""The address import: happy path, code stability, every bad file, location fill, EXPLAIN."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas.import_areas import import_areas
from addressbook.areas.import_grids import assign_addresses, save_grids
from addressbook.areas.resolver import AreaKeys
from addressbook.geocoding import names
from addressbook.geocoding.names import load_name_lists
from addressbook.ingest import demo, import_sql, importer
from geo.crs import transform_xy
from geo.db import get_engine, session_scope
from geo.errors import ApiError
from tests.address_library import CONSOLE
from tests.conftest import Dept
from tests.test_cli import geo

DISTRICT = "河西区"
COUNT = 2000
SEED = 99


@pytest.fixture(scope="module")
def library(database_url: str) -> Iterator[demo.Communities]:
    """Admin areas, demo grids for 河西区, and its communities for generating files. What the
    module adds (addresses, names, grids) is removed afterwards: other modules' tests look
    things up in the same database and must not meet these."""
    with session_scope() as session:
        if not session.execute(
            text("SELECT count(*) FROM admin_areas WHERE source = 'derived-voronoi'")
        ).scalar_one():
            import_areas(session)
        first_new = session.execute(text("SELECT coalesce(max(id), 0) + 1 FROM addresses")).scalar()
    with session_scope() as session:
        communities = demo.load_communities(session)
        hexi = communities.where(communities.district == DISTRICT)
        save_grids(session, demo.generate_grids(hexi, seed=3), "test-hexi")
    yield hexi
    with session_scope() as session:
        session.execute(
            text(
                "CREATE TEMP TABLE _gone ON COMMIT DROP AS SELECT DISTINCT k.kind, k.name, "
                "a.district_code FROM addresses a CROSS JOIN LATERAL (VALUES ('road', a.road), "
                "('compound', a.compound)) k(kind, name) "
                "WHERE a.id >= :first AND k.name IS NOT NULL"
            ),
            {"first": first_new},
        )
        session.execute(
            text("DELETE FROM address_history WHERE address_id >= :f"), {"f": first_new}
        )
        session.execute(text("DELETE FROM addresses WHERE id >= :f"), {"f": first_new})
        names.refresh_streets(session, "_gone")
        session.execute(text("DELETE FROM grids WHERE source = 'test-hexi'"))
        assign_addresses(session)


@pytest.fixture(scope="module")
def editor(make_department: Callable[..., Dept]) -> Dept:
    return make_department("imports", address_authority=True)


def demo_rows(library: demo.Communities, count: int = COUNT, seed: int = SEED) -> list[dict]:
    data = b"".join(demo.csv_chunks(library, count, seed))
    return list(csv.DictReader(io.StringIO(data.decode())))


def to_csv(rows: list[dict], columns: list[str] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or list(rows[0]), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def post(client: TestClient, dept: Dept, data: bytes, name: str = "a.csv", **params):
    return client.post(
        "/addresses/import",
        params=params,
        files={"file": (name, data, "text/csv")},
        headers=dept.editor,
    )


def counts() -> tuple[int, int, int]:
    with get_engine().connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM addresses), (SELECT count(*) FROM "
                    "address_history), (SELECT count(*) FROM audit_log)"
                )
            ).one()
        )


def test_import_happy_path_and_reimport(client: TestClient, library, editor: Dept) -> None:
    rows = demo_rows(library)
    data = to_csv(rows)
    r = post(client, editor, data)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["rows"] == COUNT and report["errorCount"] == 0
    assert report["created"] + report["unchanged"] == COUNT
    assert report["filledByLocation"]["grid"] == COUNT  # the file has no grid column
    with get_engine().connect() as conn:
        stored = conn.execute(
            text(
                "SELECT a.code, a.full_address, a.district_code, a.subdistrict_code, "
                "a.community_code, a.grid_code, g.community_code, a.room, a.building "
                "FROM addresses a LEFT JOIN grids g ON g.code = a.grid_code "
                "WHERE a.district_code = '120103000000' AND a.updated_by LIKE 'imports/%'"
            )
        ).all()
        history = conn.execute(
            text(
                "SELECT count(*) FROM address_history h JOIN addresses a ON a.id = h.address_id "
                "WHERE a.updated_by LIKE 'imports/%' AND h.action = 'create'"
            )
        ).scalar()
        audited = conn.execute(
            text("SELECT count(*) FROM audit_log WHERE action = 'addresses.import'")
        ).scalar()
    assert len(stored) == COUNT and history == COUNT and audited >= 1
    codes = {row[0] for row in stored}
    for code, full, _district, sub, community, grid, grid_community, room, building in stored:
        assert code.startswith("120103-") and len(code) == 21
        assert full.startswith("天津市河西区") and sub and community and grid
        assert grid_community == community  # the grid found by location is in the community
        assert room is None or room.endswith("室")
        assert building is None or building.endswith("号楼")
    # The same file again: same codes, nothing created or changed.
    again = post(client, editor, data).json()
    assert again["created"] == 0 and again["updated"] == 0 and again["unchanged"] == COUNT
    with get_engine().connect() as conn:
        after = set(
            conn.execute(
                text("SELECT code FROM addresses WHERE district_code = '120103000000'")
            ).scalars()
        )
    assert codes <= after
    with session_scope() as session:
        lists = load_name_lists(session, AreaKeys.load(session))
    assert any(road == rows[0]["road"] and d == DISTRICT for road, d in lists["roads"])
    assert (rows[0]["subdistrict"], DISTRICT) in lists["subdistricts"]


def test_moved_point_is_an_update_with_history(client: TestClient, library, editor: Dept) -> None:
    rows = demo_rows(library, 20, seed=5)
    assert post(client, editor, to_csv(rows)).status_code == 200
    moved = dict(rows[0], lon=str(round(float(rows[0]["lon"]) + 0.0002, 7)))
    report = post(client, editor, to_csv([moved])).json()
    assert report["updated"] == 1 and report["created"] == 0
    with get_engine().connect() as conn:
        version, actions = conn.execute(
            text(
                "SELECT a.version, array_agg(h.action ORDER BY h.version) FROM addresses a "
                "JOIN address_history h ON h.address_id = a.id "
                "WHERE a.road = :road AND a.house_number = :h || '号' AND a.room = :room || '室' "
                "AND a.building = :b || '号楼' AND a.unit = :u || '单元' GROUP BY a.version"
            ),
            {
                "road": moved["road"],
                "h": moved["house_number"],
                "room": moved["room"],
                "b": moved["building"],
                "u": moved["unit"],
            },
        ).one()
    assert version == 2 and actions[-1] == "update"


def test_location_fills_missing_areas(client: TestClient, library, editor: Dept) -> None:
    rows = demo_rows(library, 50, seed=11)
    data = to_csv(
        rows,
        ["lon", "lat", "district", "road", "house_number", "compound", "building", "unit", "room"],
    )
    report = post(client, editor, data).json()
    assert report["errorCount"] == 0
    with get_engine().connect() as conn:
        found = conn.execute(
            text(
                "SELECT s.name, c.name FROM addresses a "
                "JOIN current_admin_areas s ON s.code = a.subdistrict_code "
                "JOIN current_admin_areas c ON c.code = a.community_code "
                "WHERE a.road = :road AND a.house_number = :h || '号' AND a.compound = :c "
                "AND a.building = :b || '号楼' AND a.unit = :u || '单元' AND a.room = :r || '室'"
            ),
            {
                "road": rows[0]["road"],
                "h": rows[0]["house_number"],
                "c": rows[0]["compound"],
                "b": rows[0]["building"],
                "u": rows[0]["unit"],
                "r": rows[0]["room"],
            },
        ).one()
    # The generator put the point inside the community it named: location agrees with names.
    assert found == (rows[0]["subdistrict"], rows[0]["community"])


def test_written_variants_are_standardised(client: TestClient, library, editor: Dept) -> None:
    row = demo_rows(library, 1, seed=17)[0]
    row.update(
        house_number="３２", building="5栋", unit="2门", room="301户", road=row["road"] + "（测）"
    )
    report = post(client, editor, to_csv([row])).json()
    assert report["errorCount"] == 0
    with get_engine().connect() as conn:
        stored = conn.execute(
            text(
                "SELECT house_number, building, unit, room, full_address FROM addresses "
                "WHERE road = :road"
            ),
            {"road": row["road"]},
        ).one()
    assert stored[:4] == ("32号", "5号楼", "2单元", "301室")
    assert stored[4].endswith("32号" + row["compound"] + "5号楼2单元301室")


def test_geojson_and_gcj02(client: TestClient, library, editor: Dept) -> None:
    rows = demo_rows(library, 5, seed=23)
    x, y = transform_xy(
        [float(r["lon"]) for r in rows], [float(r["lat"]) for r in rows], "EPSG:4326", "GCJ02"
    )
    features = [
        {
            "type": "Feature",
            "properties": {k: v for k, v in r.items() if k not in ("lon", "lat")},
            "geometry": {"type": "Point", "coordinates": [gx, gy]},
        }
        for r, gx, gy in zip(rows, x.tolist(), y.tolist(), strict=True)
    ]
    body = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    r = post(client, editor, body, "a.geojson", crs="GCJ02")
    assert r.status_code == 200, r.text
    with get_engine().connect() as conn:
        stored = conn.execute(
            text(
                "SELECT ST_X(geom), ST_Y(geom) FROM addresses WHERE road = :r AND "
                "house_number = :h || '号' AND coalesce(room, '') = coalesce(:m || '室', '')"
            ),
            {"r": rows[0]["road"], "h": rows[0]["house_number"], "m": rows[0]["room"] or None},
        ).first()
    assert abs(stored[0] - float(rows[0]["lon"])) < 1e-6
    assert abs(stored[1] - float(rows[0]["lat"])) < 1e-6
    features[1]["geometry"] = {"type": "LineString", "coordinates": [[117.2, 39.1], [117.3, 39.1]]}
    bad = post(
        client,
        editor,
        json.dumps({"type": "FeatureCollection", "features": features}).encode(),
        "b.geojson",
        crs="GCJ02",
    )
    assert bad.status_code == 400
    assert bad.json()["details"]["errors"][0] == {
        "line": 2,
        "problem": "geometry is not a Point: LineString",
    }


def _rejected(client, editor, data: bytes, status: int = 400, **params):
    before = counts()
    r = post(client, editor, data, **params)
    assert r.status_code == status, r.text
    after = counts()
    assert after[:2] == before[:2]  # nothing half-written
    return r.json()


def test_bad_rows_are_reported_by_line_and_nothing_is_written(
    client: TestClient, library, editor: Dept
) -> None:
    rows = demo_rows(library, 30, seed=29)
    rows[3]["lon"], rows[3]["lat"] = rows[3]["lat"], rows[3]["lon"]  # swapped axes
    rows[7]["district"] = "火星区"
    rows[9]["lat"] = "北纬39度"
    rows[12]["road"], rows[12]["compound"] = "", ""
    rows[15]["subdistrict"] = "不存在街道"
    body = _rejected(client, editor, to_csv(rows))
    assert body["code"] == "InvalidRows"
    errors = {e["line"]: e["problem"] for e in body["details"]["errors"]}
    assert set(errors) == {5, 9, 11, 14, 17}  # line 1 is the header
    assert "outside the city extent" in errors[5]
    assert errors[9] == "unknown district '火星区'"
    assert "not numbers" in errors[11] and "北纬39度" in errors[11]
    assert errors[14] == "missing road and compound"
    assert "unknown subdistrict '不存在街道'" in errors[17]
    # --skip-invalid: the 25 good rows go in, the 5 bad ones are reported.
    ok = post(client, editor, to_csv(rows), skip_invalid="true").json()
    assert ok["skipped"] == 5 and ok["created"] + ok["unchanged"] == 25
    assert [e["line"] for e in ok["errors"]] == [5, 9, 11, 14, 17]


def test_duplicate_rows_in_one_file(client: TestClient, library, editor: Dept) -> None:
    rows = demo_rows(library, 4, seed=31)
    body = _rejected(client, editor, to_csv([*rows, rows[1]]))
    assert body["details"]["errors"] == [{"line": 6, "problem": "same address as line 3"}]


def test_gbk_file_is_read_and_bad_bytes_are_refused(
    client: TestClient, library, editor: Dept
) -> None:
    """A GBK export (Excel on Chinese Windows) reads as the same rows as its UTF-8 twin (see
    tests/test_text_encodings.py for every encoding); bytes no accepted encoding reads are a
    400 naming the line, with nothing written."""
    rows = demo_rows(library, 10, seed=37)
    r = post(client, editor, to_csv(rows).decode().encode("gbk"))
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 10
    assert post(client, editor, to_csv(rows)).json()["unchanged"] == 10
    lines = to_csv(rows).split(b"\n")
    lines[4] = lines[4].replace(b",", b"\xff,", 1)
    body = _rejected(client, editor, b"\n".join(lines))
    assert body["code"] == "InvalidEncoding" and body["details"]["line"] == 5
    assert "UTF-8" in body["message"] and "GB18030" in body["message"]


def test_missing_columns_are_named(client: TestClient, library, editor: Dept) -> None:
    rows = demo_rows(library, 3, seed=41)
    body = _rejected(client, editor, to_csv(rows, ["lon", "district", "road"]))
    assert body["code"] == "MissingColumns" and body["details"]["missing"] == ["lat"]
    body = _rejected(client, editor, to_csv(rows, ["lon", "lat", "district", "building"]))
    assert body["details"]["missing"] == ["road or compound"]


def test_malformed_csv_and_bad_crs(client: TestClient, library, editor: Dept) -> None:
    rows = demo_rows(library, 3, seed=43)
    data = to_csv(rows) + b"117.2,39.1,too,many,fields,,,,,,,,,,,\n"
    body = _rejected(client, editor, data)
    assert body["code"] == "InvalidCSV" and "line 5" in body["message"]
    assert _rejected(client, editor, to_csv(rows), crs="EPSG:12345")["code"] == "UnknownCRS"
    assert _rejected(client, editor, b"")["code"] == "EmptyFile"
    # Found by the schemathesis run: a lone carriage return in the header line was a 500.
    assert _rejected(client, editor, b"district,road\rx\nA,B\n")["code"] == "InvalidCSV"


def test_import_needs_an_editor_key(client: TestClient, library, editor: Dept) -> None:
    data = to_csv(demo_rows(library, 2, seed=47))
    files = {"file": ("a.csv", data, "text/csv")}
    assert client.post("/addresses/import", files=files).status_code == 401
    assert client.post("/addresses/import", files=files, headers=editor.viewer).status_code == 403
    missing = client.post("/addresses/import", headers=editor.editor)
    assert missing.status_code == 400 and "file" in missing.json()["message"]


def test_location_fill_uses_gist_indexes(library) -> None:
    """Both plans of the fill are index scans: per row into the polygons' GiST index, or per
    polygon into the GiST index on the incoming points (the big side is never scanned)."""
    with session_scope() as session:
        session.execute(
            text(
                "CREATE TEMP TABLE fill_probe AS SELECT g AS line, NULL::text AS problem, "
                "NULL::text AS community_code, NULL::text AS subdistrict_code, "
                "'120103000000'::text AS district_code, NULL::text AS grid_code, "
                "ST_SetSRID(ST_MakePoint(117.2 + g * 1e-5, 39.1), 4490) AS pt "
                "FROM generate_series(1, 3000) g"
            )
        )
        session.execute(text("CREATE INDEX fill_probe_pt ON fill_probe USING gist (pt)"))
        session.execute(text("ANALYZE fill_probe"))
        session.execute(text("SET LOCAL enable_seqscan = off"))
        for kind in ("community", "subdistrict", "grid"):
            point = "\n".join(
                session.execute(
                    text("EXPLAIN " + import_sql.POINT_PROBES[kind].format(rows="fill_probe"))
                ).scalars()
            )
            polygon_index = "idx_grids_geom" if kind == "grid" else "idx_admin_areas_geom"
            assert polygon_index in point, point
            polygon = "\n".join(
                session.execute(
                    text("EXPLAIN " + import_sql.POLYGON_PROBES[kind].format(rows="fill_probe"))
                ).scalars()
            )
            assert "fill_probe_pt" in polygon and "Seq Scan on fill_probe" not in polygon, polygon
        session.rollback()


def test_polygon_probe_keeps_the_smallest_code(library) -> None:
    """The polygon plan finds a point once per grid holding it; a point in two (overlapping
    grids, or a shared border) takes the smallest code, as the per-row plan does."""
    squares = {"TEST-OVERLAP-A": 116.44, "TEST-OVERLAP-B": 116.45}
    with session_scope() as session:
        for code, west in squares.items():
            session.execute(
                text(
                    "INSERT INTO grids (code, name, geom) VALUES (:code, :code, "
                    "ST_Multi(ST_MakeEnvelope(:w, 38.24, :w + 0.02, 38.26, 4490)))"
                ),
                {"code": code, "w": west},
            )
        session.execute(
            text(
                "CREATE TEMP TABLE probe_rows AS SELECT n AS line, NULL::text AS problem, "
                "NULL::text AS grid_code, "
                "ST_SetSRID(ST_MakePoint(116.435 + n * 0.01, 38.25), 4490) AS pt "
                "FROM generate_series(1, 3) n"
            )
        )
        assert import_sql.probe(session, "grid", "probe_rows", 3, 2, "probe_found") == 3
        found = session.execute(text("SELECT line, code FROM probe_found ORDER BY line")).all()
        session.rollback()
    assert found == [(1, "TEST-OVERLAP-A"), (2, "TEST-OVERLAP-A"), (3, "TEST-OVERLAP-B")]


def test_blank_district_is_found_by_location(client: TestClient, library, editor: Dept) -> None:
    rows = demo_rows(library, 3, seed=41)
    rows[1]["district"] = " "
    report = post(client, editor, to_csv(rows)).json()
    assert report["errorCount"] == 0, report
    with get_engine().connect() as conn:
        district = conn.execute(
            text(
                "SELECT district_code FROM addresses WHERE road = :road "
                "AND house_number = :h || '号' AND coalesce(room, '') = coalesce(:m || '室', '')"
            ),
            {"road": rows[1]["road"], "h": rows[1]["house_number"], "m": rows[1]["room"] or None},
        ).scalar_one()
    assert district == "120103000000"  # 河西区, where the point is


_SCHEMA = """
    SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
    WHERE indrelid IN ('addresses'::regclass, 'address_history'::regclass)
    UNION ALL
    SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
    WHERE conrelid IN ('addresses'::regclass, 'address_history'::regclass,
                       'address_aliases'::regclass)
    ORDER BY 1, 2
"""


def _emptied(session: Session) -> None:
    for table in ("address_aliases", "address_history", "addresses"):
        session.execute(text(f"DELETE FROM {table}"))


def test_bulk_load_rebuilds_every_index_and_key(library, monkeypatch) -> None:
    """Into an emptied library (rolled back), a file of more rows than BULK_ROWS goes in with
    the indexes and keys dropped and built again: the same ones come back and every address
    has its history row; a duplicate found by the rebuilt code key is reported by line, with
    nothing written."""
    monkeypatch.setattr(importer, "BULK_ROWS", 10)
    rows = demo_rows(library, 300, seed=53)
    with get_engine().connect() as conn:
        before = conn.execute(text(_SCHEMA)).all()
    with session_scope() as session:
        _emptied(session)
        report = importer.import_addresses(session, io.BytesIO(to_csv(rows)), "b.csv", CONSOLE)
        assert report.bulk and report.created == len(rows) and report.error_count == 0
        assert session.execute(text(_SCHEMA)).all() == before
        history = session.execute(
            text("SELECT count(*) FROM address_history WHERE action = 'create'")
        ).scalar_one()
        assert history == len(rows)
        session.rollback()
    with pytest.raises(ApiError) as rejected, session_scope() as session:
        _emptied(session)
        importer.import_addresses(session, io.BytesIO(to_csv([*rows, rows[7]])), "d.csv", CONSOLE)
    assert rejected.value.details["errors"] == [
        {"line": len(rows) + 2, "problem": "same address as line 9"}
    ]
    with get_engine().connect() as conn:
        assert conn.execute(text(_SCHEMA)).all() == before


def test_cli_import_and_demo(tmp_path, library) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (first, second):
        result = geo("demo", "addresses", "--count", "300", "--seed", "5", "--out", str(out))
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()
    loaded = geo("addresses", "import", str(first))
    assert loaded.returncode == 0, loaded.stderr
    assert '"rows": 300' in loaded.stderr
    bad = tmp_path / "bad.csv"
    bad.write_bytes(first.read_bytes().replace(b"\xe5\x8c\xba,", b"\xe5\x8c\xba\xff,", 1))
    failed = geo("addresses", "import", str(bad))
    assert failed.returncode == 2 and "is not text in UTF-8" in " ".join(failed.stderr.split())
    assert "Traceback" not in failed.stderr

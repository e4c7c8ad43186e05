"""Admin areas (levels, code history, GCJ-02 conversion, derived polygons) and grids."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from addressbook.areas.grids import GRID_AT_SQL
from addressbook.areas.import_areas import community_name, import_areas
from addressbook.areas.import_grids import assign_addresses, save_grids
from addressbook.ingest import demo
from geo.crs import transform_xy
from geo.db import get_engine, session_scope
from tests.test_cli import geo

TIANJIN_EYE = (117.18026, 39.15336)  # WGS84, on the Hai River between 河北区 and 红桥区
HEPING = "120101000000"
GRID_SOURCE = "test-heping"


@pytest.fixture(scope="module")
def areas(database_url: str) -> None:
    with session_scope() as session:
        loaded = session.execute(
            text("SELECT count(*) FROM admin_areas WHERE source = 'derived-voronoi'")
        ).scalar_one()
        if not loaded:
            import_areas(session)


@pytest.fixture(scope="module")
def heping_grids(areas: None) -> Iterator[int]:
    """Demo grids for the communities of 和平区 only (small, fast); removed afterwards, with
    the grids the CLI tests load, so that other modules find no grids they did not make."""
    with session_scope() as session:
        communities = demo.load_communities(session)
        frame = demo.generate_grids(communities.where(communities.district == "和平区"), seed=7)
        save_grids(session, frame, GRID_SOURCE)
    yield len(frame)
    with session_scope() as session:
        session.execute(
            text("DELETE FROM grids WHERE source IN (:a, 'test-cli')"), {"a": GRID_SOURCE}
        )
        assign_addresses(session)


def scalar(sql: str, **params: object) -> object:
    with get_engine().connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_levels_and_counts(areas: None) -> None:
    with get_engine().connect() as conn:
        counts = dict(
            conn.execute(
                text(
                    "SELECT level, count(*) FROM admin_areas WHERE valid_to IS NULL GROUP BY level"
                )
            )
            .tuples()
            .all()
        )
    assert counts["province"] == 1
    assert counts["district"] == 16
    assert counts["subdistrict"] == 299  # the 2023 list
    assert counts["community"] == 5586
    assert "city" not in counts  # 市辖区 is skipped: districts hang off 天津市
    assert scalar("SELECT parent_code FROM admin_areas WHERE code = :c", c=HEPING) == "120000000000"


def test_committee_names_become_place_names() -> None:
    assert community_name("花园路社区居委会") == "花园路社区"
    assert community_name("陈庄村委会") == "陈庄村"
    assert community_name("后巷村村委会") == "后巷村"
    assert community_name("大埝村村民委员会") == "大埝村"
    assert community_name("迎水里居委会") == "迎水里社区"
    assert community_name("白庙村农工商联合公司（村委会）") == "白庙村"


def test_code_history_keeps_both_versions(areas: None, client: TestClient) -> None:
    # 双环村街道 (红桥区, 2016) became 双环邨街道 in 北辰区 with a new code in 2023.
    with get_engine().connect() as conn:
        old = conn.execute(
            text("SELECT valid_to, successor_code FROM admin_areas WHERE code = '120106002000'")
        ).one()
        new = conn.execute(
            text(
                "SELECT name, parent_code, valid_from, valid_to FROM admin_areas "
                "WHERE code = '120113008000'"
            )
        ).one()
        carried = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE valid_to IS NULL AND parent_code = '120113008000'),"
                " count(*) FILTER (WHERE valid_to IS NOT NULL) FROM admin_areas "
                "WHERE level = 'community' AND code LIKE '120106002%'"
            )
        ).one()
    assert str(old.valid_to) == "2023-06-01" and old.successor_code == "120113008000"
    assert new.name == "双环邨街道" and new.parent_code == "120113000000"
    assert str(new.valid_from) == "2023-06-01" and new.valid_to is None
    assert carried[0] > 0 and carried[0] == carried[1]  # each community: old and new version
    body = client.get("/areas/120106002000", params={"geometry": "false"}).json()
    assert body["current"] is False and body["successor_code"] == "120113008000"
    # A renamed township keeps its code: two versions of one code.
    renamed = client.get("/areas/120112001000")  # 双新街道办事处 -> 双新街道: same place name
    assert [h["name"] for h in renamed.json()["history"]] == ["双新街道"]
    versions = client.get("/areas/120119203000", params={"geometry": "false"}).json()["history"]
    assert [v["name"] for v in versions] == ["孙各庄满族乡", "孙各庄乡"]


def test_tianjin_eye_lies_on_the_converted_boundary(areas: None) -> None:
    boundary = """
        SELECT ST_Distance(geography(ST_Boundary(h.geom)),
                           geography(ST_SetSRID(ST_MakePoint(:x, :y), 4490)))
        FROM admin_areas h WHERE h.name = '河北区' AND h.level = 'district'
          AND h.valid_to IS NULL
    """
    converted = scalar(boundary, x=TIANJIN_EYE[0], y=TIANJIN_EYE[1])
    assert converted < 60, converted
    # Unconverted fences sit where the GCJ-02 point is: ~500 m off the landmark.
    gx, gy = transform_xy([TIANJIN_EYE[0]], [TIANJIN_EYE[1]], "EPSG:4326", "GCJ02")
    assert scalar(boundary, x=float(gx[0]), y=float(gy[0])) > 200
    shared = scalar(
        "SELECT ST_Distance(geography(ST_Intersection(ST_Boundary(a.geom), ST_Boundary(b.geom))),"
        " geography(ST_SetSRID(ST_MakePoint(:x, :y), 4490))) FROM admin_areas a, admin_areas b "
        "WHERE a.name = '河北区' AND b.name = '红桥区' AND a.valid_to IS NULL "
        "AND b.valid_to IS NULL AND a.level = 'district' AND b.level = 'district'",
        x=TIANJIN_EYE[0],
        y=TIANJIN_EYE[1],
    )
    assert shared < 60, shared


def test_derived_polygons_nest_and_cover(areas: None) -> None:
    with get_engine().connect() as conn:
        outside = conn.execute(
            text(
                """
                SELECT count(*) FROM admin_areas c JOIN admin_areas p ON p.code = c.parent_code
                WHERE c.valid_to IS NULL AND p.valid_to IS NULL AND c.geom IS NOT NULL
                  AND c.level IN ('subdistrict', 'community')
                  AND ST_Area(ST_Difference(c.geom, p.geom)) > 1e-9
                """
            )
        ).scalar()
        flagged = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE source <> 'derived-voronoi'), count(*) "
                "FROM admin_areas WHERE valid_to IS NULL AND geom IS NOT NULL "
                "AND level IN ('subdistrict', 'community')"
            )
        ).one()
        gap = conn.execute(
            text(
                """
                SELECT ST_Area(ST_Difference(d.geom, ST_Union(s.geom))) / ST_Area(d.geom)
                FROM admin_areas d JOIN admin_areas s ON s.parent_code = d.code
                WHERE d.code = :c AND d.valid_to IS NULL AND s.valid_to IS NULL
                GROUP BY d.geom
                """
            ),
            {"c": HEPING},
        ).scalar()
        without_centroid = conn.execute(
            text(
                "SELECT count(*) FROM admin_areas WHERE valid_to IS NULL AND geom IS NOT NULL "
                "AND centroid IS NULL"
            )
        ).scalar()
    assert outside == 0
    assert flagged[0] == 0 and flagged[1] > 5000
    assert gap < 1e-6  # subdistrict cells tile the district
    assert without_centroid == 0


def test_reimport_replaces_in_place(areas: None) -> None:
    before = scalar("SELECT count(*) FROM admin_areas")
    geoms = scalar(
        "SELECT md5(string_agg(ST_AsText(geom), '' ORDER BY code, valid_from)) "
        "FROM admin_areas WHERE level = 'community'"
    )
    with session_scope() as session:
        import_areas(session)
    assert scalar("SELECT count(*) FROM admin_areas") == before
    assert (
        scalar(
            "SELECT md5(string_agg(ST_AsText(geom), '' ORDER BY code, valid_from)) "
            "FROM admin_areas WHERE level = 'community'"
        )
        == geoms
    )


def test_area_endpoint(areas: None, client: TestClient) -> None:
    r = client.get("/areas/120103007000")  # 友谊路街道, 河西区
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "友谊路街道" and body["level"] == "subdistrict"
    assert [p["name"] for p in body["parents"]] == ["河西区", "天津市"]
    assert body["children"] and all(c["level"] == "community" for c in body["children"])
    assert body["geometry"]["type"] == "MultiPolygon"
    gcj = client.get("/areas/120103007000", params={"crs": "GCJ02"}).json()
    assert gcj["centroid"]["coordinates"] != body["centroid"]["coordinates"]
    listed = client.get("/areas", params={"level": "district", "q": "河"}).json()
    assert {a["name"] for a in listed["areas"]} >= {"河西区", "河北区", "河东区"}
    children = client.get("/areas", params={"parent": HEPING}).json()
    assert children["numberMatched"] == len(children["areas"]) == 6


@pytest.mark.parametrize(
    ("path", "params", "status", "needle"),
    [
        ("/areas/120199999000", {}, 404, "120199999000"),
        ("/areas", {"level": "planet"}, 400, "planet"),
        ("/areas", {"levle": "district"}, 400, "levle"),
        ("/areas/120101000000", {"crs": "EPSG:9999"}, 400, "EPSG:9999"),
        ("/grids/NOPE-G01", {}, 404, "NOPE-G01"),
        ("/grids/at", {"lon": 39.1, "lat": 117.2}, 400, "outside the city extent"),
        ("/grids/at", {"lon": "east", "lat": 39.1}, 400, "lon"),
    ],
)
def test_bad_requests_name_the_problem(
    areas: None, client: TestClient, path: str, params: dict, status: int, needle: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status, r.text
    assert needle in r.json()["message"]


def test_demo_grids_cut_communities(heping_grids: int) -> None:
    assert heping_grids > 60  # 和平区 has 63 communities, several grids each
    with get_engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT g.code, g.community_code, ST_Area(ST_Difference(g.geom, c.geom)) "
                "FROM grids g JOIN admin_areas c ON c.code = g.community_code "
                "AND c.valid_to IS NULL WHERE g.source = :s"
            ),
            {"s": GRID_SOURCE},
        ).all()
    assert len(rows) == heping_grids
    assert all(code.startswith(community + "-G") for code, community, _ in rows)
    assert max(extra for *_, extra in rows) < 1e-9


def test_grid_at(heping_grids: int, client: TestClient, admin_headers: dict[str, str]) -> None:
    # Staff contacts are personal data: shown to keyed callers only.
    where = {"lon": 117.2045, "lat": 39.1195}
    inside = client.get("/grids/at", params=where, headers=admin_headers)
    assert inside.status_code == 200, inside.text
    body = inside.json()
    assert body["district"] == "和平区" and body["district_code"] == HEPING
    assert body["community"] and body["subdistrict"] and body["staff_name"]
    assert "staff_name" not in client.get("/grids/at", params=where).json()
    assert body["geometry"]["type"] == "MultiPolygon"
    assert client.get(f"/grids/{body['code']}").json()["community"] == body["community"]
    # Same place given in GCJ-02 (an Amap click) finds the same grid.
    gx, gy = transform_xy([117.2045], [39.1195], "EPSG:4326", "GCJ02")
    gcj = client.get("/grids/at", params={"lon": float(gx[0]), "lat": float(gy[0]), "crs": "GCJ02"})
    assert gcj.json()["code"] == body["code"]
    # Inside the accepted extent, where no grid was loaded: no grid, and the answer says why.
    nowhere = client.get("/grids/at", params={"lon": 117.0, "lat": 38.35})
    assert nowhere.status_code == 200 and nowhere.json()["code"] is None
    assert "grid" in [m["level"] for m in nowhere.json()["missing"]]


def test_grid_at_uses_the_gist_index(heping_grids: int) -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(text("EXPLAIN " + GRID_AT_SQL), {"x": 117.2, "y": 39.12}).scalars()
        )
    assert "idx_grids_geom" in plan
    assert "Seq Scan on grids" not in plan


def _grid_file(tmp_path, features: list[dict]) -> str:
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def _square(x: float, y: float, size: float = 0.002) -> dict:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_grid_import_cli_fills_community_by_location(heping_grids: int, tmp_path) -> None:
    with get_engine().connect() as conn:
        (first, x, y), (second, *_) = conn.execute(
            text(
                "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                "FROM admin_areas WHERE parent_code = '120103007000' AND valid_to IS NULL "
                "ORDER BY code LIMIT 2"
            )
        ).all()
    features = [
        {
            "type": "Feature",
            "properties": {"code": "TEST-G1", "name": "测试网格", "staff_name": "王伟"},
            "geometry": _square(x - 0.0001, y - 0.0001, 0.0002),
        },
        {
            "type": "Feature",
            "properties": {"code": "TEST-G2", "name": "测试网格二", "community_code": second},
            "geometry": _square(x + 0.01, y + 0.01),
        },
    ]
    result = geo("grids", "import", _grid_file(tmp_path, features), "--source", "test-cli")
    assert result.returncode == 0, result.stderr
    with get_engine().connect() as conn:
        found = dict(
            conn.execute(text("SELECT code, community_code FROM grids WHERE source = 'test-cli'"))
            .tuples()
            .all()
        )
    assert found == {"TEST-G1": first, "TEST-G2": second}
    # Importing the source again without TEST-G2 removes it: the file is the truth.
    again = geo("grids", "import", _grid_file(tmp_path, features[:1]), "--source", "test-cli")
    assert again.returncode == 0, again.stderr
    assert scalar("SELECT count(*) FROM grids WHERE source = 'test-cli'") == 1


def test_grid_import_rejects_bad_features_whole(areas: None, tmp_path) -> None:
    before = scalar("SELECT count(*) FROM grids")
    features = [
        {
            "type": "Feature",
            "properties": {"code": "BAD-1", "name": "好"},
            "geometry": _square(117.2, 39.1),
        },
        {
            "type": "Feature",
            "properties": {"code": "BAD-2", "name": "点"},
            "geometry": {"type": "Point", "coordinates": [117.2, 39.1]},
        },
        {
            "type": "Feature",
            "properties": {"code": "BAD-3", "name": "远"},
            "geometry": _square(39.1, 117.2),
        },
    ]
    result = geo("grids", "import", _grid_file(tmp_path, features))
    assert result.returncode == 2
    assert "2 grid feature(s) are invalid" in result.stderr
    assert "Polygon or MultiPolygon" in result.stderr and "outside the city extent" in result.stderr
    assert scalar("SELECT count(*) FROM grids") == before


def test_areas_import_cli_is_idempotent(areas: None) -> None:
    before = scalar("SELECT count(*) FROM admin_areas")
    result = geo("areas", "import")
    assert result.returncode == 0, result.stderr
    assert scalar("SELECT count(*) FROM admin_areas") == before
    bad = geo("areas", "import", "--crs", "EPSG:99999")
    assert bad.returncode == 2 and "EPSG:99999" in bad.stderr
    assert scalar("SELECT count(*) FROM admin_areas") == before


def test_spread_points_are_deterministic_and_inside() -> None:
    from shapely.geometry import Polygon

    from addressbook.areas.import_derived import spread_points

    region = Polygon([(0, 0), (4, 0), (4, 1), (1, 1), (1, 4), (0, 4)])
    first = spread_points(region, 25, "salt")
    again = spread_points(region, 25, "salt")
    assert [p.wkt for p in first] == [p.wkt for p in again]
    assert all(region.contains(p) for p in first)
    assert len({p.wkt for p in first}) == 25
    assert np.isfinite([p.x for p in first]).all()

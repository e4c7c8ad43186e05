"""Current divisions everywhere (issue 15 part 4): every point of the city gets its district and
current subdistrict, and an answer that lacks a level says which and why, never filling it in.

太湖路街道 (河西区) is a 2023 township whose communities are not on record: a point there has a
district and a subdistrict, but no community and so no grid. The grids here are the demo grids
of 河西区, loaded through the real grid import and removed afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from addressbook.areas import coverage
from addressbook.areas.import_grids import assign_addresses, save_grids
from addressbook.geocoding.reverse import reverse
from addressbook.ingest import demo
from geo.db import session_scope
from tests.address_library import fresh_names, load
from tests.conftest import Dept

TAIHU = (117.2115, 39.1025)
HEXI, TAIHU_CODE = "120103000000", "120103014000"
GRID_SOURCE = "test-current-divisions"
NO_COMMUNITY = {"level": "community", "reason": "太湖路街道 (2023) has no communities on record"}
NO_GRID = {
    "level": "grid",
    "reason": "grids are drawn within communities, and the point has no community",
}
TAIHU_ESTIMATED = {
    "level": "subdistrict",
    "reason": "太湖路街道 has no location on record: its outline is a share of 河西区 drawn "
    "around a generated point",
}


@pytest.fixture(scope="module")
def hexi_grids(database_url: str) -> Iterator[None]:
    load()
    with session_scope() as session:
        communities = demo.load_communities(session)
        frame = demo.generate_grids(communities.where(communities.district == "河西区"), seed=3)
        save_grids(session, frame, GRID_SOURCE)
    with fresh_names():
        yield
    with session_scope() as session:
        session.execute(text("DELETE FROM grids WHERE source = :s"), {"s": GRID_SOURCE})
        assign_addresses(session)


@pytest.fixture(scope="module")
def dept(hexi_grids: None, make_department: Any) -> Dept:
    return make_department(address_authority=True)


def test_address_in_a_township_without_communities(client: TestClient, dept: Dept) -> None:
    body = {"district": "河西区", "road": "太湖路", "house_number": "9001", "lon": TAIHU[0]}
    made = client.post("/addresses", json={**body, "lat": TAIHU[1]}, headers=dept.editor)
    assert made.status_code == 201, made.text
    record = made.json()
    elements = record["elements"]
    assert (elements["district_code"], elements["subdistrict_code"]) == (HEXI, TAIHU_CODE)
    assert elements["subdistrict"] == "太湖路街道"
    assert elements["community_code"] is None and elements["grid_code"] is None
    assert record["missing"] == [NO_COMMUNITY, NO_GRID]
    assert record["estimated"] == [TAIHU_ESTIMATED]
    assert record["standard"] == "天津市河西区太湖路街道太湖路9001号"
    # Read back, the stored address says the same.
    again = client.get(f"/addresses/{record['id']}").json()
    assert again["missing"] == [NO_COMMUNITY, NO_GRID]
    # So does the geocoder's candidate for it.
    found = client.get("/addresses/geocode", params={"q": "天津市河西区太湖路9001号"}).json()
    first = found["candidates"][0]
    assert first["id"] == record["id"] and first["missing"] == [NO_COMMUNITY, NO_GRID]
    assert first["estimated"] == [TAIHU_ESTIMATED]
    # Moved into a community with grids, nothing is missing any more; moved back, it is again.
    with session_scope() as session:
        lon, lat = session.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grids "
                "WHERE source = :s ORDER BY code LIMIT 1) g"
            ),
            {"s": GRID_SOURCE},
        ).one()
    moved = client.patch(
        f"/addresses/{record['id']}",
        json={"lon": lon, "lat": lat},
        headers={**dept.editor, "If-Match": '"1"'},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["missing"] == []
    assert moved.json()["elements"]["community_code"] is not None
    back = client.patch(
        f"/addresses/{record['id']}",
        json={"lon": TAIHU[0], "lat": TAIHU[1]},
        headers={**dept.editor, "If-Match": '"2"'},
    )
    assert back.status_code == 200, back.text
    assert back.json()["elements"]["subdistrict_code"] == TAIHU_CODE
    assert back.json()["missing"] == [NO_COMMUNITY, NO_GRID]


def test_reverse_geocoding_there(client: TestClient, hexi_grids: None) -> None:
    answer = client.get("/addresses/reverse", params={"lon": TAIHU[0], "lat": TAIHU[1]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["district"]["code"] == HEXI
    assert body["subdistrict"] == {"level": "subdistrict", "code": TAIHU_CODE, "name": "太湖路街道"}
    assert body["community"] is None and body["grid"] is None
    assert body["missing"] == [NO_COMMUNITY, NO_GRID]
    assert body["estimated"] == [TAIHU_ESTIMATED]


def test_grid_at_a_point_without_a_grid(client: TestClient, hexi_grids: None) -> None:
    answer = client.get("/grids/at", params={"lon": TAIHU[0], "lat": TAIHU[1]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["code"] is None and body["geometry"] is None
    assert (body["district_code"], body["district"]) == (HEXI, "河西区")
    assert (body["subdistrict_code"], body["subdistrict"]) == (TAIHU_CODE, "太湖路街道")
    assert body["community_code"] is None and body["community"] is None
    assert body["missing"] == [NO_COMMUNITY, NO_GRID]
    assert body["estimated"] == [TAIHU_ESTIMATED]
    assert "staff_name" not in body


def test_grid_at_a_point_inside_a_grid(client: TestClient, hexi_grids: None) -> None:
    with session_scope() as session:
        code, lon, lat = session.execute(
            text(
                "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) AS p "
                "FROM grids WHERE source = :s ORDER BY code DESC LIMIT 1) g"
            ),
            {"s": GRID_SOURCE},
        ).one()
    body = client.get("/grids/at", params={"lon": lon, "lat": lat}).json()
    assert body["code"] == code and body["district_code"] == HEXI
    assert body["missing"] == []
    # Reverse geocoding there knows every level and reads the estimates from the areas it
    # found, without the lookup by code that /grids/at makes: both say the same.
    with session_scope() as session:
        found = reverse(session, lon, lat)
    assert found.grid is not None and found.grid["code"] == code
    assert found.explained.missing == []
    assert body["estimated"] == found.explained.estimated


def test_a_community_without_grids_says_so(hexi_grids: None) -> None:
    # 和平区 has communities but (here) no grids: the grid is missing for that reason.
    with session_scope() as session:
        name, lon, lat = session.execute(
            text(
                "SELECT name, ST_X(p), ST_Y(p) FROM (SELECT name, ST_PointOnSurface(geom) AS p "
                "FROM current_admin_areas WHERE level = 'community' "
                "AND code LIKE '120101%' ORDER BY code LIMIT 1) c"
            )
        ).one()
        found = reverse(session, lon, lat)
    assert found.community is not None and found.community["name"] == name
    assert found.explained.missing == [
        {"level": "grid", "reason": f"{name} has no grids on record"}
    ]


def test_estimates_are_named_and_recorded_places_are_not(hexi_grids: None) -> None:
    """The import records which derived outlines rest on a location on record: 85 current
    subdistricts have none (84 without a centroid, one whose centroid lies outside its
    district); a point at the recorded centroid of 大营门街道 gets no subdistrict estimate."""
    with session_scope() as session:
        placements = dict(
            session.execute(
                text(
                    "SELECT coalesce(placement, 'none'), count(*) FROM current_admin_areas "
                    "WHERE level = 'subdistrict' GROUP BY 1"
                )
            )
            .tuples()
            .all()
        )
        assert placements == {"recorded": 214, "spread": 85}
        lon, lat = session.execute(
            text(
                "SELECT ST_X(centroid), ST_Y(centroid) FROM current_admin_areas "
                "WHERE code = '120103001000'"
            )
        ).one()
        found = reverse(session, lon, lat)
    assert found.subdistrict is not None and found.subdistrict["name"] == "大营门街道"
    assert "subdistrict" not in [e["level"] for e in found.explained.estimated]


def _lattice(outline: Any, step: float) -> list[tuple[float, float]]:
    minx, miny, maxx, maxy = outline.bounds
    xs, ys = np.meshgrid(np.arange(minx, maxx, step), np.arange(miny, maxy, step))
    x, y = xs.ravel(), ys.ravel()
    inside = shapely.contains_xy(outline, x, y)
    return list(zip(x[inside].tolist(), y[inside].tolist(), strict=True))


def test_every_point_of_the_city_has_district_and_current_subdistrict(hexi_grids: None) -> None:
    """A lattice over the city outline (about 2 km apart), every 7th community's centroid, and
    the midpoints between neighbouring centroids: each gets a district and a current subdistrict
    of that district, and a community only inside that subdistrict."""
    with session_scope() as session:
        wkb = session.execute(
            text("SELECT ST_AsBinary(geom) FROM current_admin_areas WHERE level = 'province'")
        ).scalar_one()
        outline = shapely.from_wkb(bytes(wkb))
        centroids = session.execute(
            text(
                "SELECT ST_X(centroid), ST_Y(centroid) FROM current_admin_areas "
                "WHERE level = 'community' AND centroid IS NOT NULL ORDER BY code"
            )
        ).all()[::7]
        parents = dict(
            session.execute(
                text("SELECT code, parent_code FROM current_admin_areas WHERE level <> 'province'")
            )
            .tuples()
            .all()
        )
        points = _lattice(outline, 0.02) + [(float(x), float(y)) for x, y in centroids]
        points += [
            ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
            for a, b in itertools.pairwise(centroids)
            if outline.contains(shapely.Point((a[0] + b[0]) / 2, (a[1] + b[1]) / 2))
        ]
        assert len(points) > 2000
        lacking: list[tuple[float, float, list[dict[str, str]]]] = []
        for lon, lat in points:
            found = reverse(session, lon, lat)
            if found.district is None or found.subdistrict is None:
                lacking.append((lon, lat, found.explained.missing))
                continue
            assert parents[found.subdistrict["code"]] == found.district["code"]
            if found.community is not None:
                assert parents[found.community["code"]] == found.subdistrict["code"]
            else:
                assert found.explained.missing[0]["level"] == "community"
            assert all(m["level"] in ("community", "grid") for m in found.explained.missing)
    assert lacking == []


def test_outside_every_district_but_inside_the_extent(hexi_grids: None) -> None:
    """North of 蓟州区, in Hebei (inside the accepted extent): the district is missing and
    said so, and nothing below it is guessed."""
    lon, lat = 117.5, 40.28
    with session_scope() as session:
        inside = session.execute(
            text(
                "SELECT count(*) FROM current_admin_areas WHERE level = 'province' "
                "AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4490))"
            ),
            {"x": lon, "y": lat},
        ).scalar_one()
        assert inside == 0
        found = reverse(session, lon, lat)
    assert (found.district, found.subdistrict, found.community, found.grid) == (None,) * 4
    assert [m["level"] for m in found.explained.missing] == [
        "district",
        "subdistrict",
        "community",
        "grid",
    ]
    assert "outside the boundaries of every district" in found.explained.missing[0]["reason"]


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("get", "/addresses/reverse", {"lon": 100.0, "lat": 30.0}),
        ("get", "/grids/at", {"lon": 100.0, "lat": 30.0}),
        ("get", "/grids/at", {"lon": TAIHU[1], "lat": TAIHU[0]}),  # swapped
        ("post", "/addresses", {}),
    ],
)
def test_a_point_outside_the_city_is_refused(
    client: TestClient, dept: Dept, method: str, path: str, params: dict[str, float]
) -> None:
    if method == "post":
        body = {"district": "河西区", "road": "太湖路", "house_number": "9002", "lon": 100.0}
        before = _addresses()
        answer = client.post(path, json={**body, "lat": 30.0}, headers=dept.editor)
        assert _addresses() == before
    else:
        answer = client.get(path, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "OutsideExtent"


def _addresses() -> int:
    with session_scope() as session:
        return int(session.execute(text("SELECT count(*) FROM addresses")).scalar_one())


def _plan(sql: str, params: dict[str, Any]) -> str:
    """EXPLAIN with sequential scans off: what stays a Seq Scan has no index path at all."""
    with session_scope() as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(session.execute(text("EXPLAIN " + sql), params).scalars())


def test_the_lookups_use_their_indexes(hexi_grids: None) -> None:
    areas = _plan(coverage.AREAS_AT, {"x": TAIHU[0], "y": TAIHU[1]})
    assert "idx_admin_areas_geom" in areas and "Seq Scan on admin_areas" not in areas
    facts = _plan(coverage.FACTS, {"codes": [TAIHU_CODE, "120101001001"]})
    assert "ix_admin_areas_parent_code" in facts and "ix_grids_community_code" in facts
    assert "Seq Scan" not in facts

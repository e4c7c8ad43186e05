"""The demo generator: deterministic for a seed, points inside the areas they name, plausible."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
import shapely
from sqlalchemy import text

from addressbook.areas.import_areas import import_areas
from addressbook.ingest import demo, demo_words
from geo.db import session_scope


@pytest.fixture(scope="module")
def communities(database_url: str) -> demo.Communities:
    with session_scope() as session:
        if not session.execute(
            text("SELECT count(*) FROM admin_areas WHERE source = 'derived-voronoi'")
        ).scalar_one():
            import_areas(session)
    with session_scope() as session:
        return demo.load_communities(session)


def generated(communities: demo.Communities, count: int, seed: int) -> bytes:
    return b"".join(demo.csv_chunks(communities, count, seed))


def test_same_seed_same_file(communities: demo.Communities) -> None:
    first = generated(communities, 5000, 1)
    assert first == generated(communities, 5000, 1)
    assert first != generated(communities, 5000, 2)
    assert first.count(b"\n") == 5001


def test_points_fall_inside_their_district_and_community(communities) -> None:
    rows = list(csv.DictReader(io.StringIO(generated(communities, 20000, 3).decode())))
    with session_scope() as session:
        shapes = {
            (level, name, parent, district): shapely.from_wkb(bytes(wkb))
            for level, name, parent, district, wkb in session.execute(
                text(
                    "SELECT c.level, c.name, coalesce(s.name, ''), coalesce(d.name, ''), "
                    "ST_AsBinary(c.geom) "
                    "FROM current_admin_areas c "
                    "LEFT JOIN current_admin_areas s ON s.code = c.parent_code "
                    "LEFT JOIN current_admin_areas d ON d.code = s.parent_code "
                    "WHERE c.geom IS NOT NULL "
                    "AND c.level IN ('district', 'community')"
                )
            ).tuples()
        }
    x = np.array([float(r["lon"]) for r in rows])
    y = np.array([float(r["lat"]) for r in rows])
    districts = np.array([shapes[("district", r["district"], "天津市", "")] for r in rows])
    assert shapely.contains_xy(districts, x, y).all()
    homes = np.array(
        [shapes[("community", r["community"], r["subdistrict"], r["district"])] for r in rows]
    )
    assert shapely.covers(homes, shapely.points(x, y)).all()


def test_addresses_look_like_tianjin_addresses(communities) -> None:
    rows = list(csv.DictReader(io.StringIO(generated(communities, 20000, 4).decode())))
    keys = {
        (
            r["district"],
            r["road"],
            r["house_number"],
            r["compound"],
            r["building"],
            r["unit"],
            r["room"],
        )
        for r in rows
    }
    assert len(keys) == len(rows)  # no address twice
    suffixes = ("路", "道", "大街", "街", "里", "胡同")
    assert all(r["road"].endswith(suffixes) for r in rows)
    compounds = [r for r in rows if r["compound"]]
    suffixes = demo_words.COMPOUND_SUFFIXES
    assert compounds and all(r["compound"].endswith(suffixes) for r in compounds)
    for r in compounds:
        assert 1 <= int(r["building"]) <= 30 and 1 <= int(r["unit"]) <= 6
        floor, number = divmod(int(r["room"]), 100)
        assert 1 <= floor <= 18 and 1 <= number <= 4
    villages = [r for r in rows if not r["compound"]]
    assert villages and all(r["community"].endswith("村") or r["building"] == "" for r in villages)
    assert all(re.fullmatch(r"[0-9]+", r["house_number"]) for r in rows)


def test_house_numbers_alternate_sides(communities) -> None:
    """Village houses n (odd) and n + 1 face each other across the road, 12 m either side."""
    rows = list(csv.DictReader(io.StringIO(generated(communities, 3000, 6).decode())))
    houses = {
        (r["district"], r["road"], int(r["house_number"])): (float(r["lon"]), float(r["lat"]))
        for r in rows
        if not r["compound"]
    }
    gaps = []
    for (district, road, number), (x, y) in houses.items():
        across = houses.get((district, road, number + 1))
        if number % 2 == 1 and across:
            dx = (across[0] - x) * 111_320 * np.cos(np.radians(y))
            gaps.append(np.hypot(dx, (across[1] - y) * 111_320))
    assert len(gaps) > 100
    # Houses pushed off an odd-shaped village edge stand on the road instead: most face off.
    assert np.mean(np.abs(np.array(gaps) - 24) < 1) > 0.8


def test_grid_codes_follow_their_community(communities) -> None:
    some = communities.where(communities.district == "和平区")
    grids = demo.generate_grids(some, seed=2)
    assert (grids["code"].str.rsplit("-G", n=1).str[0] == grids["community_code"]).all()
    again = demo.generate_grids(some, seed=2)
    assert grids["code"].tolist() == again["code"].tolist()
    assert grids["staff_name"].tolist() == again["staff_name"].tolist()


def test_main_roads_name_the_first_roads_and_change_nothing_else(communities) -> None:
    """`make run`'s sample gives the real main roads (MAIN_ROADS) to the first roads of their
    districts, so the README's 天津市河西区友谊路31号 exists; every other value is the same as
    without them (the generator draws nothing more)."""
    plain = demo.generate(communities, 20000, 1)
    sample = demo.generate(communities, 20000, 1, demo_words.MAIN_ROADS)
    assert plain.drop(columns="road_name").equals(sample.drop(columns="road_name"))
    district = communities.district[sample["comm"].to_numpy()]
    roads = set(zip(district, sample["road_name"], strict=True))
    for name, mains in demo_words.MAIN_ROADS.items():
        assert {(name, road) for road in mains} <= roads, name
    changed = (plain["road_name"] != sample["road_name"]).to_numpy()
    assert np.isin(district[changed], list(demo_words.MAIN_ROADS)).all()

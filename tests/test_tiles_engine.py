"""The tile engine on its own: SQL, composite assembly, caps, simplification, cache keys."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import text

from geo.db import get_engine, session_scope
from geo.sources import LayerSource
from geo.versions import bump, versions
from tests.tiles_fixtures import (
    AREAS,
    CENTRE,
    CODED,
    GRID_SIDE,
    POINTS,
    create_tables,
    decode,
    tile_at,
)
from tiles.cache import MemoryCache, TileCache
from tiles.engine import LayerPlan, TileEngine
from tiles.pool import close_pools, tile_pool
from tiles.sql import query_params
from tiles.tms import Tile


@dataclass
class Engine:
    """A TileEngine driven from synchronous tests, on the module's one event loop (the tile
    pools belong to a loop)."""

    engine: TileEngine
    loop: asyncio.Runner

    def plan(self, sources: Sequence[LayerSource]) -> list[LayerPlan]:
        return self.loop.run(self.engine.plan(sources))

    def render(self, plans: Sequence[LayerPlan], tile: Tile) -> bytes:
        return self.loop.run(self.engine.render(plans, tile))

    def tile(self, sources: Sequence[LayerSource], tile: Tile) -> bytes:
        return self.render(self.plan(sources), tile)

    def etag(self, plans: Sequence[LayerPlan], tile: Tile) -> str:
        return self.engine.etag(plans, tile)


@pytest.fixture(scope="module")
def loop(database_url: str) -> Iterator[asyncio.Runner]:
    create_tables(get_engine())
    with asyncio.Runner() as runner:
        yield runner
        runner.run(close_pools())


def make_engine(loop: asyncio.Runner, max_features: int = 10_000) -> Engine:
    return Engine(TileEngine(TileCache(MemoryCache(16 * 1024 * 1024)), max_features), loop)


@pytest.fixture
def engine(loop: asyncio.Runner) -> Engine:
    return make_engine(loop)


def at_version(source: LayerSource, version: int) -> LayerSource:
    return replace(source, version=version)


def test_point_layer_has_one_mvt_layer_named_by_id_with_properties(engine: Engine) -> None:
    layers = decode(engine.tile([POINTS], tile_at(*CENTRE, 12)))
    assert list(layers) == ["test_points"]
    features = layers["test_points"]["features"]
    assert len(features) == GRID_SIDE * GRID_SIDE
    first = features[0]
    # The integer id is the MVT feature id, not repeated as a property.
    assert set(first["properties"]) == {"name", "kind", "opened"}
    assert isinstance(first["id"], int) and first["id"] > 0
    assert first["properties"]["name"].startswith("点")
    assert first["properties"]["opened"].startswith("2024-")  # dates travel as ISO text
    assert layers["test_points"]["extent"] == 4096


def test_composite_is_the_concatenation_of_single_layer_tiles(engine: Engine) -> None:
    tile = tile_at(*CENTRE, 14)
    points = engine.tile([POINTS], tile)
    areas = engine.tile([AREAS], tile)
    both = engine.tile([POINTS, AREAS], tile)
    assert both == points + areas
    layers = decode(both)
    assert list(layers) == ["test_points", "test_districts"]
    # The layer's fixed filter keeps the subdistrict square out.
    assert [f["properties"]["name"] for f in layers["test_districts"]["features"]] == ["圆区"]


def test_empty_tile_is_empty_bytes(engine: Engine) -> None:
    assert engine.tile([POINTS, AREAS], tile_at(100.0, 30.0, 10)) == b""


def test_feature_cap_per_layer_and_tile(loop: asyncio.Runner) -> None:
    """Past the cap, points become clusters counting every point (tiles.aggregate; the
    details are tests/test_tile_aggregation.py)."""
    capped = make_engine(loop, max_features=25)
    features = decode(capped.tile([POINTS], tile_at(*CENTRE, 12)))["test_points"]["features"]
    assert 0 < len(features) <= 32 * 32
    assert sum(f["properties"]["count"] for f in features) == GRID_SIDE * GRID_SIDE


def _vertices(layers: dict) -> int:
    geometry = layers["test_districts"]["features"][0]["geometry"]
    polygons = geometry["coordinates"]
    if geometry["type"] == "Polygon":
        polygons = [polygons]
    return sum(len(ring) for polygon in polygons for ring in polygon)


def test_polygons_are_simplified_at_low_zoom_points_never(engine: Engine) -> None:
    low = _vertices(decode(engine.tile([AREAS], tile_at(*CENTRE, 9))))
    high = _vertices(decode(engine.tile([AREAS], tile_at(*CENTRE, 15))))
    assert low < 100 < 1000 < high
    assert engine.plan([AREAS])[0].query.simplify
    assert not engine.plan([POINTS])[0].query.simplify


def test_text_ids_stay_properties_without_feature_id(engine: Engine) -> None:
    layers = decode(engine.tile([CODED], tile_at(*CENTRE, 15)))
    (feature,) = layers["test_coded"]["features"]
    assert feature["properties"] == {"id": "A-1"}
    assert feature.get("id") in (None, 0)


async def _explain(text_: str, params: dict[str, object]) -> str:
    pool = await tile_pool()
    async with pool.connection() as conn:
        cursor = await conn.execute("EXPLAIN (VERBOSE) " + text_, params)
        return "\n".join(row[0] for row in await cursor.fetchall())


def test_tile_query_uses_the_gist_index(engine: Engine) -> None:
    """A layer with a Web Mercator copy is searched on that copy's index and transforms
    nothing; a source without one is searched on its storage column's index and transforms the
    rows it found."""
    # A tile holding a few of the table's rows: where an index pays, the plan must use it (on a
    # table this small the planner rightly scans it whole for a tile holding a quarter of it).
    tile = tile_at(*CENTRE, 18)
    for source, index, other, transforms in (
        (POINTS, "points_geom_3857_idx", "points_geom_idx", False),
        (replace(POINTS, mercator_column=None), "points_geom_idx", "points_geom_3857_idx", True),
    ):
        query = engine.plan([source])[0].query
        plan = engine.loop.run(_explain(query.text, query_params(query, tile)))
        assert "Seq Scan" not in plan, plan
        assert index in plan and other not in plan, plan
        # The envelope is computed once (folded to a constant box), not per row.
        assert "st_tileenvelope" not in plan.lower(), plan
        assert ("st_transform" in plan.lower()) == transforms, plan


def _features(data: bytes) -> list[str]:
    """A tile's features, each as one comparable string, in a fixed order (the statements have
    no ORDER BY: rows come in the order of the index that found them)."""
    return sorted(
        repr((name, f.get("id"), f["geometry"], sorted(f["properties"].items())))
        for name, layer in decode(data).items()
        for f in layer["features"]
    )


def test_web_mercator_copy_gives_the_same_features(loop: asyncio.Runner) -> None:
    """Tiles read from the stored Web Mercator copy (layers.storage.MERCATOR_COLUMN) hold the
    features of tiles transformed per row, with the same quantised geometry, at every zoom,
    edges and simplification included."""
    stored, transformed = make_engine(loop), make_engine(loop)
    compared = 0
    for source in (POINTS, AREAS):
        per_row = replace(source, mercator_column=None)
        for z in range(8, 19):
            centre = tile_at(*CENTRE, z)
            for dx in (-1, 0, 1):
                tile = Tile(z, centre.x + dx, centre.y)
                features = _features(stored.tile([source], tile))
                assert features == _features(transformed.tile([per_row], tile)), (source, tile)
                compared += bool(features)
    assert compared > 30


def _version(key: str) -> int:
    with session_scope() as session:
        return versions(session, [key])[key]


def _count(data: bytes) -> int:
    return len(decode(data)["test_points"]["features"])


def test_versions_key_the_cache(engine: Engine) -> None:
    tile = tile_at(*CENTRE, 13)
    before = at_version(POINTS, _version(POINTS.version_key))
    plans = engine.plan([before])
    count = _count(engine.render(plans, tile))
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tiles_test.points (name, kind, geom) "
                "VALUES ('新点', 1, ST_SetSRID(ST_MakePoint(117.2001, 39.1301), 4490))"
            )
        )
    # Same version: the cached tile is served, no query is made.
    assert _count(engine.tile([before], tile)) == count
    with session_scope() as session:
        bump(session, POINTS.version_key)
    after = at_version(POINTS, _version(POINTS.version_key))
    assert after.version == before.version + 1
    new_plans = engine.plan([after])
    assert engine.etag(new_plans, tile) != engine.etag(plans, tile)
    assert _count(engine.render(new_plans, tile)) == count + 1
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM tiles_test.points WHERE name = '新点'"))


def test_etag_is_stable_and_depends_on_layers_versions_and_tile(engine: Engine) -> None:
    tile = tile_at(*CENTRE, 13)
    one = engine.plan([at_version(POINTS, 3), at_version(AREAS, 1)])
    assert engine.etag(one, tile) == engine.etag(one, tile)
    assert engine.etag(one, tile) != engine.etag(one[:1], tile)
    assert engine.etag(one, tile) != engine.etag(one, tile_at(*CENTRE, 14))
    other = engine.plan([at_version(POINTS, 3), at_version(AREAS, 2)])
    assert engine.etag(one, tile) != engine.etag(other, tile)

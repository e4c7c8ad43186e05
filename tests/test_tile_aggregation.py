"""Tiles past the feature cap (issue 12, part 3): clusters, sized drops, complete-from zooms.

A dense point layer and a polygon layer of many sizes are made here in SQL; the engine runs with
a cap of 100 so a few thousand rows overflow it at several zooms. Counts are checked exactly
against PostGIS, tiles decoded with mapbox-vector-tile (the real client library).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.db import get_engine
from geo.sources import LayerSource, Scope
from tests.layers_helpers import collection, layer_id, upload
from tests.tiles_fixtures import decode, tile_at
from tiles.cache import MemoryCache, TileCache
from tiles.engine import TileEngine, tile_engine
from tiles.pool import close_pools, tile_pool
from tiles.sql import DROPPED_SUFFIX, STORED_TILE_SQL, pixel_size, query_params
from tiles.tms import Tile

SCHEMA = "tiles_agg_test"
CENTRE = (117.2, 39.13)
CAP = 100
POINTS_N = 4000
POLYGONS_N = 400
RUN = secrets.token_hex(3)


@pytest.fixture(scope="module")
def loop(database_url: str) -> Iterator[asyncio.Runner]:
    rng = np.random.default_rng(12)
    lon = rng.normal(CENTRE[0], 0.01, POINTS_N)
    lat = rng.normal(CENTRE[1], 0.01, POINTS_N)
    with get_engine().begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        conn.execute(
            text(
                f"CREATE TABLE {SCHEMA}.points (id bigserial PRIMARY KEY, name text, "
                "pop integer, score double precision, geom geometry(Point, 4490) NOT NULL)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.points (name, pop, score, geom) "
                "SELECT 'p' || i, i % 7, i / 4.0, ST_SetSRID(ST_MakePoint(x, y), 4490) "
                "FROM unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) "
                "WITH ORDINALITY AS u(x, y, i)"
            ),
            {"lon": lon.tolist(), "lat": lat.tolist()},
        )
        # Squares of 400 sizes, from 1 m to a few hundred metres, around the centre.
        conn.execute(
            text(
                f"CREATE TABLE {SCHEMA}.squares (id integer PRIMARY KEY, name text, "
                "geom geometry(Polygon, 4490) NOT NULL)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.squares SELECT i, 's' || i, ST_MakeEnvelope("
                ":x + (i % 20) * 0.001, :y + (i / 20) * 0.001, "
                ":x + (i % 20) * 0.001 + i * 0.00001, :y + (i / 20) * 0.001 + i * 0.00001, 4490) "
                "FROM generate_series(1, :n) i"
            ),
            {"x": CENTRE[0] - 0.01, "y": CENTRE[1] - 0.01, "n": POLYGONS_N},
        )
        for table in ("points", "squares"):
            conn.execute(text(f"CREATE INDEX ON {SCHEMA}.{table} USING gist (geom)"))
            conn.execute(text(f"ANALYZE {SCHEMA}.{table}"))
    with asyncio.Runner() as runner:
        yield runner
        runner.run(close_pools())


POINTS = LayerSource(
    id=f"agg_points_{RUN}",
    title="dense points",
    table=f"{SCHEMA}.points",
    geometry_type="Point",
    properties={"name": "string", "pop": "integer", "score": "number"},
    version_key=f"agg_points_{RUN}",
    version=1,
)
SQUARES = LayerSource(
    id=f"agg_squares_{RUN}",
    title="squares",
    table=f"{SCHEMA}.squares",
    geometry_type="Polygon",
    properties={"name": "string"},
    version_key=f"agg_squares_{RUN}",
    version=1,
)


@pytest.fixture
def engine() -> TileEngine:
    return TileEngine(TileCache(MemoryCache(16 * 1024 * 1024)), CAP, cluster_max_zoom=19)


def render(loop: asyncio.Runner, engine: TileEngine, source: LayerSource, tile: Tile) -> bytes:
    async def go() -> bytes:
        return await engine.render(await engine.plan([source]), tile)

    return loop.run(go())


def in_tile(source: LayerSource, tile: Tile) -> tuple[int, int]:
    """Points of the source inside the tile (half-open, as the cells are cut) and their `pop`."""
    where = f" AND ({source.where})" if source.where else ""
    with get_engine().connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(pop), 0) FROM "
                f"(SELECT ST_Transform(geom, 3857) AS p, pop FROM {source.table} "
                f"WHERE true{where}) AS s, ST_TileEnvelope(:z, :x, :y) AS e "
                "WHERE ST_X(p) >= ST_XMin(e) AND ST_X(p) < ST_XMax(e) "
                "AND ST_Y(p) > ST_YMin(e) AND ST_Y(p) <= ST_YMax(e)"
            ),
            {"z": tile.z, "x": tile.x, "y": tile.y},
        ).one()
    return int(row[0]), int(row[1])


def tiles_around(z: int) -> list[Tile]:
    centre = tile_at(*CENTRE, z)
    return [Tile(z, centre.x + dx, centre.y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


def test_sum_of_counts_equals_the_points_in_each_tile(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    clustered = 0
    for z in (8, 11, 13, 14):
        for tile in tiles_around(z):
            count, pop = in_tile(POINTS, tile)
            layers = decode(render(loop, engine, POINTS, tile))
            features = layers.get(POINTS.id, {"features": []})["features"]
            if not features or "count" not in features[0]["properties"]:
                continue  # a tile under the cap, checked below
            clustered += 1
            assert len(features) <= 32 * 32
            assert sum(f["properties"]["count"] for f in features) == count
            assert sum(f["properties"]["sum_pop"] for f in features) == pop
            assert all(f["geometry"]["type"] == "Point" for f in features)
            assert set(features[0]["properties"]) == {"count", "sum_pop", "sum_score"}
    assert clustered >= 6


def test_a_tile_under_the_cap_is_the_plain_tile_byte_for_byte(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    """The statement as it was before clustering (LIMIT cap, no probe), written out."""
    tile = Tile(16, tile_at(*CENTRE, 16).x + 3, tile_at(*CENTRE, 16).y)
    (plan,) = loop.run(engine.plan([POINTS]))
    old = (
        "SELECT ST_AsMVT(t, %(name)s, 4096, 'geom', '__fid') FROM ("
        'SELECT "id" AS "__fid", "name" AS "name", "pop" AS "pop", "score" AS "score", '
        "ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s), "
        f"4096, 64, true) AS geom FROM {SCHEMA}.points WHERE geom && ST_Transform("
        "ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4490) "
        f"LIMIT {CAP}) AS t"
    )

    async def before() -> bytes:
        pool = await tile_pool()
        async with pool.connection() as conn:
            params = query_params(plan.query, tile) | {"name": POINTS.id}
            row = await (await conn.execute(old, params, binary=True)).fetchone()
            return bytes(row[0])

    expected = loop.run(before())
    features = decode(expected)[POINTS.id]["features"]
    assert 0 < len(features) < CAP
    assert render(loop, engine, POINTS, tile) == expected


def test_polygons_past_the_cap_keep_the_largest_and_count_the_others(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    tile = tile_at(*CENTRE, 12)
    layers = decode(render(loop, engine, SQUARES, tile))
    kept = layers[SQUARES.id]["features"]
    assert len(kept) == CAP
    (note,) = layers[SQUARES.id + DROPPED_SUFFIX]["features"]
    assert note["properties"] == {"dropped": POLYGONS_N - CAP}
    # Smallest first: the squares kept are the CAP largest (their ids, as sizes grow with id).
    assert sorted(f["id"] for f in kept) == list(range(POLYGONS_N - CAP + 1, POLYGONS_N + 1))
    # Zoomed in, under the cap, no count layer.
    close = tile_at(CENTRE[0] - 0.0095, CENTRE[1] - 0.0095, 17)
    assert list(decode(render(loop, engine, SQUARES, close))) == [SQUARES.id]


def test_points_past_the_cap_beyond_the_cluster_zooms_keep_the_cap(loop: asyncio.Runner) -> None:
    """Beyond GEO_TILE_CLUSTER_MAX_ZOOM there are no clusters: the cap of the points is kept and
    the others counted (a point has no size, so no pixel rule drops it)."""
    shallow = TileEngine(TileCache(MemoryCache(1024 * 1024)), CAP, cluster_max_zoom=10)
    tile = tile_at(*CENTRE, 12)
    inside = count_in_read_box(POINTS, tile)
    assert inside > CAP
    layers = decode(render(loop, shallow, POINTS, tile))
    assert len(layers[POINTS.id]["features"]) == CAP
    (note,) = layers[POINTS.id + DROPPED_SUFFIX]["features"]
    assert note["properties"] == {"dropped": inside - CAP}


def count_in_read_box(source: LayerSource, tile: Tile) -> int:
    """Rows of the source in the box a tile statement reads (the tile and its margin)."""
    with get_engine().connect() as conn:
        return int(
            conn.execute(
                text(
                    f"SELECT count(*) FROM {source.table} WHERE geom && ST_Transform("
                    "ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096), 4490)"
                ),
                {"z": tile.z, "x": tile.x, "y": tile.y},
            ).scalar_one()
        )


@pytest.mark.parametrize("z", [8, 9, 10])
def test_polygons_past_the_cap_below_a_pixel_are_dropped_even_with_room(
    loop: asyncio.Runner, engine: TileEngine, z: int
) -> None:
    """Square i is i * 0.00001 degrees wide. Past the cap only those at least a pixel wide are
    drawn, the largest first, whether the build chose them or the request did: at z8 a pixel
    (about 0.0043 degrees here) is wider than every square, and none is drawn."""
    tile = tile_at(*CENTRE, z)
    pixel = pixel_size(tile)
    wide = [i for i in range(1, POLYGONS_N + 1) if i * 1e-5 >= pixel]
    smallest = wide[0] if wide else POLYGONS_N + 1
    expected = list(range(max(smallest, POLYGONS_N - CAP + 1), POLYGONS_N + 1))
    assert len(expected) == {8: 0, 9: CAP, 10: CAP}[z]
    (plan,) = loop.run(engine.plan([SQUARES]))
    chosen_now = decode(_direct(loop, plan.query.drop_text, query_params(plan.query, tile)))
    loop.run(engine.build(plan))
    for layers in (decode(render(loop, engine, SQUARES, tile)), chosen_now):
        kept = layers.get(SQUARES.id, {"features": []})["features"]
        assert sorted(f["id"] for f in kept) == expected
        (note,) = layers[SQUARES.id + DROPPED_SUFFIX]["features"]
        assert note["properties"] == {"dropped": POLYGONS_N - len(expected)}


def _true_complete_from_zoom(source: LayerSource) -> int:
    """Brute force: the lowest zoom at which every tile, with its 64-unit margin, holds at most
    the cap (points in 3857, counted per tile in numpy)."""
    with get_engine().connect() as conn:
        xy = np.array(
            conn.execute(
                text(
                    f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(geom, 3857) AS p "
                    f"FROM {source.table}) AS s"
                )
            ).all()
        )
    world = 20037508.342789244
    for z in range(0, 23):
        size = 2 * world / 2**z
        margin = size * 64 / 4096
        fx = (xy[:, 0] + world) / size
        fy = (world - xy[:, 1]) / size
        worst = 0
        for tx, ty in set(zip(fx.astype(int).tolist(), fy.astype(int).tolist(), strict=True)):
            inside = (
                (fx >= tx - margin / size)
                & (fx <= tx + 1 + margin / size)
                & (fy >= ty - margin / size)
                & (fy <= ty + 1 + margin / size)
            )
            worst = max(worst, int(inside.sum()))
        if worst <= CAP:
            return z
    raise AssertionError("never complete")


def test_complete_from_zoom_is_conservative_and_close(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    reported = loop.run(engine.complete_from_zoom(POINTS))
    truth = _true_complete_from_zoom(POINTS)
    assert reported is not None, truth
    assert truth <= reported <= truth + 1
    # From that zoom on, no tile around the centre is clustered.
    for tile in tiles_around(reported):
        layers = decode(render(loop, engine, POINTS, tile))
        for layer in layers.values():
            assert all("count" not in f["properties"] for f in layer["features"])


def test_clusters_come_only_from_the_callers_scope(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    """A grant narrowed to the west half and without `score`: its clusters count and sum only
    those points, and no cluster or cached tile of the whole layer is served to it."""
    scoped = replace(
        POINTS,
        properties={"name": "string", "pop": "integer"},
        where="ST_X(geom) < 117.2",
        scope=Scope(grant_id=987, level="view", area="west", hidden=("score",)),
    )
    tile = tile_at(*CENTRE, 11)
    whole = decode(render(loop, engine, POINTS, tile))[POINTS.id]["features"]
    part = decode(render(loop, engine, scoped, tile))[POINTS.id]["features"]
    count, pop = in_tile(scoped, tile)
    assert count < in_tile(POINTS, tile)[0]
    assert sum(f["properties"]["count"] for f in part) == count
    assert sum(f["properties"]["sum_pop"] for f in part) == pop
    assert all("sum_score" not in f["properties"] for f in part)
    assert sum(f["properties"]["count"] for f in whole) != count
    plans = loop.run(engine.plan([POINTS, scoped]))
    assert plans[0].key(tile) != plans[1].key(tile)


def test_a_new_version_is_a_new_build(loop: asyncio.Runner, engine: TileEngine) -> None:
    first = loop.run(engine.build(loop.run(engine.plan([POINTS]))[0]))
    second = loop.run(engine.build(loop.run(engine.plan([replace(POINTS, version=2)]))[0]))
    assert first.id != second.id
    with get_engine().connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM tile_cluster_builds WHERE id = :id"), {"id": first.id}
        ).scalar_one()
    assert left == 0  # the older version's build and its cells are gone


def test_clustered_tile_reads_one_primary_key_range(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    """A z10 tile of a large layer must stay a few hundred index rows, never a scan."""
    (plan,) = loop.run(engine.plan([POINTS]))
    built = loop.run(engine.build(plan))
    tile = tile_at(*CENTRE, 10)
    assert plan.query.cluster_text is not None

    async def explain() -> str:
        pool = await tile_pool()
        async with pool.connection() as conn:
            await conn.execute("ANALYZE tile_clusters")
            cursor = await conn.execute(
                "EXPLAIN " + plan.query.cluster_text,
                {"build": built.id, "z": tile.z, "x": tile.x, "y": tile.y},
            )
            return "\n".join(row[0] for row in await cursor.fetchall())

    shown = loop.run(explain())
    assert "tile_clusters_pkey" in shown, shown
    assert "Seq Scan" not in shown, shown


def test_tilejson_says_from_which_zoom_each_layer_is_complete(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    """Through the API with the service's cap (10,000): a layer of 10,500 points on a short
    line is complete only from a deep zoom; its low-zoom tile is clusters counting them all."""
    lid = layer_id("agg")
    n = 10_500
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [117.2 + i * 2e-6, 39.13 + i * 1e-6]},
            "properties": {"v": i % 10},
        }
        for i in range(n)
    ]
    r = upload(client, admin_headers, lid, collection(features), access="public")
    assert r.status_code == 201, r.text
    doc = client.get(f"/tiles/{lid}/tilejson.json").json()
    (layer,) = doc["vector_layers"]
    zoom = layer["complete_from_zoom"]
    assert isinstance(zoom, int) and 10 <= zoom <= 18
    tile = tile_at(117.2 + n * 1e-6, 39.13 + n * 5e-7, 8)
    response = client.get(f"/tiles/{lid}/{tile.z}/{tile.x}/{tile.y}.mvt")
    assert response.status_code == 200
    clusters = decode(response.content)[lid]["features"]
    assert sum(f["properties"]["count"] for f in clusters) == n
    assert sum(f["properties"]["sum_v"] for f in clusters) == sum(i % 10 for i in range(n))
    assert tile_engine().max_features == 10_000
    # The style draws the clusters apart from plain points, sized and labelled by count.
    layers = {layer["id"]: layer for layer in client.get(f"/styles/{lid}.json").json()["layers"]}
    assert layers[f"{lid}-cluster"]["filter"][-1] == ["has", "count"]
    assert layers[f"{lid}-circle"]["filter"][-1] == ["!", ["has", "count"]]
    assert layers[f"{lid}-cluster-count"]["layout"]["text-field"] == ["to-string", ["get", "count"]]


# -- lines and polygons: the build chooses each over-full tile's features once ------------------


def _direct(loop: asyncio.Runner, text_: str, params: dict[str, object]) -> bytes:
    async def go() -> bytes:
        pool = await tile_pool()
        async with pool.connection() as conn:
            row = await (await conn.execute(text_, params, binary=True)).fetchone()
            return bytes(row[0]) if row and row[0] is not None else b""

    return loop.run(go())


def test_kept_tiles_from_the_build_equal_the_features_chosen_per_request(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    """Every tile the build lists and stores is byte for byte the tile the per-request choice
    makes (the cap largest, ties by id, and the count of the others), and the engine serves
    it."""
    (plan,) = loop.run(engine.plan([SQUARES]))
    built = loop.run(engine.build(plan))
    zooms = {z for z, _, _ in built.over}
    assert len(zooms) >= 3, built.over
    for z, x, y in sorted(built.over):
        tile = Tile(z, x, y)
        chosen_now = _direct(loop, plan.query.drop_text, query_params(plan.query, tile))
        from_build = _direct(loop, *engine.over_statement(plan, tile, built))
        assert from_build == chosen_now, tile
        assert render(loop, engine, SQUARES, tile) == chosen_now
        layers = decode(from_build)
        (note,) = layers[SQUARES.id + DROPPED_SUFFIX]["features"]
        assert note["properties"]["dropped"] > 0


class Statements:
    """The statements the tile pool sends (the real ones, recorded on their way)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import psycopg

        self.sent: list[str] = []
        original = psycopg.AsyncCursor.execute

        async def recorded(cursor: psycopg.AsyncCursor, query: object, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.sent.append(str(query))
            return await original(cursor, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.AsyncCursor, "execute", recorded)


def test_a_tile_the_build_lists_is_one_statement_without_the_cap_probe(
    loop: asyncio.Runner, engine: TileEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for source in (SQUARES, POINTS):
        (plan,) = loop.run(engine.plan([source]))
        built = loop.run(engine.build(plan))
        tile = Tile(*min(built.over))
        statements = Statements(monkeypatch)
        data = render(loop, engine, source, tile)
        expected = STORED_TILE_SQL if source is SQUARES else plan.query.cluster_text
        assert statements.sent == [expected], source.id
        monkeypatch.undo()
        # The same bytes as the probe-first path of a worker that has no build yet.
        fresh = TileEngine(TileCache(MemoryCache(1024 * 1024)), CAP, cluster_max_zoom=19)
        assert render(loop, fresh, source, tile) == data
        # Lines and polygons did not wait for it: it was started, and is the same build.
        loop.run(fresh.builds_started())
        (fresh_plan,) = loop.run(fresh.plan([source]))
        assert fresh.builds.known(source, fresh_plan.query.recipe) == built


def test_the_builds_tile_list_is_exact(loop: asyncio.Runner, engine: TileEngine) -> None:
    """Every listed tile is over the cap by the tile statement's own probe. Around the centre,
    every tile over the cap is listed while the squares fit in a cell (the largest is 0.004
    degrees: to z11); deeper, a tile filled by large squares from beyond its edge cells may be
    unlisted, and is then chosen per request, the same bytes."""
    (plan,) = loop.run(engine.plan([SQUARES]))
    built = loop.run(engine.build(plan))

    def over(tile: Tile) -> bool:
        async def go() -> bool:
            pool = await tile_pool()
            async with pool.connection() as conn:
                cursor = await conn.execute(plan.query.text, query_params(plan.query, tile))
                row = await cursor.fetchone()
                return bool(row and row[1])

        return loop.run(go())

    assert all(over(Tile(*t)) for t in built.over)
    assert built.complete_from_zoom is not None
    for z in range(3, built.complete_from_zoom):
        for tile in tiles_around(z):
            listed = (tile.z, tile.x, tile.y) in built.over
            if z <= 11:
                assert over(tile) == listed, tile
            elif over(tile) and not listed:
                chosen_now = _direct(loop, plan.query.drop_text, query_params(plan.query, tile))
                assert render(loop, engine, SQUARES, tile) == chosen_now


def test_kept_tiles_come_only_from_the_callers_scope(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    """A grant showing the even squares: its build keeps and counts only those, and is not the
    whole layer's build."""
    scoped = replace(
        SQUARES, where="id % 2 = 0", scope=Scope(grant_id=988, level="view", area="even")
    )
    (plan,) = loop.run(engine.plan([scoped]))
    (whole,) = loop.run(engine.plan([SQUARES]))
    built = loop.run(engine.build(plan))
    assert built.id != loop.run(engine.build(whole)).id
    tile = tile_at(*CENTRE, 12)
    assert (tile.z, tile.x, tile.y) in built.over
    layers = decode(render(loop, engine, scoped, tile))
    assert len(layers[scoped.id]["features"]) == CAP
    assert all(f["id"] % 2 == 0 for f in layers[scoped.id]["features"])
    (note,) = layers[scoped.id + DROPPED_SUFFIX]["features"]
    assert note["properties"] == {"dropped": POLYGONS_N // 2 - CAP}


def test_a_stored_tile_is_one_primary_key_read(loop: asyncio.Runner, engine: TileEngine) -> None:
    """A z0 tile of any layer stays one index read, never a scan of the layer or of the
    build's tiles."""
    (plan,) = loop.run(engine.plan([SQUARES]))
    built = loop.run(engine.build(plan))
    tile = Tile(*min(built.over))
    text_, params = engine.over_statement(plan, tile, built)
    assert text_ == STORED_TILE_SQL

    async def explain() -> str:
        pool = await tile_pool()
        async with pool.connection() as conn:
            await conn.execute("ANALYZE tile_over_cap")
            cursor = await conn.execute("EXPLAIN " + text_, params)
            return "\n".join(row[0] for row in await cursor.fetchall())

    shown = loop.run(explain())
    assert "tile_over_cap_pkey" in shown, shown
    assert "squares" not in shown, shown
    assert "Seq Scan" not in shown, shown


def test_a_tile_on_the_antimeridian_reads_nothing_from_the_other_side(
    loop: asyncio.Runner, engine: TileEngine
) -> None:
    """The margin of a tile at 180 degrees must not wrap to -180 and read the whole world (it
    did: the z3 tile east of Tianjin's said it dropped 300 squares it could not show)."""
    for tile in (Tile(3, 7, 3), Tile(3, 0, 3), Tile(5, 31, 12)):
        assert render(loop, engine, SQUARES, tile) == b"", tile
        assert render(loop, engine, POINTS, tile) == b"", tile

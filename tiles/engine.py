"""Tiles for a list of layers: plan (queries and cache keys), ETag, render through the cache.

A composite tile is the concatenation of its layers' single-layer tiles, in the order asked:
each ST_AsMVT result is a protobuf message whose only fields are `layers` entries, and protobuf
messages concatenate into the message holding all their fields. Each layer's tile is cached on
its own, keyed by that layer's data version, so an edit of one layer re-renders only that
layer's part of every composite it appears in.

A layer's tile past GEO_TILE_MAX_FEATURES is never truncated silently (tiles.aggregate): its
statement says `over`, and the tile is made again as clusters (points, from the layer version's
build) or as the largest features with a count of the dropped ones (lines, polygons: chosen by
the build, which stores the tiles it lists, or per request for a tile it did not list). A tile
the build lists as over the cap skips that first statement: its clustered or stored tile is the
only statement sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from psycopg.types.numeric import Int8

from geo.metrics import TILE_CACHE
from geo.sources import LayerSource
from tiles.aggregate import Build, Builds, cluster_statement, is_point_layer
from tiles.cache import DiskCache, MemoryCache, TileCache, TileKey
from tiles.pool import tile_pool
from tiles.settings import tile_settings
from tiles.sql import ID_TYPE_SQL, STORED_TILE_SQL, LayerQuery, build_query, query_params
from tiles.tms import Tile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerPlan:
    source: LayerSource
    version: int
    query: LayerQuery

    def key(self, tile: Tile) -> TileKey:
        return TileKey(self.source.id, self.version, self.query.recipe, tile.z, tile.x, tile.y)


def _signature(source: LayerSource) -> tuple[object, ...]:
    """What shapes a layer's SQL; a source described differently gets a new statement."""
    return (
        source.id,
        source.table,
        source.geometry_column,
        source.mercator_column,
        source.id_column,
        source.geometry_type,
        tuple(source.properties.items()),
        source.where,
        source.scope_key(),
    )


class TileEngine:
    def __init__(self, cache: TileCache, max_features: int, cluster_max_zoom: int = 16) -> None:
        self.cache = cache
        self.max_features = max_features
        self.cluster_max_zoom = cluster_max_zoom
        self.builds = Builds()
        # Filled from the event loop only: no lock needed.
        self._queries: dict[tuple[object, ...], LayerQuery] = {}
        # Builds started in the background (lines and polygons), by layer, version and recipe.
        self._building: dict[tuple[str, int, str], asyncio.Task[Build]] = {}

    async def _query(self, source: LayerSource) -> LayerQuery:
        """Built once per layer description (the id column's type needs one catalogue look)."""
        signature = _signature(source)
        query = self._queries.get(signature)
        if query is None:
            pool = await tile_pool()
            async with pool.connection() as conn:
                cursor = await conn.execute(ID_TYPE_SQL, (source.table, source.id_column))
                row = await cursor.fetchone()
            clusters = cluster_statement(source) if is_point_layer(source) else None
            query = build_query(source, row[0] if row else "", self.max_features, clusters)
            self._queries[signature] = query
        return query

    async def integer_id(self, source: LayerSource) -> bool:
        return (await self._query(source)).integer_id

    async def plan(self, sources: Sequence[LayerSource]) -> list[LayerPlan]:
        """Sources carry the data version read for this request: reading it per request
        (never caching it) is what makes an edit in any worker invalidate the layer's tiles in
        every worker at once."""
        return [LayerPlan(s, s.version, await self._query(s)) for s in sources]

    @staticmethod
    def etag(plans: Sequence[LayerPlan], tile: Tile) -> str:
        """A strong ETag: the same layers at the same versions and tile are the same bytes."""
        digest = hashlib.blake2b(digest_size=12)
        for plan in plans:
            key = plan.key(tile)
            digest.update(f"{key.layer}\0{key.version}\0{key.recipe}\0".encode())
        digest.update(str(tile).encode())
        return f'"{digest.hexdigest()}"'

    async def build(self, plan: LayerPlan) -> Build:
        """The layer version's cluster build for this recipe (made on first need, in a thread:
        it may take seconds on a large layer, once per version)."""
        known = self.builds.known(plan.source, plan.query.recipe)
        if known is not None:
            return known
        return await asyncio.to_thread(
            self.builds.get, plan.source, plan.query, self.max_features, self.cluster_max_zoom
        )

    def build_soon(self, plan: LayerPlan) -> None:
        """Start the build in the background, once per key (from the event loop only)."""
        key = (plan.source.id, plan.version, plan.query.recipe)
        if key in self._building:
            return

        def done(task: asyncio.Task[Build]) -> None:
            self._building.pop(key, None)
            if not task.cancelled() and task.exception() is not None:
                # Tiles go on being chosen per request; the next one past the cap tries again.
                logger.warning("tile build of %s failed: %r", key, task.exception())

        task = asyncio.get_running_loop().create_task(self.build(plan))
        self._building[key] = task
        task.add_done_callback(done)

    async def builds_started(self) -> None:
        """Wait for the background builds (tests)."""
        await asyncio.gather(*self._building.values())

    async def complete_from_zoom(self, source: LayerSource) -> int | None:
        """The lowest zoom at which no tile of the layer exceeds the cap (TileJSON)."""
        (plan,) = await self.plan([source])
        return (await self.build(plan)).complete_from_zoom

    def known_over(self, plan: LayerPlan, tile: Tile) -> bool:
        """Whether this worker's build of the layer lists the tile as over the cap."""
        built = self.builds.known(plan.source, plan.query.recipe)
        return built is not None and (tile.z, tile.x, tile.y) in built.over

    def over_statement(
        self, plan: LayerPlan, tile: Tile, built: Build | None
    ) -> tuple[str, dict[str, object]]:
        """The statement of a tile past the cap: clusters while the build has them, the tile
        of kept features the build made, otherwise the largest features chosen now and the
        count of the others."""
        query = plan.query
        params = query_params(query, tile)
        if built is not None and tile.z <= self.cluster_max_zoom:
            # Both statements read the build's rows of this tile by primary key.
            from_build = {"build": Int8(built.id), **{k: params[k] for k in ("z", "x", "y")}}
            complete = built.complete_from_zoom
            if query.cluster_text is not None and (complete is None or tile.z < complete):
                return query.cluster_text, from_build
            if query.kept_text is not None and (tile.z, tile.x, tile.y) in built.over:
                return STORED_TILE_SQL, from_build
        return query.drop_text, params

    async def _over_cap(self, plan: LayerPlan, tile: Tile) -> bytes:
        """Points wait for their build (only it has clusters). Lines and polygons do not: until
        the build of a new version is made (seconds on a large layer, every tile past the cap
        of the layer would wait for it after each edit), their features are chosen per request,
        the same bytes."""
        query = plan.query
        built = None
        if tile.z <= self.cluster_max_zoom:
            if query.cluster_text is not None:
                built = await self.build(plan)
            elif query.kept_text is not None:
                built = self.builds.known(plan.source, query.recipe)
                if built is None:
                    self.build_soon(plan)
        text, params = self.over_statement(plan, tile, built)
        pool = await tile_pool()
        async with pool.connection() as conn:
            cursor = await conn.execute(text, params, prepare=True, binary=True)
            row = await cursor.fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    async def render(self, plans: Sequence[LayerPlan], tile: Tile) -> bytes:
        """The composite tile, from the cache where it can, from the database for the rest."""
        parts: list[bytes | None] = [self.cache.get(p.key(tile)) for p in plans]
        missing = [i for i, part in enumerate(parts) if part is None]
        TILE_CACHE.labels("hit").inc(len(parts) - len(missing))
        TILE_CACHE.labels("miss").inc(len(missing))
        over = [i for i in missing if self.known_over(plans[i], tile)]
        probe = [i for i in missing if i not in over]
        if probe:
            pool = await tile_pool()
            async with pool.connection() as conn:
                for i in probe:
                    query = plans[i].query
                    cursor = await conn.execute(
                        query.text, query_params(query, tile), prepare=True, binary=True
                    )
                    row = await cursor.fetchone()
                    if row is not None and row[1]:
                        over.append(i)
                        continue
                    data = bytes(row[0]) if row and row[0] is not None else b""
                    self.cache.put(plans[i].key(tile), data)
                    parts[i] = data
        # Outside the connection: a first build may take a while, and needs none of the pool's.
        for i in over:
            data = await self._over_cap(plans[i], tile)
            self.cache.put(plans[i].key(tile), data)
            parts[i] = data
        return b"".join(p for p in parts if p)


@lru_cache
def tile_engine() -> TileEngine:
    """The worker's engine, its cache sized and placed by the tile settings."""
    settings = tile_settings()
    root = settings.disk_cache_dir
    cache = TileCache(
        MemoryCache(settings.cache_mb * 1024 * 1024), DiskCache(root) if root else None
    )
    return TileEngine(cache, settings.max_features, settings.cluster_max_zoom)

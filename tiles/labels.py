"""Label points for named polygon layers (the admin areas): one point per area, inside it.

Why not label the tile polygons: MapLibre places a polygon's label once per tile the polygon
touches, so a district spanning four tiles shows its name four times. One point per area
(ST_PointOnSurface, always inside even for concave shapes) is labelled exactly once. The points
are served as one small GeoJSON document per layer set (16 districts, a few hundred
subdistricts), keyed and ETagged by the layers' data versions like the tiles.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import orjson
from cachetools import LRUCache
from psycopg import sql

from geo.sources import LayerSource
from tiles.pool import tile_pool
from tiles.settings import tile_settings

LABEL_PROPERTY = "name"
_DOCUMENTS_KEPT = 64


def labelled(sources: Sequence[LayerSource]) -> list[LayerSource]:
    """The layers that get label points: polygon layers with a `name` property."""
    return [
        s
        for s in sources
        if s.geometry_type.lower().removeprefix("multi") == "polygon"
        and LABEL_PROPERTY in s.properties
    ]


def _query(source: LayerSource, limit: int) -> str:
    where = sql.SQL(f" AND ({source.where.replace('%', '%%')})") if source.where else sql.SQL("")
    statement = sql.SQL(
        "SELECT ST_X(p), ST_Y(p), n FROM (SELECT ST_PointOnSurface({geom}) AS p, {name} AS n "
        "FROM {table} WHERE {name} IS NOT NULL AND {geom} IS NOT NULL{where} LIMIT {limit}) t"
    ).format(
        geom=sql.Identifier(source.geometry_column),
        name=sql.Identifier(LABEL_PROPERTY),
        table=sql.SQL(source.table),
        where=where,
        limit=sql.Literal(limit),
    )
    return statement.as_string(None)


def etag(sources: Sequence[LayerSource]) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for source in sources:
        digest.update(f"{source.id}\0{source.version}\0{source.scope_key()}\0".encode())
    return f'"l{digest.hexdigest()}"'


class LabelDocuments:
    """GeoJSON label documents, rendered once per (layers, versions); the most recently used
    ones kept (a cachetools LRUCache, not thread-safe: every access holds the lock)."""

    def __init__(self) -> None:
        self._documents: LRUCache[str, bytes] = LRUCache(_DOCUMENTS_KEPT)
        self._lock = threading.Lock()

    async def get(self, sources: Sequence[LayerSource]) -> bytes:
        key = etag(sources)
        with self._lock:
            document = self._documents.get(key)
        if document is None:
            document = await self._render(labelled(sources))
            with self._lock:
                self._documents[key] = document
        return document

    @staticmethod
    async def _render(sources: Sequence[LayerSource]) -> bytes:
        features = []
        limit = tile_settings().max_features
        pool = await tile_pool()
        async with pool.connection() as conn:
            for source in sources:
                cursor = await conn.execute(_query(source, limit))
                for x, y, name in await cursor.fetchall():
                    features.append(
                        {
                            "type": "Feature",
                            "geometry": {"type": "Point", "coordinates": [x, y]},
                            "properties": {"layer": source.id, "name": name},
                        }
                    )
        return orjson.dumps({"type": "FeatureCollection", "features": features})


label_documents = LabelDocuments()

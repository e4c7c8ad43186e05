"""Offline packages (离线包) for isolated government networks (政务内网): a set of layers' tiles
over an area and a zoom range, in one PMTiles v3 archive.

The tiles are rendered by the service's own engine (tiles.engine: plan, then render, through the
tile cache), so every tile in an archive is the tile `GET /tiles/{layers}/{z}/{x}/{y}.mvt` serves
at the same layer versions, byte for byte (the tests compare them); the one way they can differ is
the order of features, should the database pick another plan for the tile SQL in between (it has
no ORDER BY). Empty tiles (the API's 204) are left out. Tiles are stored gzip-compressed
(the header says so, and MapLibre's pmtiles protocol and the reader library inflate them).

Bounded: the tile count follows from the area and the zooms alone, so an export over
GEO_PMTILES_MAX_TILES is refused before any tile is made. Memory stays bounded too: tiles are
rendered zoom by zoom in tile-id order (the order the archive's directory is sorted in, which
lets the writer store it `clustered` and merge runs of equal tiles) with a small window of
renders in flight, and each tile goes to the writer's temporary file in the spool as soon as it
is made; what stays in memory is the directory (a few dozen bytes per non-empty tile) and one
zoom's list of tile ids.

The work runs on an event loop of its own (the engine and the tile pool are async), so callers
run :func:`export_archive` in a thread (the HTTP route) or at the console (`geo tiles export`).
"""

from __future__ import annotations

import asyncio
import gzip
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from psycopg import sql
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request

from geo import spool
from geo.auth import Principal
from geo.db import session_scope
from geo.errors import ApiError
from geo.extent import Bounds
from geo.sources import LayerSource
from layers.catalogue import audit_read, readable_sources
from tiles import styles
from tiles.engine import LayerPlan, tile_engine
from tiles.pool import close_pools, tile_pool
from tiles.sql import STORAGE_SRID
from tiles.tilejson import vector_layer
from tiles.tms import MAX_ZOOM, MIN_ZOOM, Tile, tile_matrix_set
from tiles.urls import layer_list

MEDIA_TYPE = "application/vnd.pmtiles"
# Renders in flight at once: enough to keep the database busy on 2 cores, few enough to leave
# the tile pool to the map's own requests.
WINDOW = 4
# Web Mercator's latitude limit: beyond it there are no tiles.
MAX_LAT = 85.05112878
# morecantile's own nudge (TileMatrixSet.tiles): an edge on a tile boundary takes no tile beyond.
EPSILON = 1e-14
# The exact extent, not TileJSON's estimate (tiles.tilejson.layers_bounds): the planner's
# estimate comes from a sample of the rows, and an offline package must not lose the features
# at its edges. A full scan per layer, seconds at most next to the export itself.
EXTENT_SQL = (
    "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM ("
    "SELECT ST_Transform(ST_SetSRID(ST_Extent({geom})::geometry, {srid}), 4326) AS b "
    "FROM {relation} AS r) AS s"
)


class ExportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Tiles an archive may address (empty ones included): Tianjin at z8-16 is about 134,000.
    max_tiles: int = Field(default=250_000, ge=1, validation_alias="GEO_PMTILES_MAX_TILES")


@lru_cache
def export_settings() -> ExportSettings:
    return ExportSettings()


# tiles.styles makes a style for a request (its URLs name the server asked); an archive is its own
# source, so the style is made for this placeholder address and only its layers are kept.
_PLACEHOLDER_REQUEST = {
    "type": "http",
    "method": "GET",
    "scheme": "http",
    "server": ("offline.invalid", 80),
    "path": "/",
    "root_path": "",
    "query_string": b"",
    "headers": [],
}


@dataclass(frozen=True)
class Summary:
    """What an export made: tiles looked at, tiles written, archive bytes."""

    addressed: int
    written: int
    size: int


def _bad(name: str, raw: str, why: str) -> ApiError:
    return ApiError(400, "InvalidParameterValue", why, {"parameter": name, "value": raw})


def parse_zooms(raw: str) -> tuple[int, int]:
    """`8-16` or a single `12`."""
    low, _, high = raw.partition("-")
    try:
        zooms = (int(low), int(high or low))
    except ValueError:
        raise _bad(
            "zooms", raw, f"缩放级别应为 8-16 这样的范围 (zooms must be like 8-16): {raw!r}"
        ) from None
    if not MIN_ZOOM <= zooms[0] <= zooms[1] <= MAX_ZOOM:
        raise _bad(
            "zooms",
            raw,
            f"缩放级别须在 {MIN_ZOOM}-{MAX_ZOOM} 之内且由小到大 "
            f"(zooms must be ascending within {MIN_ZOOM}-{MAX_ZOOM}): {raw!r}",
        )
    return zooms


def parse_bbox(raw: str) -> Bounds:
    """`minlon,minlat,maxlon,maxlat` in WGS 84, within Web Mercator's latitudes."""
    parts = raw.split(",")
    try:
        west, south, east, north = (float(p) for p in parts)
    except ValueError:
        raise _bad(
            "bbox",
            raw,
            f"范围应为 最小经度,最小纬度,最大经度,最大纬度 "
            f"(bbox must be minlon,minlat,maxlon,maxlat): {raw!r}",
        ) from None
    if not (-180 <= west < east <= 180 and -MAX_LAT <= south < north <= MAX_LAT):
        raise _bad(
            "bbox",
            raw,
            f"范围无效：须 最小<最大，经度在 ±180、纬度在 ±{MAX_LAT} 之内 "
            f"(bbox needs min < max, longitudes within ±180, latitudes within ±{MAX_LAT}): {raw!r}",
        )
    return (west, south, east, north)


async def layers_extent(sources: Sequence[LayerSource]) -> Bounds | None:
    """The union of the layers' extents in WGS 84 (grant scopes applied); None when empty."""
    found: list[Bounds] = []
    pool = await tile_pool()
    async with pool.connection() as conn:
        for source in sources:
            statement = sql.SQL(EXTENT_SQL).format(
                geom=sql.Identifier(source.geometry_column),
                srid=sql.Literal(STORAGE_SRID),
                relation=sql.SQL(source.relation()),
            )
            cursor = await conn.execute(statement)
            row = await cursor.fetchone()
            if row is not None and row[0] is not None:
                found.append((row[0], row[1], row[2], row[3]))
    if not found:
        return None
    return (
        min(b[0] for b in found),
        min(b[1] for b in found),
        max(b[2] for b in found),
        max(b[3] for b in found),
    )


def _ranges(bbox: Bounds, z: int) -> tuple[range, range]:
    """The columns and rows of zoom z's tiles that meet the box."""
    tms = tile_matrix_set()
    west, south, east, north = bbox
    top_left = tms.tile(west + EPSILON, north - EPSILON, z)
    bottom_right = tms.tile(east - EPSILON, south + EPSILON, z)
    return range(top_left.x, bottom_right.x + 1), range(top_left.y, bottom_right.y + 1)


def tile_count(bbox: Bounds, zooms: tuple[int, int]) -> int:
    """Tiles the archive would address, from the box and zooms alone (nothing is rendered)."""
    total = 0
    for z in range(zooms[0], zooms[1] + 1):
        xs, ys = _ranges(bbox, z)
        total += len(xs) * len(ys)
    return total


def check_size(count: int) -> None:
    limit = export_settings().max_tiles
    if count > limit:
        raise ApiError(
            413,
            "ExportTooLarge",
            f"离线包含 {count} 个瓦片，超过上限 {limit} (GEO_PMTILES_MAX_TILES)；"
            "请缩小范围或减少缩放级别 "
            f"(an export of {count} tiles is over the limit of {limit}: "
            "narrow the bbox or the zooms)",
            {"tiles": count, "max": limit},
        )


def zoom_tiles(bbox: Bounds, z: int) -> list[tuple[int, Tile]]:
    """Zoom z's tiles in the box with their PMTiles ids, in id (Hilbert curve) order."""
    xs, ys = _ranges(bbox, z)
    return sorted((zxy_to_tileid(z, x, y), Tile(z, x, y)) for x in xs for y in ys)


def header(bbox: Bounds, zooms: tuple[int, int]) -> dict[str, Any]:
    """The header fields the writer does not fill in itself (it derives offsets, counts and the
    min/max zoom from the tiles written)."""
    west, south, east, north = bbox
    return {
        "tile_type": TileType.MVT,
        "tile_compression": Compression.GZIP,
        "min_lon_e7": int(west * 10_000_000),
        "min_lat_e7": int(south * 10_000_000),
        "max_lon_e7": int(east * 10_000_000),
        "max_lat_e7": int(north * 10_000_000),
        "center_zoom": zooms[0],
        "center_lon_e7": int((west + east) / 2 * 10_000_000),
        "center_lat_e7": int((south + north) / 2 * 10_000_000),
    }


def metadata(
    sources: Sequence[LayerSource],
    integer_ids: Sequence[bool],
    complete_zooms: Sequence[int | None],
    bbox: Bounds,
    zooms: tuple[int, int],
) -> dict[str, Any]:
    """TileJSON's fields (tiles.tilejson) for the archive's layers and zooms, plus the layer
    versions the tiles were made at (an offline copy goes stale: this says how stale)."""
    # /styles/{layers}.json: the viewer draws the archive with its tile layers, as it draws the
    # live layers (area labels stay out: they come from a GeoJSON source, tiles.labels).
    live = styles.style(Request(dict(_PLACEHOLDER_REQUEST)), sources, bbox)
    layers = []
    for source, integer_id, complete in zip(sources, integer_ids, complete_zooms, strict=True):
        layer = vector_layer(source, integer_id, complete)
        layer["minzoom"], layer["maxzoom"] = zooms
        layers.append(layer)
    return {
        "name": layer_list([s.id for s in sources]),
        "description": "; ".join(s.title for s in sources),
        "attribution": live["sources"][styles.SOURCE]["attribution"],
        "type": "overlay",
        "format": "pbf",
        "bounds": list(bbox),
        "center": [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2, zooms[0]],
        "minzoom": zooms[0],
        "maxzoom": zooms[1],
        "vector_layers": layers,
        "versions": {s.id: s.version for s in sources},
        "geo:style_layers": [
            layer for layer in live["layers"] if layer.get("source") == styles.SOURCE
        ],
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _nothing(bbox: Bounds | None, zooms: tuple[int, int]) -> ApiError:
    return ApiError(
        422,
        "NothingToExport",
        "所选范围与缩放级别内没有要素 (no feature of these layers in that area at those zooms)",
        {"bbox": list(bbox) if bbox else None, "zooms": list(zooms)},
    )


async def _write_tiles(
    plans: Sequence[LayerPlan],
    bbox: Bounds,
    zooms: tuple[int, int],
    writer: Writer,
    on_tile: Callable[[], None],
) -> int:
    """Render every tile in id order, WINDOW at a time, and write the non-empty ones; the
    number written."""
    engine = tile_engine()
    written = 0
    pending: deque[tuple[int, asyncio.Task[bytes]]] = deque()

    def take() -> None:
        nonlocal written
        tile_id, task = pending.popleft()
        data = task.result()
        if data:
            writer.write_tile(tile_id, gzip.compress(data, mtime=0))
            written += 1
        on_tile()

    try:
        for z in range(zooms[0], zooms[1] + 1):
            for tile_id, tile in zoom_tiles(bbox, z):
                pending.append((tile_id, asyncio.create_task(engine.render(plans, tile))))
                if len(pending) >= WINDOW:
                    await pending[0][1]
                    take()
        while pending:
            await pending[0][1]
            take()
    finally:
        for _, task in pending:
            task.cancel()
    return written


async def _export(
    sources: Sequence[LayerSource],
    zooms: tuple[int, int],
    bbox: Bounds | None,
    out: IO[bytes],
    on_start: Callable[[int], None],
    on_tile: Callable[[], None],
) -> Summary:
    try:
        area = bbox or await layers_extent(sources)
        if area is None:
            raise _nothing(None, zooms)
        count = tile_count(area, zooms)
        check_size(count)
        engine = tile_engine()
        plans = await engine.plan(sources)
        integer_ids = [await engine.integer_id(s) for s in sources]
        complete_zooms = [await engine.complete_from_zoom(s) for s in sources]
        document = metadata(sources, integer_ids, complete_zooms, area, zooms)
        on_start(count)
        writer = Writer(out)
        # The writer keeps tile data in a temporary file until it writes the directory: in the
        # spool (geo.spool), not /tmp, which may be a small tmpfs in memory.
        writer.tile_f.close()
        writer.tile_f = spool.temporary_file()
        try:
            written = await _write_tiles(plans, area, zooms, writer, on_tile)
            if not written:
                raise _nothing(area, zooms)
            writer.finalize(header(area, zooms), document)
        finally:
            writer.tile_f.close()
        return Summary(count, written, out.tell())
    finally:
        await close_pools()


def export_archive(
    who: Principal,
    ids: Sequence[str],
    zooms: tuple[int, int],
    bbox: Bounds | None,
    out: IO[bytes],
    on_start: Callable[[int], None] = lambda total: None,
    on_tile: Callable[[], None] = lambda: None,
) -> Summary:
    """Write the archive of `ids` (as `who` may read them at the download level: an offline
    package is a copy that leaves the service) to `out`; `bbox` None means the layers' extent.

    Blocks: call it from a thread or the console, never on the service's event loop. The export
    is audited for non-public layers once it is written. `on_start` gets the tile count before
    rendering starts, `on_tile` is called once per tile done (for progress bars)."""
    with session_scope() as session:
        sources = readable_sources(session, who, list(ids), need="download")
    summary = asyncio.run(_export(sources, zooms, bbox, out, on_start, on_tile))
    with session_scope() as session:
        box = f"bbox {','.join(str(v) for v in bbox)}" if bbox else "layers' extent"
        audit_read(session, who, sources, f"pmtiles z{zooms[0]}-{zooms[1]} {box}")
    return summary

"""TileJSON 3.0.0 for a set of layers: what a map client needs to fetch and read their tiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request

from geo.extent import Bounds, estimated_extent_async
from geo.settings import get_settings
from geo.sources import LayerSource
from tiles.pool import tile_pool
from tiles.tms import MAX_ZOOM, MIN_ZOOM
from tiles.urls import layer_list, tiles_template

# TileJSON field types for our declared property types.
FIELD_TYPES = {
    "string": "String",
    "integer": "Number",
    "number": "Number",
    "boolean": "Boolean",
    "date": "String",
    "datetime": "String",
}


async def layers_bounds(sources: Sequence[LayerSource]) -> Bounds:
    """The union of the layers' estimated extents, clipped to the city's accepted extent
    (uploads outside it are refused, so nothing lies beyond); the city extent when unknown."""
    city = get_settings().extent
    found: list[Bounds] = []
    pool = await tile_pool()
    async with pool.connection() as conn:
        for source in sources:
            bounds = await estimated_extent_async(conn, source.table, source.geometry_column)
            if bounds is not None:
                found.append(bounds)
    if not found:
        return city
    west = max(city[0], min(b[0] for b in found))
    south = max(city[1], min(b[1] for b in found))
    east = min(city[2], max(b[2] for b in found))
    north = min(city[3], max(b[3] for b in found))
    return (west, south, east, north) if west < east and south < north else city


def vector_layer(
    source: LayerSource, integer_id: bool, complete_from_zoom: int | None = None
) -> dict[str, Any]:
    # Integer ids are the features' MVT ids (feature.id), not an attribute; others are `id`.
    fields = {} if integer_id else {"id": "String"}
    for name, kind in source.properties.items():
        fields[name] = FIELD_TYPES.get(kind, "String")
    return {
        "id": source.id,
        "description": source.title,
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "fields": fields,
        # Our extension: below this zoom a tile may hold clusters or drop the smallest
        # features (tiles.aggregate); null: not complete even at GEO_TILE_CLUSTER_MAX_ZOOM.
        "complete_from_zoom": complete_from_zoom,
    }


def tilejson(
    request: Request,
    sources: Sequence[LayerSource],
    bounds: Bounds,
    integer_ids: Sequence[bool],
    complete_zooms: Sequence[int | None],
) -> dict[str, Any]:
    ids = [s.id for s in sources]
    centre_zoom = 10
    return {
        "tilejson": "3.0.0",
        "name": layer_list(ids),
        "description": "; ".join(s.title for s in sources),
        "version": "1.0.0",
        "attribution": "天津市空间地址与地理信息服务",
        "scheme": "xyz",
        "tiles": [tiles_template(request, sources)],
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "bounds": list(bounds),
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, centre_zoom],
        "vector_layers": [
            vector_layer(s, i, c)
            for s, i, c in zip(sources, integer_ids, complete_zooms, strict=True)
        ],
    }

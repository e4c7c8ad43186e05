"""OGC API - Tiles: tile matrix sets, and each collection's vector tileset.

/collections/{id} itself belongs to the layers package; only the /tiles sub-paths are here.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response

from geo.auth import Principal
from geo.errors import ApiError
from geo.openapi import errors
from geo.routing import api_router
from geo.sources import LayerSource
from tiles import service
from tiles.engine import tile_engine
from tiles.tilejson import FIELD_TYPES, Bounds, layers_bounds
from tiles.tms import MAX_ZOOM, MIN_ZOOM, TMS_ID, parse_tile, tile_matrix_set, tile_matrix_set_json
from tiles.urls import base_url, versioned, with_key

router = api_router(tags=["tiles"])

# Tilesets and tiles read the layer as the caller (tiles.service.caller).
_READ_ERRORS = errors(401, 403, 404, 503)
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
WEB_MERCATOR = "http://www.opengis.net/def/crs/EPSG/0/3857"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
)


def _check_tms(tms: str) -> None:
    if tms != TMS_ID:
        raise ApiError(
            404,
            "NotFound",
            f"no tile matrix set {tms!r}; this service offers {TMS_ID}",
            {"tileMatrixSets": [TMS_ID]},
        )


def _tms_link(request: Request) -> dict[str, str]:
    return {
        "rel": TILING_SCHEME,
        "type": "application/json",
        "title": f"{TMS_ID} definition",
        "href": f"{base_url(request)}/tileMatrixSets/{TMS_ID}",
    }


@router.get("/tileMatrixSets", summary="Tile matrix sets offered")
def list_tile_matrix_sets(request: Request) -> dict[str, Any]:
    tms = tile_matrix_set()
    return {
        "tileMatrixSets": [
            {
                "id": TMS_ID,
                "title": tms.title,
                "uri": tms.uri,
                "links": [{**_tms_link(request), "rel": "self"}],
            }
        ]
    }


@router.get(
    "/tileMatrixSets/{tms}",
    summary="A tile matrix set's definition (OGC TMS 2.0)",
    responses=errors(404),
)
def get_tile_matrix_set(tms: str) -> dict[str, Any]:
    _check_tms(tms)
    return tile_matrix_set_json()


def _limits(bounds: Bounds) -> list[dict[str, Any]]:
    """Rows and columns holding the layer's extent at each zoom: clients skip the rest."""
    tms = tile_matrix_set()
    west, south, east, north = bounds
    limits = []
    for z in range(MIN_ZOOM, MAX_ZOOM + 1):
        top_left = tms.tile(west, north, z)
        bottom_right = tms.tile(east, south, z)
        limits.append(
            {
                "tileMatrix": str(z),
                "minTileRow": top_left.y,
                "maxTileRow": bottom_right.y,
                "minTileCol": top_left.x,
                "maxTileCol": bottom_right.x,
            }
        )
    return limits


def _tileset_url(request: Request, source: LayerSource) -> str:
    return f"{base_url(request)}/collections/{source.id}/tiles/{TMS_ID}"


def _geometry_dimension(source: LayerSource) -> int | None:
    kind = source.geometry_type.lower().removeprefix("multi")
    return {"point": 0, "linestring": 1, "polygon": 2}.get(kind)


def _tileset(
    request: Request, source: LayerSource, bounds: Bounds, integer_id: bool
) -> dict[str, Any]:
    url = _tileset_url(request, source)
    # Integer ids travel as MVT feature ids, others as the property `id` (tiles.sql).
    properties = ({} if integer_id else {"id": {"type": "string"}}) | {
        name: {"type": FIELD_TYPES.get(kind, "String").lower()}
        for name, kind in source.properties.items()
    }
    return {
        "title": source.title,
        "description": source.description or source.title,
        "dataType": "vector",
        "crs": WEB_MERCATOR,
        "tileMatrixSetURI": tile_matrix_set().uri,
        "tileMatrixSetLimits": _limits(bounds),
        "boundingBox": {
            "lowerLeft": list(bounds[:2]),
            "upperRight": list(bounds[2:]),
            "crs": CRS84,
        },
        "layers": [
            {
                "id": source.id,
                "title": source.title,
                "dataType": "vector",
                "geometryDimension": _geometry_dimension(source),
                "minTileMatrix": str(MIN_ZOOM),
                "maxTileMatrix": str(MAX_ZOOM),
                "propertiesSchema": {"type": "object", "properties": properties},
            }
        ],
        "links": [
            {"rel": "self", "type": "application/json", "href": url},
            {
                "rel": "item",
                "type": service.MVT_MEDIA_TYPE,
                "title": "tiles (templated)",
                "templated": True,
                "href": with_key(
                    request, versioned(url + "/{tileMatrix}/{tileRow}/{tileCol}", [source])
                ),
            },
            _tms_link(request),
            {
                "rel": "describedby",
                "type": "application/json",
                "title": "TileJSON",
                "href": with_key(request, f"{base_url(request)}/tiles/{source.id}/tilejson.json"),
            },
            {
                "rel": "stylesheet",
                "type": "application/vnd.mapbox.style+json",
                "title": "MapLibre style",
                "href": with_key(request, f"{base_url(request)}/styles/{source.id}.json"),
            },
        ],
    }


@router.get(
    "/collections/{collection_id}/tiles",
    summary="A collection's tilesets",
    responses=_READ_ERRORS,
)
async def list_tilesets(
    request: Request, collection_id: str, who: Principal = Depends(service.caller)
) -> dict[str, Any]:
    (source,) = await service.readable_for_tiles(who, [collection_id])
    integer_id = await tile_engine().integer_id(source)
    tileset = _tileset(request, source, await layers_bounds([source]), integer_id)
    summary = {k: tileset[k] for k in ("title", "dataType", "crs", "tileMatrixSetURI")}
    summary["links"] = [
        {"rel": "self", "type": "application/json", "href": _tileset_url(request, source)},
        _tms_link(request),
    ]
    return {
        "tilesets": [summary],
        "links": [
            {
                "rel": "self",
                "type": "application/json",
                "href": f"{base_url(request)}/collections/{source.id}/tiles",
            },
            {
                "rel": "collection",
                "type": "application/json",
                "href": f"{base_url(request)}/collections/{source.id}",
            },
        ],
    }


@router.get(
    "/collections/{collection_id}/tiles/{tms}",
    summary="A collection's vector tileset",
    responses=_READ_ERRORS,
)
async def get_tileset(
    request: Request, collection_id: str, tms: str, who: Principal = Depends(service.caller)
) -> dict[str, Any]:
    _check_tms(tms)
    (source,) = await service.readable_for_tiles(who, [collection_id])
    integer_id = await tile_engine().integer_id(source)
    return _tileset(request, source, await layers_bounds([source]), integer_id)


@router.get(
    "/collections/{collection_id}/tiles/{tms}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="A vector tile of a collection",
    response_class=Response,
    openapi_extra=service.MVT_RESPONSES,
    responses=_READ_ERRORS,
)
async def get_collection_tile(
    request: Request,
    collection_id: str,
    tms: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    v: str | None = service.VERSION_QUERY,
    who: Principal = Depends(service.caller),
) -> Response:
    _check_tms(tms)
    tile = parse_tile(tile_matrix, tile_col, tile_row)
    version = service.parse_version(v)
    return await service.tile_response(request, who, [collection_id], tile, version)

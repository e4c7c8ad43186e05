"""Vector tiles for one layer or a comma-separated set, their TileJSON, labels and style."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from geo import preconditions
from geo.auth import Principal
from geo.openapi import GEOJSON, errors, returns
from geo.routing import StrictQueryRoute, api_router
from tiles import labels, service
from tiles.engine import tile_engine
from tiles.styles import style
from tiles.tilejson import layers_bounds, tilejson
from tiles.tms import parse_tile

# Every route reads layers as the caller (tiles.service.caller): a wrong key or an expired token
# is a 401, a token for other layers a 403, a layer the caller may not read a 404.
router = api_router(tags=["tiles"], responses=errors(401, 403, 404, 503))


async def get_tile(
    request: Request,
    layers: str,
    z: str,
    x: str,
    y: str,
    v: str | None = service.VERSION_QUERY,
    who: Principal = Depends(service.caller),
) -> Response:
    ids = service.parse_layer_ids(layers)
    tile = parse_tile(z, x, y)
    version = service.parse_version(v)
    return await service.tile_response(request, who, ids, tile, version)


async def _call_get_tile(request: Request) -> Response:
    """get_tile, its arguments taken straight from the request (see TileRoute)."""
    path, query = request.path_params, request.query_params
    who = await service.caller(request, query.get("token"))
    return await get_tile(
        request, path["layers"], path["z"], path["x"], path["y"], query.get("v"), who
    )


class _PlainArguments(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _call_get_tile


class TileRoute(StrictQueryRoute, _PlainArguments):
    """The tile route: every route's query check and conditional GET (StrictQueryRoute) around
    a handler that calls get_tile itself instead of through FastAPI's dependency solving.

    Every argument of get_tile and of its dependency (service.caller) is a string from the path
    or the query (the last value of a repeated query parameter, as FastAPI takes it), which
    FastAPI's per-request solving only copies, at about 100 µs of CPU a tile (a cache hit: 238 µs
    in process with it, 137 without).
    The signature still declares them, so the OpenAPI document and the allowed query
    parameters are FastAPI's as for any route (tests/test_tile_hits.py compares the answers);
    only `app.dependency_overrides` cannot reach service.caller here."""


router.add_api_route(
    "/tiles/{layers}/{z}/{x}/{y}.mvt",
    get_tile,
    methods=["GET"],
    summary="A vector tile of one layer or a comma-separated set (one MVT layer each)",
    response_class=Response,
    openapi_extra=service.MVT_RESPONSES,
    route_class_override=TileRoute,
)
# The route's GETs are answered by tiles.lane, ahead of the app's routing (tiles.plugin).
TILE_ROUTE = next(r for r in router.routes if isinstance(r, TileRoute))


@router.get("/tiles/{layers}/tilejson.json", summary="TileJSON 3.0.0 for a set of layers")
async def get_tilejson(
    request: Request, layers: str, who: Principal = Depends(service.caller)
) -> dict[str, Any]:
    sources = await service.readable_for_tiles(who, service.parse_layer_ids(layers))
    integer_ids = [await tile_engine().integer_id(s) for s in sources]
    complete = [await tile_engine().complete_from_zoom(s) for s in sources]
    return tilejson(request, sources, await layers_bounds(sources), integer_ids, complete)


@router.get(
    "/tiles/{layers}/labels.geojson",
    summary="One label point per named area of the layers (GeoJSON; used by the styles)",
    response_class=Response,
    responses=returns({GEOJSON: {"type": "object"}}, "the label points")
    | {304: {"description": "not modified (If-None-Match)"}},
)
async def get_labels(
    request: Request, layers: str, who: Principal = Depends(service.caller)
) -> Response:
    sources = await service.readable_for_tiles(who, service.parse_layer_ids(layers), "labels")
    headers = {"ETag": labels.etag(sources), "Cache-Control": service.cache_control(sources)}
    if preconditions.not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    body = await labels.label_documents.get(sources)
    return Response(body, media_type="application/geo+json", headers=headers)


@router.get("/styles/{layers}.json", summary="A MapLibre style showing a set of layers")
async def get_style(
    request: Request, layers: str, who: Principal = Depends(service.caller)
) -> dict[str, Any]:
    sources = await service.readable_for_tiles(who, service.parse_layer_ids(layers))
    return style(request, sources, await layers_bounds(sources))

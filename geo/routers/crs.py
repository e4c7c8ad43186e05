"""The coordinate systems the service speaks, and a converter for clients that have none.

Departments holding Amap (GCJ-02) or Baidu (BD-09) coordinates, or survey data in a
Gauss-Kruger zone, can check what the service will make of their data before uploading it.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Query, Request, Response
from starlette.concurrency import run_in_threadpool

from geo import crs
from geo.http import json_body
from geo.openapi import GEOJSON, returns
from geo.routing import api_router

router = api_router(tags=["crs"])

_GEOJSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/geo+json": {
                "schema": {
                    "type": "object",
                    "description": "Geometry, Feature or FeatureCollection",
                }
            }
        },
    }
}


@router.get("/crs", summary="Supported coordinate reference systems")
def list_crs() -> dict[str, Any]:
    return {"storageCrs": crs.STORAGE_CRS, "defaultCrs": crs.DEFAULT_CRS, "crs": crs.list_crs()}


@router.post(
    "/crs/transform",
    summary="Convert a GeoJSON geometry, feature or feature collection between CRSs",
    openapi_extra=_GEOJSON_BODY,
    response_class=Response,
    responses=returns({GEOJSON: {"type": "object"}}, "the input with converted coordinates"),
)
async def transform(
    request: Request,
    src: str = Query(alias="from", description="CRS of the body's coordinates"),
    dst: str = Query(alias="to", description="CRS wanted in the response"),
) -> Response:
    """Coordinates always travel x = lon/easting, y = lat/northing, as in every GeoJSON file."""
    crs.resolve(src)
    target = crs.resolve(dst)
    body = await json_body(request)
    # Big collections take CPU time; keep the event loop free for other requests meanwhile.
    result = await run_in_threadpool(crs.transform_geojson, body, src, dst)
    return Response(
        orjson.dumps(result),
        media_type="application/geo+json",
        headers={"Content-Crs": f"<{target.uri}>"},
    )

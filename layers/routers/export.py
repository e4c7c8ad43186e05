"""Whole-layer downloads: ``GET /collections/{id}/export?f=geojson|gpkg|csv|xlsx|shp&crs=``."""

from __future__ import annotations

import shutil

from fastapi import Depends, Query, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from geo import crs as geo_crs
from geo.auth import Principal, principal
from geo.db import DbSession
from geo.openapi import errors, returns
from geo.routing import api_router
from layers import catalogue, export

router = api_router(tags=["collections"])


@router.get(
    "/collections/{collection_id}/export",
    summary="The whole layer as a file (as much of it as the caller's grant shows)",
    description="GeoJSON, GeoPackage, CSV (UTF-8 with BOM, geometry as WKT), XLSX (geometry "
    "as WKT) or a zipped Shapefile (UTF-8 attributes with a .cpg), in any CRS of /crs; "
    "coordinates x/y (lon/lat, easting/northing). GCJ02/BD09 files declare no CRS.",
    response_class=Response,
    responses=returns(
        {f.media_type.split(";")[0]: None for f in export.FORMATS.values()},
        "the file, spooled to disk and streamed",
    )
    | errors(403, 404, 409),
)
def export_route(
    collection_id: str,
    session: DbSession,
    f: str = Query(
        default="gpkg",
        description="file format",
        max_length=20,
        json_schema_extra={"enum": list(export.FORMATS)},
    ),
    crs: str = Query(default=geo_crs.STORAGE_CRS, description="CRS of the file", max_length=200),
    who: Principal = Depends(principal),
) -> Response:
    kind = export.check_format(f)
    target = geo_crs.resolve(crs).id
    source = catalogue.readable_source(session, who, collection_id, need="download")
    path = export.write(session, source, f, target)
    catalogue.audit_read(session, who, [source], f"export.{f}")
    return FileResponse(
        path,
        media_type=kind.media_type,
        filename=path.name,
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )

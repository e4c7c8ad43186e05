"""Whole-layer downloads: ``GET /collections/{id}/export?f=gpkg|csv``."""

from __future__ import annotations

import csv
import io
import shutil
from typing import Literal

from fastapi import Depends, Query, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from geo import crs as geo_crs
from geo.auth import Principal, principal
from geo.db import DbSession
from geo.openapi import CSV, errors, returns
from geo.routing import api_router
from layers import catalogue, export, features

router = api_router(tags=["collections"])


@router.get(
    "/collections/{collection_id}/export",
    summary="The whole layer as a file",
    response_class=Response,
    responses=returns(
        {"application/geopackage+sqlite3": None, CSV: None}, "a GeoPackage, or CSV with f=csv"
    )
    | errors(403, 404),
)
def export_route(
    collection_id: str,
    session: DbSession,
    f: Literal["gpkg", "csv"] = Query(default="gpkg"),
    crs: str = Query(default=geo_crs.STORAGE_CRS, description="CRS of the file"),
    who: Principal = Depends(principal),
) -> Response:
    target = geo_crs.resolve(crs).id
    source = catalogue.readable_source(session, who, collection_id, need="download")
    catalogue.audit_read(session, who, [source], f"export.{f}")
    if f == "csv":
        query = features.Query(limit=2**62, crs=target)
        buffer = io.StringIO()
        csv.writer(buffer).writerows(features.csv_rows(session, source, query))
        return Response(
            buffer.getvalue().encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{collection_id}.csv"'},
        )
    path = export.geopackage(session, source, target)
    return FileResponse(
        path,
        media_type="application/geopackage+sqlite3",
        filename=f"{collection_id}.gpkg",
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )

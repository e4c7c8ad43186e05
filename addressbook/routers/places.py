"""Named places: import (the address authority), one place, the places near a point."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, UploadFile

from addressbook.models import PLACE_CATEGORIES
from addressbook.places import query
from addressbook.places.read import read_places
from addressbook.places.store import import_places
from geo.auth import Principal, principal, require
from geo.db import DbSession
from geo.metrics import record_upload
from geo.openapi import errors
from geo.routing import api_router

router = api_router(prefix="/places", tags=["named places"])

Crs = Annotated[str, Query(description="CRS of coordinates in and out (default CRS84)")]


@router.post(
    "/import",
    summary="Import named places from CSV or GeoJSON (all or nothing unless skip_invalid)",
    responses=errors(403, 413),
)
def import_file(
    file: UploadFile,
    session: DbSession,
    crs: Annotated[str, Query(description="CRS of lon/lat in the file (default CRS84)")] = "CRS84",
    skip_invalid: Annotated[
        bool, Query(description="import the good rows and report the bad ones")
    ] = False,
    source: Annotated[
        str | None,
        Query(max_length=200, description="source name (default: the file name); replaced"),
    ] = None,
    who: Principal = Depends(require("editor")),
) -> dict[str, Any]:
    name = source or file.filename or "upload"
    rows = read_places(file.file, file.filename or "")
    report = import_places(session, rows, name, who, crs=crs, skip_invalid=skip_invalid)
    record_upload("places", file.size or 0, report.imported)
    return report.as_dict()


@router.get("/nearby", summary="The named places nearest a point")
def places_nearby(
    session: DbSession,
    lon: Annotated[float, Query(description="longitude (x) in crs")],
    lat: Annotated[float, Query(description="latitude (y) in crs")],
    crs: Crs = "CRS84",
    category: Annotated[
        str | None, Query(description=f"only this category: {', '.join(PLACE_CATEGORIES)}")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=query.MAX_NEARBY)] = 10,
    _: Principal = Depends(principal),
) -> dict[str, Any]:
    found = query.nearby(session, lon, lat, crs, category, limit)
    return {"crs": crs, "places": found}


@router.get("/{place_id:int}", summary="One named place", responses=errors(404))
def get_place(
    place_id: int, session: DbSession, crs: Crs = "CRS84", _: Principal = Depends(principal)
) -> dict[str, Any]:
    return query.get_place(session, place_id, crs)

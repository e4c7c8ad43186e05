"""Admin areas and grids: thin HTTP wrappers over addressbook.areas (query, grids).

Both are public reference data (the divisions are published statistics), so no key is needed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query

from addressbook.areas import grids
from addressbook.areas import query as areas
from geo.db import DbSession
from geo.openapi import errors
from geo.routing import api_router

router = api_router(tags=["admin areas and grids"])

Crs = Annotated[str, Query(description="CRS of coordinates in and out (default CRS84)")]


@router.get("/areas", summary="Admin areas by level, parent and name")
def list_areas(
    session: DbSession,
    level: Annotated[
        str | None, Query(description="province, district, subdistrict or community")
    ] = None,
    parent: Annotated[str | None, Query(description="the parent's 12-digit code")] = None,
    q: Annotated[str | None, Query(max_length=100, description="part of the name")] = None,
    retired: Annotated[bool, Query(description="include superseded code versions")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    return areas.list_areas(session, level, parent, q, retired, limit, offset)


@router.get(
    "/areas/{code}",
    summary="One admin area: parents, children, code history, shape",
    responses=errors(404),
)
def get_area(
    code: str,
    session: DbSession,
    crs: Crs = "CRS84",
    geometry: Annotated[bool, Query(description="include the polygon")] = True,
) -> dict[str, Any]:
    return areas.get_area(session, code, crs, geometry)


@router.get(
    "/grids/at",
    summary="The grid containing a point, with its community and parents; where none does, "
    "the areas at the point and why there is no grid (`missing`)",
)
def grid_at(
    lon: Annotated[float, Query(description="x (longitude or easting) in `crs`")],
    lat: Annotated[float, Query(description="y (latitude or northing) in `crs`")],
    session: DbSession,
    crs: Crs = "CRS84",
    staff: bool = Depends(grids.staff_visible),
) -> dict[str, Any]:
    return grids.grid_at(session, lon, lat, crs, staff)


@router.get("/grids/{code}", summary="One grid", responses=errors(404))
def get_grid(
    code: str, session: DbSession, crs: Crs = "CRS84", staff: bool = Depends(grids.staff_visible)
) -> dict[str, Any]:
    return grids.get_grid(session, code, crs, staff)

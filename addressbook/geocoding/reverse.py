"""Reverse geocoding: a point to the nearest address and the areas and grid that contain it.

One statement: the nearest active address by KNN (`ORDER BY geom <-> point LIMIT 1`, an ordered
scan of the GiST index idx_addresses_geom that stops at the first row), its distance in metres on
the geography (for `radius`, checked on that one row, so the index does the searching), and the
current district, subdistrict and community polygons (idx_admin_areas_geom) and the grid
(idx_grids_geom) containing the point. Levels the point lacks come with the reason
(`missing`, addressbook.areas.coverage): inside the city that is a community or grid, never a
level filled in from elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas import coverage
from addressbook.areas.grids import without_staff
from geo.errors import ApiError
from geo.extent import city_point

MAX_RADIUS: Final = 10_000.0  # metres

_SQL: Final = f"""
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:x, :y), 4490) AS pt)
SELECT
    (SELECT json_build_object(
                'id', n.id, 'code', n.code, 'standard', n.full_address,
                'district_code', n.district_code, 'subdistrict_code', n.subdistrict_code,
                'community_code', n.community_code, 'grid_code', n.grid_code,
                'road', n.road, 'house_number', n.house_number, 'compound', n.compound,
                'building', n.building, 'unit', n.unit, 'room', n.room,
                'lon', ST_X(n.geom), 'lat', ST_Y(n.geom),
                'distance', ST_Distance(n.geom::geography, p.pt::geography))
     FROM (SELECT a.* FROM addresses a
           WHERE a.status = 'active'
           ORDER BY a.geom <-> ST_SetSRID(ST_MakePoint(:x, :y), 4490)  -- idx_addresses_geom
           LIMIT 1) n
     WHERE CAST(:radius AS float8) IS NULL
        OR ST_DWithin(n.geom::geography, p.pt::geography, CAST(:radius AS float8))),
    ({coverage.AREAS_AT}),
    (SELECT json_build_object('code', g.code, 'name', g.name,
                              'community_code', g.community_code,
                              'staff_name', g.staff_name, 'staff_phone', g.staff_phone)
     FROM grids g WHERE ST_Intersects(g.geom, p.pt)  -- idx_grids_geom
     ORDER BY g.code LIMIT 1)
FROM p
"""


@dataclass(frozen=True)
class Reverse:
    """What is at a point. `address` carries its position in EPSG:4490 and `distance` in
    metres; areas and grid are None where the point lies in none."""

    lon: float
    lat: float
    address: dict[str, Any] | None
    district: dict[str, Any] | None
    subdistrict: dict[str, Any] | None
    community: dict[str, Any] | None
    grid: dict[str, Any] | None
    explained: coverage.Explained


def reverse(
    session: Session,
    x: float,
    y: float,
    crs: str = "CRS84",
    radius: float | None = None,
    staff: bool = False,
) -> Reverse:
    """The nearest active address (within `radius` metres, if given) and the areas and grid
    containing the point (x, y) given in `crs`. The grid's staff contacts are personal data,
    included only with `staff` (callers who presented a key)."""
    if radius is not None and not 0 < radius <= MAX_RADIUS:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"radius must be more than 0 and at most {MAX_RADIUS:g} metres, not {radius:g}",
            {"radius": radius},
        )
    lon, lat = city_point(x, y, crs)
    nearest, areas, grid = (
        session.execute(text(_SQL), {"x": lon, "y": lat, "radius": radius}).tuples().one()
    )
    by_level = coverage.by_level(areas)
    if grid is not None and not staff:
        grid = without_staff(grid)
    return Reverse(
        lon,
        lat,
        nearest,
        by_level.get("district"),
        by_level.get("subdistrict"),
        by_level.get("community"),
        grid,
        coverage.explain_at(session, areas or [], grid["code"] if grid else None),
    )

"""Reading grids: the grid at a point (with its community, subdistrict and district), by code.

A point of the city outside every grid is not an error of the lookup: the answer has the same
shape with the grid's own fields null, the areas found at the point, and ``missing`` saying why
there is no grid there (addressbook.areas.coverage), e.g. a township without communities.

A grid's staff (name and phone number of the grid worker) are personal data: only callers who
present a key see them (`staff=True`); anonymous answers leave the fields out altogether.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas import coverage
from addressbook.areas.query import geometry_json
from geo.auth import Principal, principal
from geo.crs import resolve
from geo.errors import ApiError
from geo.extent import city_point

# One probe of idx_grids_geom (GiST): the && test on the index, then the exact point-in-polygon.
GRID_AT_SQL = """
SELECT g.code FROM grids g
WHERE ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4490))
ORDER BY g.code LIMIT 1
"""

_GRID = """
SELECT g.code, g.name, g.community_code, g.staff_name, g.staff_phone, g.source,
       g.updated_at, ST_AsBinary(g.geom) AS geom,
       c.name AS community, c.parent_code AS subdistrict_code, s.name AS subdistrict,
       s.parent_code AS district_code, d.name AS district
FROM grids g
LEFT JOIN current_admin_areas c ON c.code = g.community_code
LEFT JOIN current_admin_areas s ON s.code = c.parent_code
LEFT JOIN current_admin_areas d ON d.code = s.parent_code
WHERE g.code = :code
"""


# The grid worker's contact details, shown to keyed callers only.
STAFF_FIELDS = ("staff_name", "staff_phone")


def staff_visible(who: Principal = Depends(principal)) -> bool:
    """Dependency: whether the caller may see grid staff contacts (any valid key; a wrong key
    is still a 401, as everywhere)."""
    return not who.anonymous


def without_staff(grid: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in grid.items() if k not in STAFF_FIELDS}


def get_grid(
    session: Session, code: str, crs: str = "CRS84", staff: bool = False
) -> dict[str, Any]:
    """One grid with its areas; its staff contacts only when `staff`."""
    row = session.execute(text(_GRID), {"code": code}).first()
    if row is None:
        raise ApiError(404, "UnknownGrid", f"no grid has the code {code!r}", {"code": code})
    data = dict(row._mapping)
    if not staff:
        data = without_staff(data)
    data["geometry"] = geometry_json(data.pop("geom"), resolve(crs).id)
    data["updated_at"] = data["updated_at"].isoformat() if data["updated_at"] else None
    data["crs"] = resolve(crs).id
    return data


def grid_at(
    session: Session, lon: float, lat: float, crs: str = "CRS84", staff: bool = False
) -> dict[str, Any]:
    """The grid containing the point with its areas; where no grid does, the same fields with
    the grid's own null, the areas at the point, and why there is no grid (`missing`)."""
    x, y = city_point(lon, lat, crs)
    code = session.execute(text(GRID_AT_SQL), {"x": x, "y": y}).scalar()
    if code is not None:
        grid = get_grid(session, code, crs, staff)
        place = coverage.Place.of({**grid, "grid_code": code})
        return {**grid, **coverage.explain_one(session, place).fields()}
    found = coverage.areas_at(session, x, y)
    areas = coverage.by_level(found)
    nothing: dict[str, Any] = {
        "code": None,
        "name": None,
        "community_code": areas.get("community", {}).get("code"),
        **dict.fromkeys(STAFF_FIELDS if staff else ()),
        "source": None,
        "updated_at": None,
        "geometry": None,
        "community": areas.get("community", {}).get("name"),
        "subdistrict_code": areas.get("subdistrict", {}).get("code"),
        "subdistrict": areas.get("subdistrict", {}).get("name"),
        "district_code": areas.get("district", {}).get("code"),
        "district": areas.get("district", {}).get("name"),
        "crs": resolve(crs).id,
    }
    return {**nothing, **coverage.explain_at(session, found, None).fields()}

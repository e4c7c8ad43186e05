"""Reading named places: one place, and the places nearest a point."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.models import PLACE_CATEGORIES
from geo.crs import STORAGE_CRS, transform_xy
from geo.errors import ApiError, not_found
from geo.extent import city_point

MAX_NEARBY: Final = 50
_COLUMNS: Final = """p.id, p.category, p.name, p.aliases, p.address_id, a.code AS address_code,
       a.full_address AS address, p.district_code, p.subdistrict_code, p.community_code,
       p.grid_code, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, p.outline IS NOT NULL AS outlined"""
_ONE_SQL: Final = f"""
SELECT {_COLUMNS}
FROM places p LEFT JOIN addresses a ON a.id = p.address_id
WHERE p.id = :id
"""
# Nearest first by the GiST index's distance ordering (idx_places_geom: a KNN index scan reads
# the `limit` nearest entries, whatever the table's size); degrees are fine for ordering at
# Tianjin's scale, the distance in metres is computed for the few rows returned.
NEARBY_SQL: Final = f"""
SELECT {_COLUMNS},
       ST_Distance(p.geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4490)::geography)
           AS distance_m
FROM places p LEFT JOIN addresses a ON a.id = p.address_id
WHERE (CAST(:category AS text) IS NULL OR p.category = :category)
ORDER BY p.geom <-> ST_SetSRID(ST_MakePoint(:x, :y), 4490)
LIMIT :limit
"""


def _json(row: Any, crs: str) -> dict[str, Any]:
    data = dict(row)
    xs, ys = transform_xy([data.pop("lon")], [data.pop("lat")], STORAGE_CRS, crs)
    data["aliases"] = list(data["aliases"] or ())
    data["location"] = {"type": "Point", "coordinates": [float(xs[0]), float(ys[0])]}
    if "distance_m" in data:
        data["distance_m"] = round(float(data["distance_m"]), 1)
    return data


def get_place(session: Session, place_id: int, crs: str = "CRS84") -> dict[str, Any]:
    row = session.execute(text(_ONE_SQL), {"id": place_id}).mappings().first()
    if row is None:
        raise not_found(f"there is no place {place_id}", {"id": place_id})
    return _json(row, crs)


def nearby(
    session: Session,
    lon: float,
    lat: float,
    crs: str = "CRS84",
    category: str | None = None,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """The places nearest the point (in `crs`), nearest first; a 400 for a point outside the
    city or an unknown category."""
    if category is not None and category not in PLACE_CATEGORIES:
        raise ApiError(
            400,
            "UnknownCategory",
            f"unknown category {category!r}: one of {', '.join(PLACE_CATEGORIES)}",
            {"category": category},
        )
    x, y = city_point(lon, lat, crs)
    params = {"x": x, "y": y, "category": category, "limit": limit}
    return [_json(r, crs) for r in session.execute(text(NEARBY_SQL), params).mappings()]

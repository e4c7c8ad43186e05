"""Extents: the city's accepted extent for single points, and the planner's estimate of a
table's extent.

Points that clients send one at a time (an address's location, a reverse-geocoding or identify
query, a grid lookup) are checked here, the same way for every package: outside
``GEO_EXTENT`` after conversion to EPSG:4490 is a 400 ``OutsideExtent``, almost always swapped
lon/lat or the wrong ``crs`` rather than a place outside Tianjin. Files are checked in bulk by
the upload pipeline, which reports every feature.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import AsyncConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geo.crs import STORAGE_CRS, resolve, transform_xy
from geo.errors import ApiError
from geo.settings import get_settings

Bounds = tuple[float, float, float, float]

# ST_EstimatedExtent reads the planner's statistics: instant on any table size, where ST_Extent
# reads every row of a 2-million-row layer. `table` is any SQL table reference (quoted or not,
# schema-qualified or not), resolved by to_regclass; no row when there is no such table.
ESTIMATED_EXTENT_SQL: Final = (
    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ("
    "SELECT ST_EstimatedExtent(n.nspname, c.relname, %s) AS e FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)) AS x"
)


def city_point(x: float, y: float, crs: str) -> tuple[float, float]:
    """The point (x, y in ``crs``) in EPSG:4490, or a 400 when it lies outside the city."""
    source = resolve(crs).id
    lon, lat = transform_xy([x], [y], source, STORAGE_CRS)
    px, py = float(lon[0]), float(lat[0])
    minx, miny, maxx, maxy = get_settings().extent
    if not (minx <= px <= maxx and miny <= py <= maxy):
        raise ApiError(
            400,
            "OutsideExtent",
            f"the point ({x}, {y}) in {source} is {px:.6f}, {py:.6f} in {STORAGE_CRS}, outside "
            f"the city extent {minx},{miny},{maxx},{maxy} (swapped lon/lat or the wrong crs?)",
            {"point": [x, y], "crs": source, "extent": [minx, miny, maxx, maxy]},
        )
    return px, py


def _bounds(row: Any) -> Bounds | None:
    """None until the table has been ANALYZEd (no statistics, no estimate)."""
    if row is None or row[0] is None:
        return None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def estimated_extent(session: Session, table: str, column: str) -> Bounds | None:
    """The table's estimated extent, in the session's transaction."""
    # PostGIS raises for a table it has no statistics for; a savepoint keeps the transaction.
    savepoint = session.begin_nested()
    try:
        row = session.connection().exec_driver_sql(ESTIMATED_EXTENT_SQL, (column, table)).first()
        savepoint.commit()
    except DBAPIError:
        savepoint.rollback()
        return None
    return _bounds(row)


async def estimated_extent_async(
    conn: AsyncConnection[Any], table: str, column: str
) -> Bounds | None:
    """`estimated_extent` on an autocommit async connection (the tile pool's)."""
    try:
        cursor = await conn.execute(ESTIMATED_EXTENT_SQL, (column, table))
        row = await cursor.fetchone()
    except psycopg.Error:
        return None
    return _bounds(row)

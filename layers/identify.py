""" "What is here": every readable collection's features at or near a point, or in a polygon,
nearest first.

One statement: a UNION ALL of one index-backed sub-query per collection (bounding-box probe on
its GiST index, then the exact test and the distance in metres on the ellipsoid), merged and cut
to the limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from layers.cql import degree_margins, dwithin_sql
from layers.features import properties_json, to_crs
from layers.schema import quote_ident
from layers.sources import LayerSource

MAX_RADIUS_M = 5_000.0


POINT = "ST_SetSRID(ST_MakePoint(:x, :y), 4490)"
AREA = "ST_GeomFromWKB(:area, 4490)"


def identify_sql(sources: list[LayerSource], radius: float | None) -> str:
    """One index-backed sub-query per collection, merged nearest first.

    ``radius`` in metres around the point ``:x, :y`` (0: the features under it); None: the
    features intersecting the geometry ``:area``, nearest first from its representative point
    (``:x, :y``, a point on its surface).
    """
    parts = []
    for i, source in enumerate(sources):
        geom = f"t.{quote_ident(source.geometry_column)}"
        if radius is None:
            near = f"ST_Intersects({geom}, {AREA})"
        elif radius > 0:
            near = dwithin_sql(geom, POINT, ":dx", ":dy", ":r")
        else:
            near = f"ST_Intersects({geom}, {POINT})"
        parts.append(
            f"(SELECT CAST(:c{i} AS text) AS collection, "
            f"t.{quote_ident(source.id_column)} AS fid, "
            f"{properties_json(source, list(source.properties))} AS props, "
            f"ST_AsBinary({geom}) AS g, "
            f"ST_Distance({geom}::geography, ({POINT})::geography) AS metres "
            f"FROM {source.relation()} t WHERE {near} ORDER BY metres LIMIT :limit)"
        )
    union = " UNION ALL ".join(parts)
    return f"SELECT * FROM ({union}) found ORDER BY metres, collection, fid LIMIT :limit"


def identify(
    session: Session,
    sources: list[LayerSource],
    x: float,
    y: float,
    radius: float,
    limit: int,
    target_crs: str,
) -> list[dict[str, Any]]:
    """Features of ``sources`` within ``radius`` metres of (x, y) in EPSG:4490, nearest first."""
    dx, dy = degree_margins(radius, y)
    params = {"x": x, "y": y, "dx": dx, "dy": dy, "r": radius}
    return _found(session, sources, radius, params, limit, target_crs)


def identify_in(
    session: Session, sources: list[LayerSource], area: Any, limit: int, target_crs: str
) -> list[dict[str, Any]]:
    """Features of ``sources`` intersecting ``area`` (shapely, EPSG:4490), nearest first from a
    point on its surface (its centre for a convex polygon)."""
    centre = shapely.point_on_surface(area)
    params = {"x": centre.x, "y": centre.y, "area": shapely.to_wkb(area)}
    return _found(session, sources, None, params, limit, target_crs)


def _found(
    session: Session,
    sources: list[LayerSource],
    radius: float | None,
    params: dict[str, Any],
    limit: int,
    target_crs: str,
) -> list[dict[str, Any]]:
    if not sources:
        return []
    params = params | {"limit": limit} | {f"c{i}": s.id for i, s in enumerate(sources)}
    rows = session.execute(text(identify_sql(sources, radius)), params).all()
    if not rows:
        return []
    geoms = shapely.to_geojson(to_crs(np.array([r[3] for r in rows], dtype=object), target_crs))
    return [
        {
            "type": "Feature",
            "id": f"{r[0]}.{r[1]}",
            "geometry": orjson.loads(g) if g else None,
            "properties": {
                "collection": r[0],
                "fid": r[1],
                "distance_m": round(float(r[4]), 2),
                **orjson.loads(r[2]),
            },
        }
        for r, g in zip(rows, geoms.tolist(), strict=True)
    ]

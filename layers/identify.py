""" "What is here": every readable collection's features at or near a point, nearest first.

One statement: a UNION ALL of one index-backed sub-query per collection (bounding-box probe on
its GiST index, then the exact distance in metres on the ellipsoid), merged and cut to the limit.
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


def identify_sql(sources: list[LayerSource], radius: float) -> str:
    point = "ST_SetSRID(ST_MakePoint(:x, :y), 4490)"
    parts = []
    for i, source in enumerate(sources):
        geom = f"t.{quote_ident(source.geometry_column)}"
        near = (
            dwithin_sql(geom, point, ":dx", ":dy", ":r")
            if radius > 0
            else f"ST_Intersects({geom}, {point})"
        )
        parts.append(
            f"(SELECT CAST(:c{i} AS text) AS collection, "
            f"t.{quote_ident(source.id_column)} AS fid, "
            f"{properties_json(source, list(source.properties))} AS props, "
            f"ST_AsBinary({geom}) AS g, "
            f"ST_Distance({geom}::geography, ({point})::geography) AS metres "
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
    if not sources:
        return []
    dx, dy = degree_margins(radius, y)
    params: dict[str, Any] = {"x": x, "y": y, "dx": dx, "dy": dy, "r": radius, "limit": limit}
    params.update({f"c{i}": s.id for i, s in enumerate(sources)})
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

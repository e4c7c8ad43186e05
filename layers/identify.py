""" "What is here": every readable collection's features at or near a point, or in a polygon,
nearest first.

One statement: a UNION ALL of one index-backed sub-query per collection (bounding-box probe on
its GiST index, then the exact test and the distance in metres on the ellipsoid), merged and cut
to the limit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import shapely
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import ApiError
from geo.sources import LayerSource
from layers.cql import degree_margins, dwithin_sql
from layers.features import properties_json, to_crs
from layers.schema import quote_ident

MAX_RADIUS_M = 5_000.0
# Collections one request may name (after repeats are dropped). Each is one more sub-query of
# the statement; leaving `layers` out asks for every readable collection, whatever their number.
MAX_LAYERS = 20
# Area searched (the polygon, or the circle of the radius) in km² times the collections
# searched. Every feature in the area costs an exact test, a distance on the ellipsoid and its
# properties as JSON: on the sample data (200,000 addresses, about 190 per km² downtown) one
# collection of addresses in a 0.2° box (384 km²) took 1.1 s, 30 copies of it 24 s. 500 allows
# a 22 km square on one collection, a 5 km square over all 20, or the largest radius (5 km)
# over the sample's six collections, and keeps the worst case near a second and a half there.
MAX_AREA_KM2_LAYERS = 500.0
_GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid, to well under a square metre per km²


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


def requested_layers(names: list[str]) -> list[str]:
    """The collections a request names, each once, in the order first named; a 400 beyond
    :data:`MAX_LAYERS`. Repeats cost a full sub-query each and could only ever return the same
    features again (30 copies of `addresses` held a worker for half a minute)."""
    distinct = list(dict.fromkeys(names))
    if len(distinct) > MAX_LAYERS:
        raise ApiError(
            400,
            "TooManyLayers",
            f"layers names {len(distinct)} collections; at most {MAX_LAYERS} per request "
            "(leave it out to search every collection you may read)",
            {"limit": MAX_LAYERS, "count": len(distinct)},
        )
    return distinct


def check_work(sources: list[LayerSource], area_km2: float) -> list[LayerSource]:
    """``sources`` without repeats, after checking the area searched times their number
    against :data:`MAX_AREA_KM2_LAYERS`: the statement's cost grows with both."""
    distinct = list({source.id: source for source in sources}.values())
    work = area_km2 * len(distinct)
    if work > MAX_AREA_KM2_LAYERS:
        most = MAX_AREA_KM2_LAYERS / max(len(distinct), 1)
        raise ApiError(
            400,
            "AreaTooLarge",
            f"{area_km2:.1f} km² over {len(distinct)} collections is too much at once: area times "
            f"collections may be at most {MAX_AREA_KM2_LAYERS:g} km² (here {most:.1f} km²); "
            "search a smaller area or fewer collections (layers)",
            {
                "limit_km2_layers": MAX_AREA_KM2_LAYERS,
                "area_km2": round(area_km2, 3),
                "layers": len(distinct),
            },
        )
    return distinct


def area_km2(geometry: Any) -> float:
    """Area of a geometry in EPSG:4490 on the ellipsoid, in km² (0 for points and lines)."""
    area, _ = _GEOD.geometry_area_perimeter(geometry)
    return abs(area) / 1e6


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
    sources = check_work(sources, math.pi * (radius / 1000) ** 2)
    dx, dy = degree_margins(radius, y)
    params = {"x": x, "y": y, "dx": dx, "dy": dy, "r": radius}
    return _found(session, sources, radius, params, limit, target_crs)


def identify_in(
    session: Session, sources: list[LayerSource], area: Any, limit: int, target_crs: str
) -> list[dict[str, Any]]:
    """Features of ``sources`` intersecting ``area`` (shapely, EPSG:4490), nearest first from a
    point on its surface (its centre for a convex polygon)."""
    sources = check_work(sources, area_km2(area))
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

"""Grids (网格) from GeoJSON, or from the demo generator, into the ``grids`` table.

A grid file is a FeatureCollection of (Multi)Polygons with ``code``, ``name``, and optionally
``community_code`` (found by location when missing: the community holding the grid's interior
point), ``staff_name``, ``staff_phone``. Grids are upserted by code; grids the same source gave
before and no longer gives are removed, so re-importing a file is idempotent. Addresses are then
re-assigned to the grid that contains them, so "which grid is this address in" stays a column.
"""

from __future__ import annotations

from typing import IO, Any

import numpy as np
import orjson
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import versions
from geo.crs import STORAGE_CRS, transform
from geo.db import raw_connection
from geo.errors import ApiError
from geo.settings import get_settings

GRID_COLUMNS = ("code", "name", "community_code", "staff_name", "staff_phone")


def read_grid_file(stream: IO[bytes], crs: str = "CRS84") -> pd.DataFrame:
    """Parse and check a grid GeoJSON file; every problem is reported with its feature number."""
    data = stream.read(get_settings().max_upload_bytes + 1)
    try:
        data.decode("utf-8")
        document = orjson.loads(data)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ApiError(400, "InvalidEncoding", f"the grid file is not UTF-8 (line {line})") from exc
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "MalformedJSON", f"the grid file is not valid JSON: {exc}") from exc
    document = transform(document, crs, STORAGE_CRS)  # validates the GeoJSON too
    if document.get("type") != "FeatureCollection":
        raise ApiError(400, "InvalidGeoJSON", "expected a GeoJSON FeatureCollection of grids")
    records, problems = [], []
    seen: dict[str, int] = {}
    minx, miny, maxx, maxy = get_settings().extent
    for number, feature in enumerate(document["features"], start=1):
        props = feature.get("properties") or {}
        geometry = feature.get("geometry")
        code = str(props.get("code") or "").strip()
        problem = None
        if not code or not str(props.get("name") or "").strip():
            problem = "code and name are required"
        elif len(code) > 32:
            problem = "code is longer than 32 characters"
        elif code in seen:
            problem = f"code {code!r} repeats feature {seen[code]}"
        elif not geometry or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            problem = "geometry must be a Polygon or MultiPolygon"
        if problem is None:
            shape = shapely.geometry.shape(geometry)
            bx0, by0, bx1, by1 = shape.bounds
            if not (minx <= bx0 and bx1 <= maxx and miny <= by0 and by1 <= maxy):
                problem = "outside the city extent (wrong crs or swapped axes?)"
            elif not shape.is_valid:
                problem = f"invalid polygon: {shapely.is_valid_reason(shape)}"
        if problem:
            problems.append({"feature": number, "problem": problem})
            continue
        seen[code] = number
        records.append(
            {
                "code": code,
                "name": str(props["name"]).strip(),
                "community_code": (str(props.get("community_code") or "").strip() or None),
                "staff_name": props.get("staff_name"),
                "staff_phone": None
                if props.get("staff_phone") is None
                else str(props["staff_phone"]),
                "geom": shapely.multipolygons(shapely.get_parts(shape)),
            }
        )
    if problems:
        raise ApiError(
            400,
            "InvalidFeatures",
            f"{len(problems)} grid feature(s) are invalid; nothing was imported "
            f"(first: feature {problems[0]['feature']}: {problems[0]['problem']})",
            {"errors": problems[:1000]},
        )
    return pd.DataFrame.from_records(records, columns=[*GRID_COLUMNS, "geom"])


def save_grids(session: Session, grids: pd.DataFrame, source: str) -> dict[str, int]:
    """Upsert the grids, drop the source's grids that are gone, re-assign addresses."""
    session.execute(
        text(
            "CREATE TEMP TABLE _grids (code text, name text, community_code text, "
            "staff_name text, staff_phone text, geom bytea) ON COMMIT DROP"
        )
    )
    wkb = shapely.to_wkb(np.asarray(grids["geom"], dtype=object)) if len(grids) else []
    with raw_connection(session).cursor() as cursor, cursor.copy("COPY _grids FROM STDIN") as copy:
        for row, geom in zip(grids[list(GRID_COLUMNS)].itertuples(index=False), wkb, strict=True):
            copy.write_row([None if pd.isna(v) else v for v in row] + [geom])
    # Missing communities: the current community holding the grid's interior point (GiST).
    session.execute(
        text(
            """
            UPDATE _grids g SET community_code = (
                SELECT a.code FROM current_admin_areas a
                WHERE a.level = 'community'
                  AND ST_Intersects(a.geom, ST_PointOnSurface(ST_GeomFromWKB(g.geom, 4490)))
                LIMIT 1)
            WHERE g.community_code IS NULL
            """
        )
    )
    upserted = session.execute(
        text(
            """
            INSERT INTO grids (code, name, community_code, staff_name, staff_phone, geom, source)
            SELECT code, name, community_code, staff_name, staff_phone,
                   ST_GeomFromWKB(geom, 4490), :source
            FROM _grids
            ON CONFLICT (code) DO UPDATE SET
                name = EXCLUDED.name, community_code = EXCLUDED.community_code,
                staff_name = EXCLUDED.staff_name, staff_phone = EXCLUDED.staff_phone,
                geom = EXCLUDED.geom, source = EXCLUDED.source, updated_at = now()
            """
        ),
        {"source": source},
    ).rowcount  # type: ignore[attr-defined]
    removed = session.execute(
        text(
            "DELETE FROM grids g WHERE g.source = :source "
            "AND NOT EXISTS (SELECT 1 FROM _grids n WHERE n.code = g.code)"
        ),
        {"source": source},
    ).rowcount  # type: ignore[attr-defined]
    session.execute(text("DROP TABLE _grids"))
    session.execute(text("ANALYZE grids"))
    reassigned = assign_addresses(session)
    versions.bump(session, "grids")
    return {"grids": int(upserted), "removed": int(removed), "addresses_reassigned": reassigned}


def assign_addresses(session: Session) -> int:
    """Put every address in the grid containing it (one GiST probe per address)."""
    count = session.execute(
        text(
            """
            UPDATE addresses a SET grid_code = n.code
            FROM addresses b
            LEFT JOIN LATERAL (
                SELECT g.code FROM grids g WHERE ST_Intersects(g.geom, b.geom) LIMIT 1
            ) n ON true
            WHERE a.id = b.id AND a.grid_code IS DISTINCT FROM n.code
            """
        )
    ).rowcount  # type: ignore[attr-defined]
    if count:
        versions.bump(session, "addresses")
    return int(count)


def grids_payload(frame: pd.DataFrame) -> dict[str, Any]:
    """Grids as a GeoJSON FeatureCollection (what `geo demo grids --out` writes)."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {c: row[c] for c in GRID_COLUMNS},
                "geometry": shapely.geometry.mapping(row["geom"]),
            }
            for _, row in frame.iterrows()
        ],
    }

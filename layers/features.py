"""Feature queries for any readable collection (OGC API - Features Parts 1-3), written as SQL.

The items query is ``WHERE ST_Intersects(geom, <bbox in 4490>) AND <CQL2> ORDER BY ... LIMIT``:
the bbox is converted to EPSG:4490 once in Python, so the predicate is a constant envelope the
GiST index on ``geom`` serves (``tests/test_layers_explain.py`` checks the plan).

Output CRS: CRS84, EPSG:4326 and EPSG:4490 are numerically the same in Tianjin (PROJ treats
4490 <-> 4326 as a no-op), so for them PostgreSQL writes each whole Feature as JSON text
(ST_AsGeoJSON, ST_FlipCoordinates for the lat/lon order OGC asks for with EPSG URIs) and Python
only joins the strings: measured ~3x faster than decoding WKB and encoding JSON in Python at
limit=1000. Every other CRS (Gauss-Kruger, Web Mercator, GCJ-02, BD-09) goes through geo.crs
in one vectorised pass, so every conversion in the service is the same code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import crs
from geo.sources import LayerSource
from layers.cql import CompiledFilter
from layers.schema import quote_ident
from layers.storage import SAME_AS_STORAGE

DECIMALS = 8  # ~1 mm in degrees


@dataclass
class Query:
    bbox: tuple[float, float, float, float] | None = None  # EPSG:4490, lon/lat
    filters: list[CompiledFilter] = field(default_factory=list)
    properties: list[str] | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (property, descending)
    limit: int = 10
    offset: int = 0
    crs: str = crs.DEFAULT_CRS


def _id(source: LayerSource, alias: str = "t") -> str:
    return f"{alias}.{quote_ident(source.id_column)}"


def _geom(source: LayerSource, alias: str = "t") -> str:
    return f"{alias}.{quote_ident(source.geometry_column)}"


def where(source: LayerSource, query: Query) -> tuple[str, dict[str, Any]]:
    """The WHERE clause shared by the page and its count."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if query.bbox is not None:
        # GiST on geom: a constant envelope in the storage CRS.
        parts.append(
            f"ST_Intersects({_geom(source)}, ST_MakeEnvelope(:bx0, :by0, :bx1, :by1, 4490))"
        )
        params.update(dict(zip(("bx0", "by0", "bx1", "by1"), query.bbox, strict=True)))
    for compiled in query.filters:
        parts.append(compiled.sql)
        params.update(compiled.params)
    return (" AND ".join(parts) if parts else "TRUE"), params


def properties_json(source: LayerSource, names: Sequence[str], alias: str = "t") -> str:
    """SQL for a JSON object of the named attributes, as text."""
    if not names:
        return "'{}'"
    if len(names) <= 50:  # json_build_object takes at most 100 arguments
        pairs = ", ".join(f"'{n}', {alias}.{quote_ident(n)}" for n in names)
        return f"json_build_object({pairs})::text"
    columns = ", ".join(f"{alias}.{quote_ident(n)}" for n in names)
    return f"(SELECT row_to_json(r) FROM (SELECT {columns}) r)::text"


def order_by(source: LayerSource, query: Query) -> str:
    keys = [f"t.{quote_ident(name)} {'DESC' if desc else 'ASC'}" for name, desc in query.sortby]
    return ", ".join([*keys, _id(source)])


def count(session: Session, source: LayerSource, query: Query) -> int:
    clause, params = where(source, query)
    return int(
        session.execute(
            text(f"SELECT count(*) FROM {source.relation()} t WHERE {clause}"), params
        ).scalar_one()
    )


def _names(source: LayerSource, query: Query) -> list[str]:
    return list(source.properties) if query.properties is None else list(query.properties)


def page(session: Session, source: LayerSource, query: Query) -> list[bytes]:
    """One page of Features as GeoJSON text in the requested CRS."""
    clause, params = where(source, query)
    params.update(limit=query.limit, offset=query.offset)
    props = properties_json(source, _names(source, query))
    target = crs.resolve(query.crs)
    tail = (
        f"FROM {source.relation()} t WHERE {clause} "
        f"ORDER BY {order_by(source, query)} LIMIT :limit OFFSET :offset"
    )
    if target.id in SAME_AS_STORAGE:
        geom = _geom(source)
        if target.yx:
            geom = f"ST_FlipCoordinates({geom})"
        sql = (
            f"""SELECT '{{"type":"Feature","id":' || to_json({_id(source)})::text || """
            f"""',"geometry":' || coalesce(ST_AsGeoJSON({geom}, {DECIMALS}), 'null') || """
            f"""',"properties":' || {props} || '}}' {tail}"""
        )
        return [row[0].encode() for row in session.execute(text(sql), params)]
    rows = session.execute(
        text(f"SELECT {_id(source)}, ST_AsBinary({_geom(source)}), {props} {tail}"), params
    ).all()
    return assemble(rows, target.id)


def assemble(rows: Sequence[Any], target: str) -> list[bytes]:
    """Features from (id, WKB, properties JSON) rows, converted from EPSG:4490 in one pass."""
    if not rows:
        return []
    geoms = to_crs(np.array([r[1] for r in rows], dtype=object), target)
    texts = shapely.to_geojson(geoms)
    return [
        b'{"type":"Feature","id":'
        + orjson.dumps(r[0])
        + b',"geometry":'
        + (g.encode() if g is not None else b"null")
        + b',"properties":'
        + r[2].encode()
        + b"}"
        for r, g in zip(rows, texts.tolist(), strict=True)
    ]


def to_crs(wkb: Any, target: str, official_order: bool = True) -> Any:
    """Stored WKB to shapely geometries in ``target``: in its official axis order for OGC
    responses, x/y for files (GeoPackage writes x/y whatever the CRS)."""
    geoms = shapely.from_wkb(wkb)
    info = crs.resolve(target)
    if info.id not in SAME_AS_STORAGE:
        geoms = crs.transform(geoms, crs.STORAGE_CRS, info.id)
    return crs.swap_xy(geoms) if info.yx and official_order else geoms


def one(
    session: Session, source: LayerSource, fid: int, target_crs: str
) -> tuple[bytes, int | None] | None:
    """One feature and its version (None for unversioned collections), or None."""
    version = "t.version" if source.versioned else "NULL"
    props = properties_json(source, list(source.properties))
    row = session.execute(
        text(
            f"SELECT {_id(source)}, ST_AsBinary({_geom(source)}), {props}, {version} "
            f"FROM {source.relation()} t WHERE {_id(source)} = :fid"
        ),
        {"fid": fid},
    ).first()
    if row is None:
        return None
    return assemble([row], target_crs)[0], row[3]


def csv_rows(
    session: Session, source: LayerSource, query: Query, batch: int = 5000
) -> Iterator[list[Any]]:
    """Rows for CSV output: id, the selected properties, then the geometry as WKT."""
    clause, params = where(source, query)
    names = _names(source, query)
    columns = "".join(f", t.{quote_ident(n)}" for n in names)
    params.update(limit=query.limit, offset=query.offset)
    result = session.execute(
        text(
            f"SELECT {_id(source)}{columns}, ST_AsBinary({_geom(source)}) "
            f"FROM {source.relation()} t "
            f"WHERE {clause} ORDER BY {order_by(source, query)} LIMIT :limit OFFSET :offset"
        ),
        params,
    )
    yield ["id", *names, "wkt"]
    while chunk := result.fetchmany(batch):
        geoms = to_crs(np.array([r[-1] for r in chunk], dtype=object), query.crs)
        wkt = shapely.to_wkt(geoms, rounding_precision=-1).tolist()
        for row, shape in zip(chunk, wkt, strict=True):
            yield [*row[:-1], shape]

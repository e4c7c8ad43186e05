"""Overlay of two readable collections: the joined features, or aggregates per feature of the
other collection (counts, and sum/avg/min/max of a numeric attribute).

Both queries walk the GiST index of the layer being matched: for each feature ``o`` of the other
collection, the matching features ``l`` are found with ``l.geom && <o's box>`` (implied by
ST_Intersects/ST_Within/ST_Contains, written out for distances and representative points), so
counting two million points into ten thousand grid cells is ten thousand index probes, not a
cross product. Large layers are stored in spatial order (layers.storage), so each probe reads a
few neighbouring pages. ``tests/test_layers_analysis.py`` checks the plans.
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

from geo.errors import ApiError
from geo.sources import LayerSource
from layers.cql import CompiledFilter, degree_margins, dwithin_sql
from layers.features import to_crs
from layers.schema import quote_ident

PREDICATES = ("intersects", "within", "contains", "dwithin")
# The largest distance join: beyond this a "nearby" join is a city-wide cross product.
MAX_DISTANCE_M = 50_000.0
NUMERIC = ("integer", "number")


@dataclass
class Side:
    source: LayerSource
    alias: str
    filter: CompiledFilter | None = None

    @property
    def geom(self) -> str:
        return f"{self.alias}.{quote_ident(self.source.geometry_column)}"

    @property
    def id(self) -> str:
        return f"{self.alias}.{quote_ident(self.source.id_column)}"

    def conditions(self) -> list[str]:
        return [self.filter.sql] if self.filter is not None else []


@dataclass
class Join:
    layer: Side
    other: Side
    predicate: str = "intersects"
    distance: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def condition(self) -> str:
        """How a feature of ``layer`` matches a feature of ``other``, index-first on layer."""
        lg, og = self.layer.geom, self.other.geom
        if self.predicate == "intersects":
            return f"ST_Intersects({lg}, {og})"
        if self.predicate == "within":
            return f"ST_Within({lg}, {og})"
        if self.predicate == "contains":
            return f"ST_Contains({lg}, {og})"
        if self.predicate == "assign":
            # One area per feature: the area holding its representative point.
            return f"({lg} && {og} AND ST_Intersects({og}, ST_PointOnSurface({lg})))"
        metres = float(self.distance or 0)
        dx, dy = degree_margins(metres)
        self.params.update(jdx=dx, jdy=dy, jd=metres)
        return dwithin_sql(lg, og, ":jdx", ":jdy", ":jd")

    def all_params(self) -> dict[str, Any]:
        params = dict(self.params)
        for side in (self.layer, self.other):
            if side.filter is not None:
                params.update(side.filter.params)
        return params


def check_join(predicate: str, distance: float | None) -> None:
    if predicate not in PREDICATES:
        raise ApiError(
            400, "InvalidParameterValue", f"predicate must be one of {', '.join(PREDICATES)}"
        )
    if predicate == "dwithin":
        if distance is None or not 0 < distance <= MAX_DISTANCE_M:
            raise ApiError(
                400,
                "InvalidParameterValue",
                f"predicate dwithin needs distance in metres, 0 < distance <= {MAX_DISTANCE_M:g}",
            )
    elif distance is not None:
        raise ApiError(400, "InvalidParameterValue", "distance is only used with dwithin")


def check_property(source: LayerSource, name: str | None) -> None:
    if name is None:
        return
    kind = source.properties.get(name)
    if kind not in NUMERIC:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"property {name!r} of {source.id!r} is not a numeric attribute"
            + (f" (it is {kind})" if kind else ""),
            {"numeric": [n for n, t in source.properties.items() if t in NUMERIC]},
        )


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]  # (id, properties..., wkb) per row
    truncated: bool


def aggregate_sql(join: Join, prop: str | None) -> tuple[str, dict[str, Any]]:
    """The aggregate query, with ``:limit`` and ``:offset`` left to bind.

    A join grouped by the other collection's feature: for each of its features the layer's
    GiST index is probed, and PostgreSQL may split the other collection between parallel
    workers (see :func:`allow_parallel`), which a per-row LATERAL sub-query would not allow.
    The page's attributes and geometries are joined back afterwards.
    """
    check_property(join.layer.source, prop)
    lo, ot = join.layer, join.other
    value = f"{lo.alias}.{quote_ident(prop)}" if prop else "NULL::float8"
    on = " AND ".join([join.condition(), *lo.conditions()])
    where_outer = " AND ".join(ot.conditions()) or "TRUE"
    columns = "".join(f", p.{quote_ident(n)}" for n in ot.source.properties)
    oid = quote_ident(ot.source.id_column)
    sql = (
        f"WITH a AS (SELECT {ot.id} AS oid, count({lo.id}) AS n, sum({value})::float8 AS s, "
        f"avg({value})::float8 AS av, min({value}) AS mn, max({value}) AS mx "
        f"FROM {ot.source.relation()} {ot.alias} "
        f"LEFT JOIN {lo.source.relation()} {lo.alias} ON {on} "
        f"WHERE {where_outer} GROUP BY {ot.id}) "
        f"SELECT p.{oid}{columns}, a.n, a.s, a.av, a.mn, a.mx, "
        f"ST_AsBinary(p.{quote_ident(ot.source.geometry_column)}) "
        f"FROM a JOIN {ot.source.relation()} p ON p.{oid} = a.oid "
        f"ORDER BY p.{oid} LIMIT :limit OFFSET :offset"
    )
    return sql, join.all_params()


def allow_parallel(session: Session) -> None:
    """Let this transaction's aggregate use parallel workers even on small outer tables: the
    cost is in the index probes of the inner layer, not in scanning the outer one, which the
    planner's defaults (8 MB minimum table size, setup costs) do not see."""
    for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size"):
        session.execute(text(f"SET LOCAL {setting} = 0"))


def aggregate(
    session: Session, join: Join, prop: str | None, limit: int, offset: int = 0
) -> Result:
    """One row per feature of ``join.other``: its attributes, the count of matching features of
    ``join.layer`` and, with ``prop``, their sum/avg/min/max of that attribute."""
    sql, params = aggregate_sql(join, prop)
    params |= {"limit": limit + 1, "offset": offset}
    allow_parallel(session)
    rows = [tuple(r) for r in session.execute(text(sql), params)]
    other_props = list(join.other.source.properties)
    names = ["id", *other_props, "count"]
    if prop:
        names += [f"{prop}_sum", f"{prop}_avg", f"{prop}_min", f"{prop}_max"]
    cut = len(other_props) + 2
    shaped = [(*r[:cut], *(r[cut : cut + 4] if prop else ()), r[-1]) for r in rows[:limit]]
    return Result(names, shaped, len(rows) > limit)


def features(session: Session, join: Join, limit: int, offset: int = 0) -> Result:
    """Each matching pair: the layer's feature with the other feature's id and attributes."""
    lo, ot = join.layer, join.other
    lprops, oprops = list(lo.source.properties), list(ot.source.properties)
    conditions = " AND ".join([join.condition(), *lo.conditions(), *ot.conditions()])
    columns = "".join(f", {lo.alias}.{quote_ident(n)}" for n in lprops)
    columns += f", {ot.id}" + "".join(f", {ot.alias}.{quote_ident(n)}" for n in oprops)
    sql = (
        f"SELECT {lo.id}{columns}, ST_AsBinary({lo.geom}) "
        f"FROM {lo.source.relation()} {lo.alias} "
        f"JOIN {ot.source.relation()} {ot.alias} ON {conditions} "
        f"ORDER BY {lo.id}, {ot.id} LIMIT :limit OFFSET :offset"
    )
    params = join.all_params() | {"limit": limit + 1, "offset": offset}
    rows = [tuple(r) for r in session.execute(text(sql), params)]
    prefix = ot.source.id
    names = ["id", *lprops, f"{prefix}.id", *(f"{prefix}.{n}" for n in oprops)]
    return Result(names, rows[:limit], len(rows) > limit)


def explain(session: Session, sql: str, params: dict[str, Any]) -> str:
    """The plan of a query (tests assert on it)."""
    return "\n".join(r[0] for r in session.execute(text("EXPLAIN " + sql), params))


def as_geojson(result: Result, target_crs: str) -> Iterator[bytes]:
    """A FeatureCollection streamed in pieces of 5000 features, geometries converted in one pass
    per piece. One piece per feature would cost a thread hop and an HTTP chunk each: measured at
    more than the whole spatial join for 10,000 aggregated grid cells."""
    yield b'{"type":"FeatureCollection","features":['
    for start in range(0, len(result.rows), 5000):
        chunk = result.rows[start : start + 5000]
        geoms = to_crs(np.array([r[-1] for r in chunk], dtype=object), target_crs)
        texts = shapely.to_geojson(geoms).tolist()
        pieces = [
            b'{"type":"Feature","id":'
            + orjson.dumps(row[0])
            + b',"geometry":'
            + (geom.encode() if geom else b"null")
            + b',"properties":'
            + orjson.dumps(dict(zip(result.columns[1:], row[1:-1], strict=True)), default=str)
            + b"}"
            for row, geom in zip(chunk, texts, strict=True)
        ]
        yield (b"," if start else b"") + b",".join(pieces)
    yield (
        b'],"numberReturned":'
        + str(len(result.rows)).encode()
        + b',"truncated":'
        + (b"true" if result.truncated else b"false")
        + b"}"
    )


def csv_rows(result: Result, target_crs: str) -> Iterator[Sequence[Any]]:
    yield [*result.columns, "wkt"]
    for start in range(0, len(result.rows), 5000):
        chunk = result.rows[start : start + 5000]
        geoms = to_crs(np.array([r[-1] for r in chunk], dtype=object), target_crs)
        for row, wkt in zip(
            chunk, shapely.to_wkt(geoms, rounding_precision=-1).tolist(), strict=True
        ):
            yield [*row[:-1], wkt]

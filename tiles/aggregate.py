"""Tiles over the feature cap: point clusters from a per-version pyramid, and sized drops.

A tile whose layer holds more than GEO_TILE_MAX_FEATURES features (tiles.sql probes for
cap + 1 rows) is not truncated to an arbitrary subset:

- **points** become clusters: the tile is cut into 32 x 32 cells (128 units of the 4096 grid,
  8 screen pixels), each cell one point at the mean position of its points, with `count` and
  `sum_<attr>` for each numeric attribute the caller may see. A z10 tile of a 2,000,000-point
  layer holds a million points, far too many to group per request, so the cells of every zoom
  up to GEO_TILE_CLUSTER_MAX_ZOOM are computed once per layer version and grant scope (the
  *build*, `tile_cluster_builds`, its cells in `tile_clusters`), and a clustered tile is one
  index range read of at most 1,024 rows (primary key: build, z, tile x, tile y).
- **lines and polygons** (and points beyond the pyramid) keep at most the cap largest features
  and none smaller than a screen pixel (tiles.sql.pixel_size: they would not be seen); the
  smallest are dropped, and a one-feature MVT layer `<layer>.dropped` says how many. Choosing
  them means reading every feature of the tile and sorting by size (a z12 tile of the
  500,000-polygon benchmark layer: 230,000 rows, over a second), so the build also makes that
  choice once for every over-full tile it finds and stores the tile it makes (`tile_over_cap`):
  such a tile is then one primary-key read. Encoding its cap of rows per request cost 66-78 ms
  at z11-14 of that layer (reading them by primary key, transforming, simplifying, encoding),
  and under load those few tiles held the cores while every other request waited.

The build also lists the tiles it knows to be over the cap (`tile_over_cap`; for points those
whose own cells hold more than the cap), so the engine reads their clustered or stored tile
at once instead of first probing the cap. A tile it does not list is probed as before: lines and
polygons found by the counts below may miss a tile that only large features from outside fill,
and that tile is chosen per request, the same features either way.

The build also gives each layer's *complete-from zoom* (TileJSON): the lowest zoom at which no
tile can exceed the cap, from the per-tile counts of every zoom. A tile reads a 64-unit margin
beyond its edges, so it is counted with the neighbours' cells along its edges (128 units wide):
conservative for points. Lines and polygons are counted at one point each
(ST_PointOnSurface), so a feature spanning several tiles is counted in one only (documented in
tiles/README.md).

Scopes: a build reads the source exactly as the caller sees it (its `where` carries a grant's
area, its `properties` only the attributes the grant shows), and is keyed by the layer's query
recipe, which includes the grant scope: clusters made for one scope never serve another.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base, get_engine, libpq_url
from geo.settings import get_settings
from geo.sources import LayerSource
from tiles.sql import (
    BUFFER,
    EXTENT,
    READ_BOX,
    STORAGE_SRID,
    TILE_SQUARE,
    LayerQuery,
    pixel_size,
    query_params,
)
from tiles.tms import Tile

# Cells per tile side = 2**CELL_BITS: 32 cells of 128 grid units, 8 pixels of a 256-pixel tile.
CELL_BITS = 5
# Half the width of the Web Mercator square, metres.
WORLD = 20037508.342789244
NUMERIC_TYPES = ("integer", "number")


class ClusterBuild(Base):
    """One layer version's pyramid, for one recipe (declared properties, filter, grant)."""

    __tablename__ = "tile_cluster_builds"
    __table_args__ = (UniqueConstraint("layer", "version", "recipe"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(BigInteger)
    recipe: Mapped[str] = mapped_column(String(40))
    # Lowest zoom at which no tile exceeds the cap; NULL: not within the pyramid's zooms.
    complete_from_zoom: Mapped[int | None] = mapped_column(SmallInteger)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ClusterCell(Base):
    """A cell of a clustered tile: its points' count, coordinate sums and attribute sums."""

    __tablename__ = "tile_clusters"

    build_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tile_cluster_builds.id", ondelete="CASCADE"), primary_key=True
    )
    z: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    tx: Mapped[int] = mapped_column(Integer, primary_key=True)
    ty: Mapped[int] = mapped_column(Integer, primary_key=True)
    cx: Mapped[int] = mapped_column(Integer, primary_key=True)
    cy: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    # Sums of the points' Web Mercator coordinates: the cluster sits at their mean.
    sx: Mapped[float] = mapped_column(Float(53))
    sy: Mapped[float] = mapped_column(Float(53))
    sums: Mapped[list[float]] = mapped_column(ARRAY(Float(53)))


class OverCap(Base):
    """A tile of a build known to hold more than the cap. Lines and polygons carry the tile
    itself, made once for the layer version (the cap largest features and the count of the
    others); points carry none (their clusters serve the tile)."""

    __tablename__ = "tile_over_cap"

    build_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tile_cluster_builds.id", ondelete="CASCADE"), primary_key=True
    )
    z: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    tx: Mapped[int] = mapped_column(Integer, primary_key=True)
    ty: Mapped[int] = mapped_column(Integer, primary_key=True)
    tile: Mapped[bytes | None] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class Build:
    id: int
    complete_from_zoom: int | None
    # (z, x, y) of the tiles known to be over the cap (tile_over_cap).
    over: frozenset[tuple[int, int, int]] = frozenset()


def numeric_properties(source: LayerSource) -> list[str]:
    """The attributes clusters sum: every numeric one the caller may see."""
    return [name for name, kind in source.properties.items() if kind in NUMERIC_TYPES]


def is_point_layer(source: LayerSource) -> bool:
    return source.geometry_type.lower() in ("point", "multipoint")


def cluster_statement(source: LayerSource) -> str:
    """A clustered tile from its build: the cells of (build, z, x, y), one primary-key range."""
    sums = [
        sql.SQL("sums[{i}]{cast} AS {name}").format(
            i=sql.Literal(i),
            cast=sql.SQL("::bigint" if source.properties[name] == "integer" else ""),
            name=sql.Identifier(f"sum_{name}"),
        )
        for i, name in enumerate(numeric_properties(source), 1)
    ]
    statement = sql.SQL(
        "SELECT ST_AsMVT(t, {name}, {extent}, 'geom') FROM ("
        "SELECT n AS count{sums}, ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(sx / n, sy / n), 3857), "
        f"{TILE_SQUARE}, {{extent}}, {{buffer}}, true) AS geom "
        "FROM tile_clusters WHERE build_id = %(build)s AND z = %(z)s "
        "AND tx = %(x)s AND ty = %(y)s ORDER BY cx, cy) AS t"
    ).format(
        name=sql.Literal(source.id),
        extent=sql.Literal(EXTENT),
        buffer=sql.Literal(BUFFER),
        sums=sql.SQL("").join(sql.SQL(", ") + s for s in sums),
    )
    return statement.as_string(None)


# -- the build ------------------------------------------------------------------------------------


def _point_expr(source: LayerSource) -> sql.Composable:
    geom = sql.Identifier(source.geometry_column)
    if source.geometry_type.lower() == "point":
        return sql.SQL("ST_Transform({g}, 3857)").format(g=geom)
    return sql.SQL("ST_Transform(ST_PointOnSurface({g}), 3857)").format(g=geom)


def _stage_sql(source: LayerSource, max_zoom: int, with_sums: bool) -> list[sql.SQL | sql.Composed]:
    """The pyramid in a temporary table: the finest level's cells from the features, then each
    coarser level from the one below (a cell is the union of 2 x 2 finer cells)."""
    names = numeric_properties(source) if with_sums else []
    cells = max_zoom + CELL_BITS
    cell_m = 2 * WORLD / 2**cells
    top = 2**cells - 1
    sums = sql.SQL("ARRAY[{}]::float8[]").format(
        sql.SQL(", ").join(sql.SQL("sum({})::float8").format(sql.Identifier(n)) for n in names)
    )
    rolled = sql.SQL("ARRAY[{}]::float8[]").format(
        sql.SQL(", ").join(
            sql.SQL("sum(sums[{}])").format(sql.Literal(i + 1)) for i in range(len(names))
        )
    )
    attributes = sql.SQL("").join(sql.SQL(", ") + sql.Identifier(n) for n in names)
    where = sql.SQL(f" AND ({source.where})") if source.where else sql.SQL("")
    statements: list[sql.SQL | sql.Composed] = [
        sql.SQL(
            "CREATE TEMP TABLE cluster_stage (z smallint, tx int, ty int, cx int, cy int, "
            "n bigint, sx float8, sy float8, sums float8[]) ON COMMIT DROP"
        ),
        sql.SQL(
            "INSERT INTO cluster_stage SELECT {z}, cx >> {bits}, cy >> {bits}, cx, cy, count(*), "
            "sum(mx), sum(my), {sums} FROM ("
            "SELECT least(greatest(floor((ST_X(p) + {world}) / {cell})::int, 0), {top}) AS cx, "
            "least(greatest(floor(({world} - ST_Y(p)) / {cell})::int, 0), {top}) AS cy, "
            "ST_X(p) AS mx, ST_Y(p) AS my{attributes} FROM ("
            "SELECT {point} AS p{attributes} FROM {table} "
            "WHERE {geom} IS NOT NULL AND NOT ST_IsEmpty({geom}){where}) AS s) AS c "
            "GROUP BY cx, cy"
        ).format(
            z=sql.Literal(max_zoom),
            bits=sql.Literal(CELL_BITS),
            sums=sums,
            world=sql.Literal(WORLD),
            cell=sql.Literal(cell_m),
            top=sql.Literal(top),
            attributes=attributes,
            point=_point_expr(source),
            table=sql.SQL(source.table),
            geom=sql.Identifier(source.geometry_column),
            where=where,
        ),
    ]
    for z in range(max_zoom - 1, -1, -1):
        statements.append(
            sql.SQL(
                "INSERT INTO cluster_stage SELECT {z}, (cx >> 1) >> {bits}, (cy >> 1) >> {bits}, "
                "cx >> 1, cy >> 1, sum(n), sum(sx), sum(sy), {rolled} FROM cluster_stage "
                "WHERE z = {finer} GROUP BY cx >> 1, cy >> 1"
            ).format(
                z=sql.Literal(z),
                bits=sql.Literal(CELL_BITS),
                rolled=rolled,
                finer=sql.Literal(z + 1),
            )
        )
    return statements


# Each tile's count with its margin: its own points, plus those of the neighbours' cells along
# its edges (a cell is 128 grid units, the margin 64: conservative by half a cell at most).
_TILE_COUNTS_SQL = sql.SQL(
    "CREATE TEMP TABLE cluster_tiles ON COMMIT DROP AS "
    "SELECT z, tx, ty, sum(n) AS n FROM ("
    "SELECT z, tx, ty, n FROM cluster_stage UNION ALL "
    "SELECT c.z, nb.tx, nb.ty, c.n FROM cluster_stage AS c CROSS JOIN LATERAL ("
    "SELECT DISTINCT (c.cx + dx) >> {bits} AS tx, (c.cy + dy) >> {bits} AS ty "
    "FROM (VALUES (-1), (0), (1)) AS a (dx), (VALUES (-1), (0), (1)) AS b (dy)) AS nb "
    "WHERE (c.cx & {last} IN (0, {last}) OR c.cy & {last} IN (0, {last})) "
    "AND (nb.tx, nb.ty) <> (c.tx, c.ty)) AS e GROUP BY z, tx, ty"
).format(bits=sql.Literal(CELL_BITS), last=sql.Literal(2**CELL_BITS - 1))
# The deepest zoom with a tile past the cap.
_MAX_OVER_SQL = "SELECT max(z) FROM cluster_tiles WHERE n > %s"
# Points: tiles whose own cells (no margin) hold more than the cap are over it for certain.
_POINTS_OVER_SQL = (
    "INSERT INTO tile_over_cap (build_id, z, tx, ty) SELECT %s, z, tx, ty FROM cluster_stage "
    "WHERE z < %s GROUP BY z, tx, ty HAVING sum(n) > %s"
)
# Lines and polygons: the tiles that may be over the cap, each then counted exactly.
_CANDIDATES_SQL = "SELECT z, tx, ty FROM cluster_tiles WHERE z < %s AND n > %s ORDER BY z, tx, ty"
# Whether a tile's envelope, as the tile statement reads it, holds the whole extent of the layer.
_HOLDS_ALL_SQL = f"SELECT {READ_BOX} ~ ST_SetSRID(%(extent)s::box2d::geometry, {STORAGE_SRID})"


def _total_over(conn: psycopg.Connection, source: LayerSource, cap: int) -> bool:
    where = f" WHERE {source.where}" if source.where else ""
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {source.table}{where} LIMIT {cap + 1}) AS s"
    ).fetchone()
    return bool(row and row[0] > cap)


def _over(conn: psycopg.Connection, build_id: int) -> frozenset[tuple[int, int, int]]:
    rows = conn.execute(
        "SELECT z, tx, ty FROM tile_over_cap WHERE build_id = %s", (build_id,)
    ).fetchall()
    return frozenset((z, x, y) for z, x, y in rows)


def _find(conn: psycopg.Connection, source: LayerSource, recipe: str) -> Build | None:
    row = conn.execute(
        "SELECT id, complete_from_zoom FROM tile_cluster_builds "
        "WHERE layer = %s AND version = %s AND recipe = %s",
        (source.id, source.version, recipe),
    ).fetchone()
    return Build(row[0], row[1], _over(conn, row[0])) if row else None


def _choose_kept(
    conn: psycopg.Connection,
    source: LayerSource,
    query: LayerQuery,
    build_id: int,
    cap: int,
    below_zoom: int,
) -> None:
    """For each tile the counts say may be over the cap, below `below_zoom`: its exact count
    (the tile statement's own rows) and, when over, the tile of the cap largest of those not
    below a pixel, as drop_text chooses them, encoded and stored. Tiles whose envelope holds
    the layer's whole extent (the low zooms) hold the same features: those with the same
    pixel size (zoom and latitude) are chosen once (and each encoded for its own envelope)."""
    assert query.select_text is not None and query.kept_text is not None
    where = f" WHERE {source.where}" if source.where else ""
    row = conn.execute(
        f"SELECT ST_Extent({source.geometry_column})::text FROM {source.table}{where}"
    ).fetchone()
    extent = row[0] if row else None
    whole: dict[float, tuple[int, list[int]]] = {}
    for z, x, y in conn.execute(_CANDIDATES_SQL, (below_zoom, cap)).fetchall():
        tile = Tile(z, x, y)
        params = query_params(query, tile)
        # Tiles holding the whole layer differ only in this (their `pixel` parameter).
        pixel = pixel_size(tile)
        holds_all = extent is not None and conn.execute(
            _HOLDS_ALL_SQL, {**params, "extent": extent}
        ).fetchone() == (True,)
        if holds_all and pixel in whole:
            count, kept = whole[pixel]
        else:
            found = conn.execute(query.select_text, params, prepare=True).fetchone()
            assert found is not None
            count, kept = found
            if holds_all:
                whole[pixel] = (count, kept)
        if count > cap:
            made = conn.execute(
                query.kept_text, {**params, "kept": kept, "dropped": count - len(kept)}
            ).fetchone()
            assert made is not None
            conn.execute(
                "INSERT INTO tile_over_cap (build_id, z, tx, ty, tile) VALUES (%s, %s, %s, %s, %s)",
                (build_id, z, x, y, made[0]),
            )


def build(source: LayerSource, query: LayerQuery, cap: int, max_zoom: int) -> Build:
    """The layer version's build, made now unless a worker made it already (an advisory lock
    per layer keeps two workers from building the same one). Runs on the primary, under the
    bulk statement timeout: a 2,000,000-point layer takes tens of seconds, once per version."""
    settings = get_settings()
    with psycopg.connect(libpq_url(get_engine().url)) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tile-clusters:{source.id}",))
        recipe = query.recipe
        found = _find(conn, source, recipe)
        if found is not None:
            return found
        conn.execute(f"SET LOCAL statement_timeout = {int(settings.bulk_statement_timeout_ms)}")
        conn.execute(
            "DELETE FROM tile_cluster_builds WHERE layer = %s AND version < %s",
            (source.id, source.version),
        )
        complete: int | None = 0
        points = is_point_layer(source)
        if _total_over(conn, source, cap):
            for statement in _stage_sql(source, max_zoom, points):
                conn.execute(statement)
            conn.execute(_TILE_COUNTS_SQL)
            row = conn.execute(_MAX_OVER_SQL, (cap,)).fetchone()
            over = row[0] if row else None
            complete = None if over == max_zoom else (0 if over is None else over + 1)
        row = conn.execute(
            "INSERT INTO tile_cluster_builds (layer, version, recipe, complete_from_zoom) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            (source.id, source.version, recipe, complete),
        ).fetchone()
        assert row is not None
        build_id = row[0]
        below = max_zoom + 1 if complete is None else complete
        if points and complete != 0:
            conn.execute(
                "INSERT INTO tile_clusters SELECT %s, z, tx, ty, cx, cy, n, sx, sy, sums "
                "FROM cluster_stage WHERE z < %s",
                (build_id, below),
            )
            conn.execute(_POINTS_OVER_SQL, (build_id, below, cap))
        elif query.select_text is not None and complete != 0:
            _choose_kept(conn, source, query, build_id, cap, below)
        return Build(build_id, complete, _over(conn, build_id))


class Builds:
    """The builds this worker knows, by (layer, version, recipe); one build at a time per key
    in this worker (others wait for it rather than start their own)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, str], Build] = {}
        self._locks: dict[tuple[str, int, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def known(self, source: LayerSource, recipe: str) -> Build | None:
        """The build if this worker has it already (no waiting, no database)."""
        return self._known.get((source.id, source.version, recipe))

    def get(self, source: LayerSource, query: LayerQuery, cap: int, max_zoom: int) -> Build:
        """Blocking (a thread's work): the build, made if missing."""
        key = (source.id, source.version, query.recipe)
        known = self._known.get(key)
        if known is not None:
            return known
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            known = self._known.get(key)
            if known is None:
                known = build(source, query, cap, max_zoom)
                self._known[key] = known
        with self._guard:
            self._locks.pop(key, None)
        return known

    def clear(self) -> None:
        self._known.clear()

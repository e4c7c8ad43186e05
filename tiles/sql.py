"""The SQL of one layer's tile, written once per layer and prepared on every connection.

The shape follows the fast tile servers (Martin): the tile envelope is computed in Web Mercator
by ST_TileEnvelope. A source that stores its geometry in Web Mercator too (department layers:
LayerSource.mercator_column, kept by layers.storage) is searched and drawn from that column, and
nothing is transformed. For any other source the box is transformed once into the storage CRS
(EPSG:4490), so the `&&` test runs on the layer's GiST index against a constant box instead of
transforming every row, and only the rows found are transformed to 3857. Either way the rows
are simplified for the zoom (lines and polygons), clipped and quantised by ST_AsMVTGeom, and
encoded by ST_AsMVT in the database. Python never touches a coordinate. Every value that
changes per tile (z, x, y, margin, tolerance, cap) is a bound parameter, so one prepared
statement per layer and connection serves every tile.

Each statement yields one MVT layer named by the layer id; a protobuf message is the
concatenation of its fields, so the composite of several layers is the concatenation of their
bytes (see tiles.engine).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from psycopg import sql
from psycopg.types.numeric import Float8, Int4

from geo.sources import LayerSource
from tiles.tms import Tile, tile_size_m

EXTENT = 4096
# Pixels of the 4096 grid kept around each tile, so symbols and strokes at an edge are not cut.
BUFFER = 64
# Simplification tolerance, in units of the 4096 grid: one unit is 1/16 of a screen pixel on a
# 256-pixel tile, far below what anyone sees, yet it drops most vertices of detailed polygons at
# low zooms. ST_AsMVTGeom then snaps what is left to the grid.
SIMPLIFY_UNITS = 1.0
# A screen pixel of a 256-pixel tile, in units of the 4096 grid (as the clusters' cells count
# pixels, tiles.aggregate): past the cap, lines and polygons smaller than it are not drawn.
PIXEL_UNITS = EXTENT / 256
STORAGE_SRID = 4490
# Name of the feature-id column inside the query.
FID = "__fid"
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
POINT_TYPES = frozenset({"point", "multipoint"})
# Name suffix of the MVT layer that says how many features an over-full tile left out.
DROPPED_SUFFIX = ".dropped"
# The box a tile reads, in the storage CRS: the tile and its margin, cut at the edges of the
# Web Mercator square first. Uncut, the margin of a tile on the antimeridian passes 180 degrees,
# the transformation wraps it to -180, and the box spans the whole world in longitude (a z3
# tile at 135-180E then "held" a layer at 117E: dropped counts for features it could not show).
MERCATOR_BOX = (
    "ST_ClipByBox2D(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), "
    "ST_TileEnvelope(0, 0, 0))"
)
READ_BOX = f"ST_Transform({MERCATOR_BOX}, {STORAGE_SRID})"

# The tile's square in Web Mercator, for ST_AsMVTGeom. A scalar subquery, so that it is made once
# per tile (an InitPlan): once a prepared statement runs on a generic plan (PostgreSQL's choice
# after five executions), a function of the bound z/x/y in the select list is called again for
# every row. Measured serially over the benchmark's tile mix: 4-5% less time per tile, 15% on
# dense z13 point tiles; the bytes are the same.
TILE_SQUARE = "(SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s))"


@dataclass(frozen=True)
class LayerQuery:
    """A layer's tile statements and the fingerprint of everything that shapes their output."""

    layer: str
    # The tile and `over`: true when it holds more than the cap, its bytes then not the tile
    # (see build_query).
    text: str
    # An over-full tile: the cap largest features and the `<layer>.dropped` count layer.
    drop_text: str
    simplify: bool
    # Whether features carry the id as MVT feature id (integer ids) besides the `id` property.
    integer_id: bool
    # Changes when the SQL does (declared properties, filter, cap, this module) and with the
    # grant scope it was built for (geo.sources.Scope): cached tiles made by another recipe,
    # or for another grant, are never served for this one.
    recipe: str
    # Point layers: a clustered tile from the layer's build (tiles.aggregate).
    cluster_text: str | None = None
    # Lines and polygons keyed by integer ids: the build's selection of an over-full tile (its
    # feature count and the ids of the cap largest, as drop_text keeps them), and the tile the
    # build makes from that selection (%(kept)s, %(dropped)s) and stores (tiles.aggregate,
    # tile_over_cap; served by STORED_TILE_SQL).
    select_text: str | None = None
    kept_text: str | None = None


def build_query(
    source: LayerSource, id_type: str, max_features: int, cluster_text: str | None = None
) -> LayerQuery:
    """`id_type` is the id column's SQL type: MVT feature ids must be unsigned integers, so a
    layer keyed by text keeps its id as a property only. `cluster_text` is the clustered tile's
    statement (tiles.aggregate) for point layers; the recipe covers it too.

    The tile statement reads at most cap + 1 rows from the GiST index and encodes them in one
    pass, counting them as it goes: up to the cap its bytes are exactly a plain `LIMIT cap`
    query's (same rows, same order); past it, it says `over`, the engine throws its bytes away
    and asks for the clustered or sized-down tile instead. No full count is ever made to
    decide. Encoding cap + 1 rows for nothing costs tens of milliseconds, but only on a tile
    the layer's build does not list as over the cap (tiles.aggregate); a materialised set of
    rows, counted before encoding, cost every other tile about 8% more (a dense z16 tile of
    the benchmark's points: 7.0 ms against 6.45)."""
    geom = sql.Identifier(source.geometry_column)
    ident = sql.Identifier(source.id_column)
    simplify = source.geometry_type.lower() not in POINT_TYPES
    # What the rows are searched (`&&`, on its GiST index) and drawn from. A Web Mercator box
    # holds the same rows of a Web Mercator column as its transform does of the storage column:
    # the projection maps longitudes and latitudes to x and y each on its own, monotonically,
    # so bounding boxes map to bounding boxes (tests/test_tiles_engine.py compares the features).
    in_3857: sql.Composable
    if source.mercator_column:
        drawn = sql.Identifier(source.mercator_column)
        box, in_3857 = sql.SQL(MERCATOR_BOX), sql.SQL("__geom")
    else:
        drawn, box = geom, sql.SQL(READ_BOX)
        in_3857 = sql.SQL("ST_Transform(__geom, 3857)")
    if simplify:
        in_3857 = sql.SQL("ST_Simplify({g}, %(tolerance)s, true)").format(g=in_3857)
    # An integer id travels as the MVT feature id (MapLibre's feature.id), not again as a
    # property: a property of unique values grows ST_AsMVT's value table by one entry per
    # feature, about 30% of a dense tile's encoding time. Other ids stay property `id`.
    integer_id = id_type in INTEGER_TYPES
    id_alias = FID if integer_id else "id"
    columns = [sql.SQL("{} AS {}").format(ident, sql.Identifier(id_alias))]
    aliases = [sql.Identifier(id_alias)]
    for name, kind in source.properties.items():
        if name in ("id", FID, "geom", source.geometry_column):
            continue
        # MVT values are strings, numbers and booleans: dates travel as ISO text.
        cast = sql.SQL("::text") if kind in ("date", "datetime") else sql.SQL("")
        column = sql.Identifier(name)
        columns.append(sql.SQL("{}{} AS {}").format(column, cast, column))
        aliases.append(column)
    # The filter is the catalogue's own SQL; `%` is doubled so psycopg does not read it as a
    # placeholder (a LIKE pattern, say).
    where = sql.SQL(f" AND ({source.where.replace('%', '%%')})") if source.where else sql.SQL("")
    rows = sql.SQL(
        "SELECT {columns}, {drawn} AS __geom{extra} FROM {table} WHERE {drawn} && {box}{where}"
    )
    common = {
        "columns": sql.SQL(", ").join(columns),
        "drawn": drawn,
        "table": sql.SQL(source.table),
        "box": box,
        "where": where,
    }

    def encode(relation: sql.Composable, also: sql.Composable = sql.SQL("")) -> sql.Composed:
        return sql.SQL(
            "SELECT ST_AsMVT(t, {name}, {extent}, 'geom', {fid}){also} FROM ("
            "SELECT {aliases}, ST_AsMVTGeom({geom3857}, "
            f"{TILE_SQUARE}, {{extent}}, {{buffer}}, true) AS geom "
            "FROM {relation}) AS t"
        ).format(
            name=sql.Literal(source.id),
            extent=sql.Literal(EXTENT),
            fid=sql.Literal(FID if integer_id else None),
            aliases=sql.SQL(", ").join(aliases),
            geom3857=in_3857,
            buffer=sql.Literal(BUFFER),
            relation=relation,
            also=also,
        )

    statement = encode(
        sql.SQL("({rows} LIMIT {probe}) AS f").format(
            rows=rows.format(extra=sql.SQL(""), **common), probe=sql.Literal(max_features + 1)
        ),
        sql.SQL(", count(*) > {limit} AS over").format(limit=sql.Literal(max_features)),
    )
    # Over the cap: the largest features first (a linear size in storage units: the square
    # root of a polygon's area, a line's length, 0 for a point), those below a pixel left out
    # (%(pixel)s, see pixel_size), at most the cap of them kept, and a one-feature layer
    # `<layer>.dropped` at the tile's centre with the number left out.
    size_of = sql.SQL(
        "CASE ST_Dimension({g}) WHEN 2 THEN sqrt(ST_Area({g})) ELSE ST_Length({g}) END"
    ).format(g=geom)
    size = sql.SQL(", {} AS __size").format(size_of)
    dropped_layer = sql.SQL(
        "SELECT ST_AsMVT(d, {dropped}, {extent}, 'geom') FROM ("
        "SELECT {count} AS dropped, ST_MakePoint({half}, {half}) AS geom) AS d"
    )
    common_dropped = {
        "dropped": sql.Literal(f"{source.id}{DROPPED_SUFFIX}"),
        "extent": sql.Literal(EXTENT),
        "half": sql.Literal(EXTENT // 2),
    }
    drop = sql.SQL(
        "WITH f AS ({rows}), kept AS MATERIALIZED ("
        "SELECT * FROM f WHERE __size >= %(pixel)s ORDER BY __size DESC, {id_alias} "
        "LIMIT {limit}) "
        "SELECT coalesce(({encode}), ''::bytea) || ({dropped_layer})"
    ).format(
        rows=rows.format(extra=size, **common),
        id_alias=sql.Identifier(id_alias),
        limit=sql.Literal(max_features),
        encode=encode(sql.Identifier("kept")),
        dropped_layer=dropped_layer.format(
            count=sql.SQL("(SELECT count(*) FROM f) - (SELECT count(*) FROM kept)"),
            **common_dropped,
        ),
    )
    select_text = kept_text = None
    if integer_id and simplify:
        # The same rows, sizes and order as `drop`, narrowed to id and size: this is what the
        # build stores per over-full tile (tiles.aggregate).
        narrow = sql.SQL(
            "WITH f AS MATERIALIZED (SELECT {ident} AS __kid, {size_of} AS __size FROM {table} "
            "WHERE {drawn} && {box}{where}) "
        ).format(ident=ident, size_of=size_of, **common)
        choice = sql.SQL(
            "ARRAY(SELECT __kid FROM f WHERE __size >= %(pixel)s "
            "ORDER BY __size DESC, __kid LIMIT {limit})"
        ).format(limit=sql.Literal(max_features))
        select = narrow + sql.SQL("SELECT (SELECT count(*) FROM f), ") + choice
        # The kept rows by primary key, in the chosen order, encoded as `drop` encodes them.
        # The grant's filter is applied again: a row outside the scope is never encoded,
        # whatever ids it is given.
        kept_rows = sql.SQL(
            "(SELECT {columns}, {drawn} AS __geom FROM {table} "
            "JOIN unnest(o.kept) WITH ORDINALITY AS k (__kid, __ord) ON {ident} = k.__kid "
            "WHERE true{where} ORDER BY k.__ord) AS kept"
        ).format(ident=ident, **common)
        from_kept = sql.SQL("SELECT coalesce(({encode}), ''::bytea) || ({dropped_layer}) ").format(
            encode=encode(kept_rows),
            dropped_layer=dropped_layer.format(count=sql.SQL("o.dropped"), **common_dropped),
        )
        kept = from_kept + sql.SQL(
            "FROM (SELECT %(dropped)s::bigint AS dropped, %(kept)s::bigint[] AS kept) AS o"
        )
        # Chosen per request the same way: only ids and sizes are read and sorted (the wide
        # rows of `drop` went to disk on a z12 tile of 230,000 polygons), then the kept rows.
        drop = (
            narrow
            + from_kept
            + sql.SQL(
                "FROM (SELECT (SELECT count(*) FROM f) - cardinality(c.kept) AS dropped, c.kept "
                "FROM (SELECT {choice} AS kept) AS c) AS o"
            ).format(choice=choice)
        )
        select_text, kept_text = select.as_string(None), kept.as_string(None)
    text = statement.as_string(None)
    drop_text = drop.as_string(None)
    recipe = hashlib.blake2b(
        f"{text}\0{drop_text}\0{cluster_text}\0{kept_text}\0{source.scope_key()}".encode(),
        digest_size=6,
    ).hexdigest()
    return LayerQuery(
        source.id,
        text,
        drop_text,
        simplify,
        integer_id,
        recipe,
        cluster_text,
        select_text,
        kept_text,
    )


# An over-full tile of lines or polygons as its layer version's build made it (kept_text):
# one primary-key read (tile_over_cap_pkey) and no encoding. Encoding the cap's rows took
# 66-78 ms per tile at z11-14 of the benchmark's 500,000 polygons, and under load those few
# tiles held both cores while every other request waited (the uncached p99).
STORED_TILE_SQL = (
    "SELECT tile FROM tile_over_cap "
    "WHERE build_id = %(build)s AND z = %(z)s AND tx = %(x)s AND ty = %(y)s"
)


def query_params(query: LayerQuery, tile: Tile) -> dict[str, object]:
    """The bound values for one tile; z/x/y are sent as int4 so the prepared types never vary."""
    params: dict[str, object] = {
        "z": Int4(tile.z),
        "x": Int4(tile.x),
        "y": Int4(tile.y),
        "margin": Float8(BUFFER / EXTENT),
    }
    if query.simplify:
        params["tolerance"] = Float8(tile_size_m(tile.z) / EXTENT * SIMPLIFY_UNITS)
    # Points have no size (0): past the cap, those beyond the cluster zooms are all candidates.
    params["pixel"] = Float8(pixel_size(tile) if query.simplify else 0.0)
    return params


def pixel_size(tile: Tile) -> float:
    """A screen pixel of the tile in storage units (degrees), to compare with a feature's size
    (the square root of its area in square degrees, or its length). A Web Mercator pixel spans
    360 / 2^z / 256 degrees of longitude; a square one pixel wide on screen at latitude phi
    covers that times sqrt(cos phi) as the square root of its area in degrees (its latitude
    side is shorter by cos phi), taken at the tile's centre."""
    n = 2**tile.z
    latitude = math.atan(math.sinh(math.pi * (1 - 2 * (tile.y + 0.5) / n)))
    return 360 / n / EXTENT * PIXEL_UNITS * math.sqrt(math.cos(latitude))


ID_TYPE_SQL = (
    "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
    "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped"
)

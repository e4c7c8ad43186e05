"""The set-based statements of the address import, one function per step.

Every step is one statement over the whole file. The CREATE TABLE AS steps read only regular
(UNLOGGED) tables and parallel-safe functions, so PostgreSQL runs them with parallel workers;
temporary tables would forbid that. Each cleaned value is computed once (a single
``regexp_replace`` standardises an element) and later steps read stored columns, because the
planner inlines subquery expressions wherever they are referenced.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from addressbook.models import ELEMENT_WIDTHS, ELEMENTS
from geo.settings import get_settings

NUMBER = r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
# The suffix address_standard gives a bare number of each element.
STANDARD = {"house_number": "号", "building": "号楼", "unit": "单元", "room": "室"}


def _coordinates(columns: list[str], xy: str | None) -> tuple[str, str, str]:
    """The expressions of a staging row's x and y (numbers, or NULL), and the join bringing
    the converted ones when the file's CRS needed converting."""
    if xy:
        return "v.x", "v.y", f"LEFT JOIN {xy} v ON v.line = s.line"
    x = f"CASE WHEN s.lon ~ '{NUMBER}' THEN s.lon::float8 END" if "lon" in columns else "NULL"
    y = f"CASE WHEN s.lat ~ '{NUMBER}' THEN s.lat::float8 END" if "lat" in columns else "NULL"
    return f"({x})::float8", f"({y})::float8", ""


def _value(name: str, columns: list[str]) -> str:
    """The cleaned value of one staging column."""
    if name not in columns:
        return "NULL::text"
    if name not in STANDARD:
        return f"nullif(btrim(s.{name}), '')"
    # address_standard (the migration's SQL function shared with edits and the geocoder)
    # spells elements the library's way; bare ASCII numbers, the bulk of real files, get
    # the same answer from one cheap test instead of its several regular expressions.
    return (
        f"CASE WHEN s.{name} ~ '^[0-9]+$' THEN s.{name} || '{STANDARD[name]}' "
        f"ELSE address_standard('{name}', s.{name}) END"
    )


def districts_by_location(
    session: Session, stage: str, out: str, columns: list[str], xy: str | None
) -> bool:
    """Table `out` (line, code): the district holding the point of each row that names none
    (a GiST probe per such row on idx_admin_areas_geom; the smallest code where districts
    overlap). Whether there are any: most files name every district, and resolve then needs
    no join for it."""
    x, y, join = _coordinates(columns, xy)
    blank = "nullif(btrim(s.district), '') IS NULL" if "district" in columns else "true"
    session.execute(
        text(
            f"""
            CREATE UNLOGGED TABLE {out} AS
            SELECT s.line, p.code FROM {stage} s {join}
            CROSS JOIN LATERAL (
                SELECT a.code FROM current_admin_areas a
                WHERE a.level = 'district'
                  AND ST_Intersects(a.geom, ST_SetSRID(ST_MakePoint({x}, {y}), 4490))
                ORDER BY a.code LIMIT 1) p
            WHERE {blank} AND {x} IS NOT NULL AND {y} IS NOT NULL
            """
        )
    )
    return bool(session.execute(text(f"SELECT EXISTS (SELECT 1 FROM {out})")).scalar())


def resolve(
    session: Session,
    stage: str,
    keys: str,
    out: str,
    columns: list[str],
    xy: str | None,
    located: str | None,
) -> None:
    """One statement from raw text rows to checked rows: clean (trim, full-width digits,
    standard element forms, coordinates), resolve names and codes to area codes (hash joins on
    the key table; `located` is districts_by_location's table, when it found any), give every
    bad row its reason, compute the stable code and make the point.

    Two layers. The inner one cleans and joins, in parallel workers: it is fenced with OFFSET 0,
    because PostgreSQL would otherwise inline a cleaned value's expression everywhere it is used
    and compute it several times per row (the regular expressions that check coordinates most
    of all). The outer one, in the leader, reads the inner one's columns. Joins for columns the
    file lacks are left out."""
    x, y, join = _coordinates(columns, xy)
    minx, miny, maxx, maxy = get_settings().extent
    names = ("district", "subdistrict", "community", "grid", "code", "aliases", *ELEMENTS)
    lon = "s.lon" if "lon" in columns else "NULL::text"
    lat = "s.lat" if "lat" in columns else "NULL::text"
    named = "coalesce(d.code, df.code)" if located else "d.code"
    subdistrict = "sd.code" if "subdistrict" in columns else "NULL::text"
    community = "coalesce(c1.code, c2.code)" if "community" in columns else "NULL::text"
    grid = "g.code::text" if "grid" in columns else "NULL::text"
    # The district the deepest named area lies in today: the named one, unless a historical
    # name led to an area that has moved to another district since.
    district = "coalesce({}{})".format(
        "c1.district_code, c2.district_code, " if "community" in columns else "",
        f"sd.district_code, {named}" if "subdistrict" in columns else named,
    )
    notes: list[str] = []

    def keyed(level: str, alias: str, scope: str, value: str) -> str:
        """A left join of the resolver's keys (addressbook.areas.resolver.KEYS) of one level."""
        notes.append(f"{alias}.note")
        return (
            f"LEFT JOIN (SELECT scope, key, code, district_code, note FROM {keys} "
            f"WHERE level = '{level}') {alias} ON {alias}.scope = {scope} "
            f"AND {alias}.key = {_value(value, columns)}"
        )

    joins = [
        keyed("district", "d", "''", "district"),
        f"LEFT JOIN {located} df ON df.line = s.line" if located else "",
    ]
    if "subdistrict" in columns:
        joins.append(keyed("subdistrict", "sd", named, "subdistrict"))
    if "community" in columns:
        joins.append(keyed("community", "c1", subdistrict, "community"))
        # without a subdistrict, a community name must be unique in its district
        joins.append(
            keyed("community_in_district", "c2", named, "community") + f" AND {subdistrict} IS NULL"
        )
    if "grid" in columns:
        joins.append(f"LEFT JOIN grids g ON g.code = {_value('grid', columns)}")
    inner = ",\n".join(
        [
            "s.line",
            f"{lon} AS lon",
            f"{lat} AS lat",
            f"{x} AS x",
            f"{y} AS y",
            *(f"{_value(n, columns)} AS {n}" for n in names),
            f"{district} AS district_code",
            f"{subdistrict} AS subdistrict_code",
            f"{community} AS community_code",
            f"{grid} AS grid_code",
            # why a key led nowhere (a superseded area without successor), for the problem
            "d.note AS district_note",
            f"{'sd.note' if 'subdistrict' in columns else 'NULL'} AS subdistrict_note",
            f"{'coalesce(c1.note, c2.note)' if 'community' in columns else 'NULL'}"
            " AS community_note",
            f"nullif(concat_ws('; ', {', '.join(notes)}), '') AS note",
        ]
    )
    too_long = "\n".join(
        f"WHEN length(q.{k}) > {n} THEN '{k} is longer than {n} characters'"
        for k, n in ELEMENT_WIDTHS.items()
    )
    session.execute(
        text(
            f"""
            CREATE UNLOGGED TABLE {out} AS
            SELECT q.line, q.district_code, q.subdistrict_code, q.community_code, q.grid_code,
                   q.road, q.house_number, q.compound, q.building, q.unit, q.room, q.aliases,
                   q.note,
                   CASE
                     WHEN q.x IS NULL OR q.y IS NULL THEN CASE
                       WHEN q.lon LIKE 'not a Point%' THEN 'geometry is ' || q.lon
                       WHEN nullif(btrim(q.lon), '') IS NULL OR nullif(btrim(q.lat), '') IS NULL
                         THEN 'missing coordinates (lon, lat)'
                       ELSE format('coordinates are not numbers: lon %L, lat %L', q.lon, q.lat)
                     END
                     WHEN NOT (q.x BETWEEN {minx} AND {maxx} AND q.y BETWEEN {miny} AND {maxy})
                       THEN format('coordinates (%s, %s) are outside the city extent '
                                   '{minx},{miny},{maxx},{maxy} (swapped lon/lat or wrong crs?)',
                                   round(q.x::numeric, 6), round(q.y::numeric, 6))
                     WHEN q.district IS NOT NULL AND q.district_code IS NULL
                       THEN format('unknown district %L', q.district)
                            || coalesce(': ' || q.district_note, '')
                     WHEN q.district_code IS NULL THEN 'no district given and the point is in none'
                     WHEN q.subdistrict IS NOT NULL AND q.subdistrict_code IS NULL
                       THEN format('unknown subdistrict %L in %s', q.subdistrict,
                                   coalesce(q.district, q.district_code))
                            || coalesce(': ' || q.subdistrict_note, '')
                     WHEN q.community IS NOT NULL AND q.community_code IS NULL
                       THEN format('unknown community %L', q.community)
                            || coalesce(': ' || q.community_note, '')
                     WHEN q.grid IS NOT NULL AND q.grid_code IS NULL
                       THEN format('unknown grid %L', q.grid)
                     WHEN q.road IS NULL AND q.compound IS NULL THEN 'missing road and compound'
                     {too_long}
                     WHEN length(q.code) > 40 THEN 'code is longer than 40 characters'
                   END AS problem,
                   coalesce(q.code, address_code(q.district_code, q.road, q.house_number,
                       q.compound, q.building, q.unit, q.room)) AS code,
                   ST_SetSRID(ST_MakePoint(q.x, q.y), 4490) AS pt
            FROM (SELECT {inner} FROM {stage} s {join} {" ".join(joins)} OFFSET 0) q
            """
        )
    )


def mark_duplicates(session: Session, resolved: str) -> None:
    """The same address twice in one file: the first occurrence wins, later ones are errors."""
    session.execute(
        text(
            f"""
            UPDATE {resolved} r SET problem = 'same address as line ' || f.first
            FROM (SELECT code, min(line) AS first FROM {resolved} WHERE problem IS NULL
                  GROUP BY code HAVING count(*) > 1) f
            WHERE r.code = f.code AND r.line > f.first AND r.problem IS NULL
            """
        )
    )


# --- location fill ------------------------------------------------------------------------------
#
# Two plans, both on GiST indexes, chosen by size. Few rows to place: one probe per row into the
# polygons' index (idx_admin_areas_geom, idx_grids_geom). Many rows: the incoming points get a
# GiST index and each polygon probes it once, so the polygon stays the same for a run of
# intersection tests (PostGIS caches it prepared); measured 25x faster for millions of points.
# The polygon probe is a plain join whose only index condition is on the points (`&&` with the
# polygon's envelope, then _ST_Intersects, the test without ST_Intersects' index support), so
# the planner cannot turn it into a probe per point and may split the polygons among parallel
# workers; it gives one row per (point, polygon) and probe keeps the smallest code for points
# in two polygons (on a shared border, or in overlapping polygons).

POINT_PROBES = {
    "community": """
        SELECT r.line, p.code FROM {rows} r
        CROSS JOIN LATERAL (
            SELECT a.code FROM current_admin_areas a
            WHERE a.level = 'community' AND ST_Intersects(a.geom, r.pt)
              AND (r.subdistrict_code IS NULL OR a.parent_code = r.subdistrict_code)
            ORDER BY a.code LIMIT 1) p
        WHERE r.problem IS NULL AND r.community_code IS NULL
    """,
    "subdistrict": """
        SELECT r.line, p.code FROM {rows} r
        CROSS JOIN LATERAL (
            SELECT a.code FROM current_admin_areas a
            WHERE a.level = 'subdistrict' AND ST_Intersects(a.geom, r.pt)
              AND left(a.code, 6) = left(r.district_code, 6)
            ORDER BY a.code LIMIT 1) p
        WHERE r.subdistrict_code IS NULL
    """,
    "grid": """
        SELECT r.line, p.code FROM {rows} r
        CROSS JOIN LATERAL (
            SELECT g.code FROM grids g WHERE ST_Intersects(g.geom, r.pt)
            ORDER BY g.code LIMIT 1) p
        WHERE r.problem IS NULL AND r.grid_code IS NULL
    """,
}
POLYGON_PROBES = {
    "community": """
        SELECT r.line, a.code FROM current_admin_areas a
        JOIN {rows} r ON r.pt && ST_Envelope(a.geom) AND _ST_Intersects(a.geom, r.pt)
        WHERE a.level = 'community' AND a.geom IS NOT NULL
          AND r.problem IS NULL AND r.community_code IS NULL
          AND (r.subdistrict_code IS NULL OR r.subdistrict_code = a.parent_code)
    """,
    "subdistrict": """
        SELECT r.line, a.code FROM current_admin_areas a
        JOIN {rows} r ON r.pt && ST_Envelope(a.geom) AND _ST_Intersects(a.geom, r.pt)
        WHERE a.level = 'subdistrict' AND a.geom IS NOT NULL
          AND r.subdistrict_code IS NULL AND left(r.district_code, 6) = left(a.code, 6)
    """,
    "grid": """
        SELECT r.line, g.code FROM grids g
        JOIN {rows} r ON r.pt && ST_Envelope(g.geom) AND _ST_Intersects(g.geom, r.pt)
        WHERE r.problem IS NULL AND r.grid_code IS NULL
    """,
}


def _one_per_line(session: Session, out: str) -> None:
    """Keep the smallest code of the lines `out` has twice. A unique index on the lines
    (a fast sort of integers) says whether there are any: mostly there are none, and the
    aggregation over millions of rows is not needed."""
    try:
        with session.begin_nested():
            session.execute(text(f"CREATE UNIQUE INDEX ON {out} (line)"))
        return
    except IntegrityError:
        pass
    session.execute(
        text(
            f"CREATE UNLOGGED TABLE {out}_one AS "
            f"SELECT line, min(code) AS code FROM {out} GROUP BY line"
        )
    )
    session.execute(text(f"DROP TABLE {out}"))
    session.execute(text(f"ALTER TABLE {out}_one RENAME TO {out}"))


def probe(session: Session, kind: str, rows: str, missing: int, polygons: int, out: str) -> int:
    """Create `out` (line, code) for the rows of `rows` lacking `kind`; returns its size (no
    table when no row lacks it)."""
    if not missing:
        return 0
    if missing > polygons:
        if not session.execute(
            text("SELECT 1 FROM pg_indexes WHERE tablename = :t AND indexdef LIKE '%gist%'"),
            {"t": rows},
        ).first():
            session.execute(text(f"CREATE INDEX ON {rows} USING gist (pt)"))
            session.execute(text(f"ANALYZE {rows}"))
        sql = POLYGON_PROBES[kind]
    else:
        sql = POINT_PROBES[kind]
    session.execute(text(f"CREATE UNLOGGED TABLE {out} AS {sql.format(rows=rows)}"))
    if missing > polygons:
        _one_per_line(session, out)
    session.execute(text(f"ANALYZE {out}"))  # the writing joins hash the smaller side
    return int(session.execute(text(f"SELECT count(*) FROM {out}")).scalar_one())


@dataclass(frozen=True)
class Located:
    """What locate found: rows filled per level, and how many good rows still have no
    subdistrict (those take their community's parent)."""

    filled: dict[str, int]
    orphans: int


def locate(session: Session, resolved: str, fills: str) -> Located:
    """Tables `<fills>_c`, `_s`, `_g` (line, code): community, subdistrict and grid by location
    for the good rows lacking them. Subdistricts by location only for rows that have no
    community either (otherwise the community's parent is the subdistrict)."""
    need = session.execute(
        text(
            f"""
            SELECT count(*) FILTER (WHERE community_code IS NULL),
                   count(*) FILTER (WHERE community_code IS NULL AND subdistrict_code IS NULL),
                   count(*) FILTER (WHERE grid_code IS NULL),
                   (SELECT count(*) FROM current_admin_areas WHERE level = 'community'),
                   (SELECT count(*) FROM current_admin_areas WHERE level = 'subdistrict'),
                   (SELECT count(*) FROM grids),
                   count(*) FILTER (WHERE subdistrict_code IS NULL)
            FROM {resolved} WHERE problem IS NULL
            """
        )
    ).one()
    filled = {
        "community": probe(session, "community", resolved, need[0], need[3], f"{fills}_c"),
        "subdistrict": probe(session, "subdistrict", resolved, need[1], need[4], f"{fills}_s"),
        "grid": probe(session, "grid", resolved, need[2], need[5], f"{fills}_g"),
    }
    return Located(filled, int(need[6]))


def located(resolved: str, fills: str, found: Located) -> str:
    """The good rows with their final area codes (a subquery for the writing statements);
    joins that would find nothing (empty fill tables, community parents when every row has
    its subdistrict) are left out."""
    filled = found.filled
    community = "coalesce(r.community_code, fc.code)" if filled["community"] else "r.community_code"
    subdistrict = ["r.subdistrict_code"]
    if found.orphans:
        subdistrict.append("cp.parent_code")
    if filled["subdistrict"]:
        subdistrict.append("fs.code")
    grid = "coalesce(r.grid_code, fg.code)" if filled["grid"] else "r.grid_code"
    joins = [
        f"LEFT JOIN {fills}_c fc ON fc.line = r.line" if filled["community"] else "",
        f"LEFT JOIN current_admin_areas cp ON cp.code = {community} AND cp.level = 'community'"
        if found.orphans
        else "",
        f"LEFT JOIN {fills}_s fs ON fs.line = r.line" if filled["subdistrict"] else "",
        f"LEFT JOIN {fills}_g fg ON fg.line = r.line" if filled["grid"] else "",
    ]
    return f"""(
        SELECT r.line, r.code, r.district_code, {community} AS community_code,
               coalesce({", ".join(subdistrict)}) AS subdistrict_code, {grid} AS grid_code,
               r.road, r.house_number, r.compound, r.building, r.unit, r.room, r.pt
        FROM {resolved} r
        {" ".join(joins)}
        WHERE r.problem IS NULL
    )"""


# --- writing ------------------------------------------------------------------------------------

_FULL_ADDRESS = (
    "address_full_form(d.name, s.name, f.road, f.house_number, f.compound, f.building, f.unit, "
    "f.room)"
)
_COLUMNS = (
    "district_code",
    "subdistrict_code",
    "community_code",
    "grid_code",
    "road",
    "house_number",
    "compound",
    "building",
    "unit",
    "room",
)
_WITH_NAMES = """
    JOIN current_admin_areas d ON d.code = f.district_code
    LEFT JOIN current_admin_areas s ON s.code = f.subdistrict_code
"""


def update_existing(session: Session, rows: str, who: str) -> int:
    """Rows whose code exists already: update what changed (version + 1), with history."""
    current = ", ".join(f"a.{c}" for c in (*_COLUMNS, "full_address"))
    incoming = ", ".join(f"n.{c}" for c in (*_COLUMNS, "full_address"))
    result = session.execute(
        text(
            f"""
            WITH n AS (
                SELECT f.*, {_FULL_ADDRESS} AS full_address FROM {rows} f {_WITH_NAMES}
            ), upd AS (
                UPDATE addresses a SET {", ".join(f"{c} = n.{c}" for c in _COLUMNS)},
                    full_address = n.full_address, geom = n.pt, version = a.version + 1,
                    updated_at = now(), updated_by = :who
                FROM n WHERE a.code = n.code
                  AND (({current}) IS DISTINCT FROM ({incoming}) OR NOT ST_Equals(a.geom, n.pt))
                RETURNING a.id, a.version
            ), hist AS (
                INSERT INTO address_history (address_id, version, action, data, changed_by)
                SELECT id, version, 'update', '{{"via": "import"}}'::jsonb, :who FROM upd
            )
            SELECT count(*) FROM upd
            """
        ),
        {"who": who},
    )
    return int(result.scalar_one())


_NEW_CODES = "WHERE NOT EXISTS (SELECT 1 FROM addresses a WHERE a.code = f.code)"


def insert_new(
    session: Session, rows: str, who: str, ordered: bool = True, empty: bool = False
) -> int:
    """Rows whose code is new, each with its 'create' history row; `ordered` sorts them by
    code, so that a present unique index grows at its right edge instead of taking random
    inserts; into an `empty` table every code is new. A code twice in the file violates the
    unique key: the caller reports them."""
    result = session.execute(
        text(
            f"""
            WITH ins AS (
                INSERT INTO addresses (code, {", ".join(_COLUMNS)}, full_address, geom, updated_by)
                SELECT f.code, {", ".join("f." + c for c in _COLUMNS)}, {_FULL_ADDRESS}, f.pt, :who
                FROM {rows} f {_WITH_NAMES}
                {"" if empty else _NEW_CODES}
                {"ORDER BY f.code" if ordered else ""}
                RETURNING id
            ), hist AS (
                INSERT INTO address_history (address_id, version, action, data, changed_by)
                SELECT id, 1, 'create', '{{"via": "import"}}'::jsonb, :who FROM ins
            )
            SELECT count(*) FROM ins
            """
        ),
        {"who": who},
    )
    return int(result.scalar_one())


def insert_aliases(session: Session, resolved: str) -> None:
    session.execute(
        text(
            f"""
            INSERT INTO address_aliases (kind, alias, canonical, district_code, address_id)
            SELECT DISTINCT 'address', btrim(al), a.full_address, a.district_code, a.id
            FROM {resolved} r JOIN addresses a ON a.code = r.code
            CROSS JOIN LATERAL unnest(string_to_array(r.aliases, ';')) al
            WHERE r.aliases IS NOT NULL AND r.problem IS NULL AND btrim(al) <> ''
            ON CONFLICT ON CONSTRAINT uq_address_aliases DO NOTHING
            """
        )
    )


def touched_names(session: Session, resolved: str, table: str) -> None:
    """The road and compound names this import uses, plus those the rows it updates used."""
    session.execute(
        text(
            f"""
            CREATE TEMP TABLE {table} ON COMMIT DROP AS
            SELECT DISTINCT kind, name, district_code FROM (
                SELECT 'road' AS kind, road AS name, district_code FROM {resolved}
                WHERE road IS NOT NULL AND problem IS NULL
                UNION ALL
                SELECT 'compound', compound, district_code FROM {resolved}
                WHERE compound IS NOT NULL AND problem IS NULL
                UNION ALL
                SELECT k.kind, k.name, a.district_code
                FROM addresses a JOIN {resolved} f ON f.code = a.code AND f.problem IS NULL
                CROSS JOIN LATERAL (VALUES ('road', a.road), ('compound', a.compound)) k(kind, name)
                WHERE k.name IS NOT NULL
            ) t
            """
        )
    )
    session.execute(text(f"ANALYZE {table}"))

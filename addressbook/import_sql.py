"""The set-based statements of the address import, one function per step.

Every step is one statement over the whole file. The CREATE TABLE AS steps read only regular
(UNLOGGED) tables and parallel-safe functions, so PostgreSQL runs them with parallel workers;
temporary tables would forbid that. Each cleaned value is computed once (a single
``regexp_replace`` standardises an element) and later steps read stored columns, because the
planner inlines subquery expressions wherever they are referenced.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.settings import get_settings

NUMBER = r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
# Maximum lengths of the stored columns (models.Address), checked before an insert could fail.
LIMITS = {"road": 100, "compound": 100, "house_number": 20, "building": 20, "unit": 20, "room": 20}
# The suffix address_standard gives a bare number of each element.
STANDARD = {"house_number": "号", "building": "号楼", "unit": "单元", "room": "室"}
ELEMENTS = ("road", "house_number", "compound", "building", "unit", "room")


def create_keys(session: Session, keys: str) -> None:
    """Every way a file may name a current area, scoped so that names only need to be unique
    within their district (subdistricts) or subdistrict (communities)."""
    session.execute(
        text(
            f"""
            CREATE UNLOGGED TABLE {keys} AS
            WITH cur AS (SELECT * FROM admin_areas WHERE valid_to IS NULL),
            com AS (SELECT c.*, s.parent_code AS district FROM cur c
                    JOIN cur s ON s.code = c.parent_code WHERE c.level = 'community'),
            keyed AS (
                SELECT 'district' AS level, '' AS scope, k AS key, code
                FROM cur, unnest(ARRAY[name, code, left(code, 6)]) k WHERE level = 'district'
                UNION ALL
                SELECT 'subdistrict', parent_code, k, code
                FROM cur, unnest(ARRAY[name, official_name, code, left(code, 9)]) k
                WHERE level = 'subdistrict'
                UNION ALL
                SELECT 'community', parent_code, k, code
                FROM com, unnest(ARRAY[name, official_name, code]) k
                UNION ALL
                -- without a subdistrict, a community name must be unique in its district
                SELECT 'community_in_district', district, k, min(code)
                FROM com, unnest(ARRAY[name, official_name, code]) k
                GROUP BY district, k HAVING count(DISTINCT code) = 1
            )
            SELECT DISTINCT ON (level, scope, key) level, scope::text, key::text, code::text
            FROM keyed WHERE key IS NOT NULL ORDER BY level, scope, key, code
            """
        )
    )
    session.execute(text(f"ANALYZE {keys}"))


def _cleaned_columns(columns: list[str], xy: str | None) -> tuple[str, str]:
    """The select list that cleans one staging row, and the join bringing converted x/y."""

    def value(name: str) -> str:
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

    if xy:
        x, y, join = "v.x", "v.y", f"LEFT JOIN {xy} v ON v.line = s.line"
    else:
        x = f"CASE WHEN s.lon ~ '{NUMBER}' THEN s.lon::float8 END" if "lon" in columns else "NULL"
        y = f"CASE WHEN s.lat ~ '{NUMBER}' THEN s.lat::float8 END" if "lat" in columns else "NULL"
        join = ""
    names = ("district", "subdistrict", "community", "grid", "code", "aliases", *ELEMENTS)
    lon = "s.lon" if "lon" in columns else "NULL::text"
    lat = "s.lat" if "lat" in columns else "NULL::text"
    select = ",\n".join(
        [
            "s.line",
            f"{lon} AS lon",
            f"{lat} AS lat",
            f"({x})::float8 AS x",
            f"({y})::float8 AS y",
            *(f"{value(n)} AS {n}" for n in names),
        ]
    )
    return select, join


def resolve(
    session: Session, stage: str, keys: str, out: str, columns: list[str], xy: str | None
) -> None:
    """One statement from raw text rows to checked rows: clean (trim, full-width digits,
    standard element forms, coordinates), resolve names and codes to area codes (hash joins on
    the key table), give every bad row its reason, compute the stable code and the point.

    Each layer is fenced with OFFSET 0: PostgreSQL would otherwise inline a cleaned value's
    expression everywhere it is used and compute it three or four times per row."""
    select, join = _cleaned_columns(columns, xy)
    minx, miny, maxx, maxy = get_settings().extent
    too_long = "\n".join(
        f"WHEN length(q.{k}) > {n} THEN '{k} is longer than {n} characters'"
        for k, n in LIMITS.items()
    )
    session.execute(
        text(
            f"""
            CREATE UNLOGGED TABLE {out} AS
            SELECT q.line, q.district_code, q.subdistrict_code, q.community_code, q.grid_code,
                   q.road, q.house_number, q.compound, q.building, q.unit, q.room, q.aliases,
                   CASE
                     WHEN q.lon LIKE 'not a Point%' THEN 'geometry is ' || q.lon
                     WHEN nullif(btrim(q.lon), '') IS NULL OR nullif(btrim(q.lat), '') IS NULL
                       THEN 'missing coordinates (lon, lat)'
                     WHEN q.x IS NULL OR q.y IS NULL
                       THEN format('coordinates are not numbers: lon %L, lat %L', q.lon, q.lat)
                     WHEN NOT (q.x BETWEEN {minx} AND {maxx} AND q.y BETWEEN {miny} AND {maxy})
                       THEN format('coordinates (%s, %s) are outside the city extent '
                                   '{minx},{miny},{maxx},{maxy} (swapped lon/lat or wrong crs?)',
                                   round(q.x::numeric, 6), round(q.y::numeric, 6))
                     WHEN q.district IS NOT NULL AND q.district_code IS NULL
                       THEN format('unknown district %L', q.district)
                     WHEN q.district_code IS NULL THEN 'no district given and the point is in none'
                     WHEN q.subdistrict IS NOT NULL AND q.subdistrict_code IS NULL
                       THEN format('unknown subdistrict %L in %s', q.subdistrict,
                                   coalesce(q.district, q.district_code))
                     WHEN q.community IS NOT NULL AND q.community_code IS NULL
                       THEN format('unknown community %L', q.community)
                     WHEN q.grid IS NOT NULL AND q.grid_code IS NULL
                       THEN format('unknown grid %L', q.grid)
                     WHEN q.road IS NULL AND q.compound IS NULL THEN 'missing road and compound'
                     {too_long}
                     WHEN length(q.code) > 40 THEN 'code is longer than 40 characters'
                   END AS problem,
                   coalesce(q.code, address_code(q.district_code, q.road, q.house_number,
                       q.compound, q.building, q.unit, q.room)) AS code,
                   ST_SetSRID(ST_MakePoint(q.x, q.y), 4490) AS pt
            FROM (
                SELECT c.*, coalesce(d.key_code, df.code) AS district_code,
                       sd.key_code AS subdistrict_code,
                       coalesce(c1.key_code, c2.key_code) AS community_code,
                       g.code AS grid_code
                FROM (SELECT {select} FROM {stage} s {join} OFFSET 0) c
                LEFT JOIN (SELECT key, code AS key_code FROM {keys} WHERE level = 'district') d
                       ON d.key = c.district
                -- no district given: the point says which (GiST probe on idx_admin_areas_geom)
                LEFT JOIN LATERAL (
                    SELECT a.code FROM admin_areas a
                    WHERE c.district IS NULL AND c.x IS NOT NULL AND a.level = 'district'
                      AND a.valid_to IS NULL
                      AND ST_Intersects(a.geom, ST_SetSRID(ST_MakePoint(c.x, c.y), 4490))
                    LIMIT 1
                ) df ON true
                LEFT JOIN (SELECT scope, key, code AS key_code FROM {keys}
                           WHERE level = 'subdistrict') sd
                       ON sd.scope = coalesce(d.key_code, df.code) AND sd.key = c.subdistrict
                LEFT JOIN (SELECT scope, key, code AS key_code FROM {keys}
                           WHERE level = 'community') c1
                       ON c1.scope = sd.key_code AND c1.key = c.community
                LEFT JOIN (SELECT scope, key, code AS key_code FROM {keys}
                           WHERE level = 'community_in_district') c2
                       ON c2.scope = coalesce(d.key_code, df.code) AND c2.key = c.community
                      AND sd.key_code IS NULL
                LEFT JOIN grids g ON g.code = c.grid
                OFFSET 0
            ) q
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
# ST_Intersects calls (PostGIS caches it prepared); measured 25x faster for millions of points.

POINT_PROBES = {
    "community": """
        SELECT r.line, p.code FROM {rows} r
        CROSS JOIN LATERAL (
            SELECT a.code FROM admin_areas a
            WHERE a.level = 'community' AND a.valid_to IS NULL AND ST_Intersects(a.geom, r.pt)
              AND (r.subdistrict_code IS NULL OR a.parent_code = r.subdistrict_code)
            ORDER BY a.code LIMIT 1) p
        WHERE r.problem IS NULL AND r.community_code IS NULL
    """,
    "subdistrict": """
        SELECT r.line, p.code FROM {rows} r
        CROSS JOIN LATERAL (
            SELECT a.code FROM admin_areas a
            WHERE a.level = 'subdistrict' AND a.valid_to IS NULL AND ST_Intersects(a.geom, r.pt)
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
        SELECT r.line, min(a.code) AS code FROM admin_areas a
        CROSS JOIN LATERAL (
            SELECT r.line FROM {rows} r
            WHERE ST_Intersects(a.geom, r.pt) AND r.problem IS NULL AND r.community_code IS NULL
              AND (r.subdistrict_code IS NULL OR r.subdistrict_code = a.parent_code)
            OFFSET 0) r
        WHERE a.level = 'community' AND a.valid_to IS NULL AND a.geom IS NOT NULL
        GROUP BY r.line
    """,
    "subdistrict": """
        SELECT r.line, min(a.code) AS code FROM admin_areas a
        CROSS JOIN LATERAL (
            SELECT r.line FROM {rows} r
            WHERE ST_Intersects(a.geom, r.pt)
              AND r.subdistrict_code IS NULL AND left(r.district_code, 6) = left(a.code, 6)
            OFFSET 0) r
        WHERE a.level = 'subdistrict' AND a.valid_to IS NULL AND a.geom IS NOT NULL
        GROUP BY r.line
    """,
    "grid": """
        SELECT r.line, min(g.code) AS code FROM grids g
        CROSS JOIN LATERAL (
            SELECT r.line FROM {rows} r
            WHERE ST_Intersects(g.geom, r.pt) AND r.problem IS NULL AND r.grid_code IS NULL
            OFFSET 0) r
        GROUP BY r.line
    """,
}


def _probe(session: Session, kind: str, rows: str, missing: int, polygons: int, out: str) -> int:
    """Create `out` (line, code) for the rows of `rows` lacking `kind`; returns its size."""
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
    session.execute(text(f"ANALYZE {out}"))  # the writing joins hash the smaller side
    return int(session.execute(text(f"SELECT count(*) FROM {out}")).scalar_one())


def locate(session: Session, resolved: str, fills: str) -> dict[str, int]:
    """Tables `<fills>_c`, `_s`, `_g` (line, code): community, subdistrict and grid by location
    for the good rows lacking them. Subdistricts by location only for rows that have no
    community either (otherwise the community's parent is the subdistrict)."""
    need = session.execute(
        text(
            f"""
            SELECT count(*) FILTER (WHERE community_code IS NULL),
                   count(*) FILTER (WHERE community_code IS NULL AND subdistrict_code IS NULL),
                   count(*) FILTER (WHERE grid_code IS NULL),
                   (SELECT count(*) FROM admin_areas WHERE level = 'community'),
                   (SELECT count(*) FROM admin_areas WHERE level = 'subdistrict'),
                   (SELECT count(*) FROM grids)
            FROM {resolved} WHERE problem IS NULL
            """
        )
    ).one()
    return {
        "community": _probe(session, "community", resolved, need[0], need[3], f"{fills}_c"),
        "subdistrict": _probe(session, "subdistrict", resolved, need[1], need[4], f"{fills}_s"),
        "grid": _probe(session, "grid", resolved, need[2], need[5], f"{fills}_g"),
    }


def located(resolved: str, fills: str, filled: dict[str, int]) -> str:
    """The good rows with their final area codes (a subquery for the writing statements);
    fill tables that found nothing are left out of the joins."""
    community = "coalesce(r.community_code, fc.code)" if filled["community"] else "r.community_code"
    subdistrict = ["r.subdistrict_code", "cp.parent_code"]
    if filled["subdistrict"]:
        subdistrict.append("fs.code")
    grid = "coalesce(r.grid_code, fg.code)" if filled["grid"] else "r.grid_code"
    joins = [
        f"LEFT JOIN {fills}_c fc ON fc.line = r.line" if filled["community"] else "",
        f"LEFT JOIN admin_areas cp ON cp.code = {community} AND cp.level = 'community' "
        "AND cp.valid_to IS NULL",
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
    JOIN admin_areas d ON d.code = f.district_code AND d.valid_to IS NULL
    LEFT JOIN admin_areas s ON s.code = f.subdistrict_code AND s.valid_to IS NULL
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


def insert_new(session: Session, rows: str, who: str, ordered: bool = True) -> int:
    """Rows whose code is new, each with its 'create' history row; `ordered` sorts them by
    code, so that a present unique index grows at its right edge instead of taking random
    inserts. A code twice in the file violates the unique key: the caller reports them."""
    result = session.execute(
        text(
            f"""
            WITH ins AS (
                INSERT INTO addresses (code, {", ".join(_COLUMNS)}, full_address, geom, updated_by)
                SELECT f.code, {", ".join("f." + c for c in _COLUMNS)}, {_FULL_ADDRESS}, f.pt, :who
                FROM {rows} f {_WITH_NAMES}
                WHERE NOT EXISTS (SELECT 1 FROM addresses a WHERE a.code = f.code)
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

"""The geocoder's SQL: exact structured matches for many texts at once, the relaxed and fuzzy
fallbacks for one text, and the standard form of the answers that are not a stored address.

Every statement here is written for an index (named beside it) and EXPLAIN-tested in
tests/test_geocoder.py: geocoding must never scan the address table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from addressbook.models import ELEMENTS

# The two ways into an address: road + house number, or compound; each lists its elements from
# the shallowest, as they stand in the indexes ix_addresses_structured / ix_addresses_compound.
ANCHORS: Final = {
    "road": ("road", "house_number", "building", "unit", "room"),
    "compound": ("compound", "building", "unit", "room"),
}
PER_PROBE: Final = 5  # rows one probe may return (more means the text was not specific)
AGGREGATE_ROWS: Final = 1000  # rows averaged for the centroid of a house, building or unit
SIMILAR_ROWS: Final = 5
SIMILAR_THRESHOLD: Final = 0.6  # of a full form to the text
NAME_THRESHOLD: Final = 0.3  # of a library name to a word of the text (pg_trgm's default)
SIMILAR_NAMES: Final = 5  # names whose addresses are compared with the text
NAME_ROWS: Final = 500  # addresses read per name (a range of its index)
SIMILAR_TIMEOUT_MS: Final = 100

ROW_COLUMNS: Final = """
    a.id, a.code, a.status, a.successor_id, a.district_code, a.subdistrict_code,
    a.community_code, a.grid_code, a.road, a.house_number, a.compound, a.building, a.unit,
    a.room, a.full_address, ST_X(a.geom), ST_Y(a.geom)"""


@dataclass(frozen=True, slots=True)
class Row:
    """One stored address, as the geocoder reports it."""

    id: int
    code: str
    status: str
    successor_id: int | None
    district_code: str | None
    subdistrict_code: str | None
    community_code: str | None
    grid_code: str | None
    road: str | None
    house_number: str | None
    compound: str | None
    building: str | None
    unit: str | None
    room: str | None
    full_address: str
    lon: float
    lat: float

    def elements(self) -> dict[str, str | None]:
        return {
            "district_code": self.district_code,
            "subdistrict_code": self.subdistrict_code,
            "community_code": self.community_code,
            "grid_code": self.grid_code,
            **{key: getattr(self, key) for key in ELEMENTS},
        }


@dataclass(frozen=True, slots=True)
class AreaFilter:
    """`area=`: only addresses whose district, subdistrict or community code is `code`."""

    column: str
    code: str

    def sql(self, alias: str = "a") -> str:
        return f" AND {alias}.{self.column} = :area_code"

    def params(self) -> dict[str, str]:
        return {"area_code": self.code}


def _area_sql(area: AreaFilter | None, alias: str = "a") -> str:
    return area.sql(alias) if area else ""


def _area_params(area: AreaFilter | None) -> dict[str, str]:
    return area.params() if area else {}


@dataclass(frozen=True, slots=True)
class Probe:
    """Look up one text's anchor elements in one district; None marks an element not given."""

    query: int
    anchor: str
    district: str
    values: tuple[str | None, ...]

    @property
    def shape(self) -> tuple[str, tuple[bool, ...]]:
        return self.anchor, tuple(v is not None for v in self.values)


def _conditions(anchor: str, given: Sequence[bool]) -> list[str]:
    """Given elements must be equal; elements deeper than the deepest given one must be absent
    (the text stops at the building: the building's own address, not one of its rooms); elements
    skipped in between (32号301室, no building) are free."""
    columns = ANCHORS[anchor]
    deepest = max(i for i, present in enumerate(given) if present)
    conditions = ["a.district_code = q.district"]
    for i, (column, present) in enumerate(zip(columns, given, strict=True)):
        if present:
            conditions.append(f"a.{column} = q.{column}")
        elif i > deepest:
            conditions.append(f"a.{column} IS NULL")
    return conditions


def exact(
    session: Session, probes: Sequence[Probe], area: AreaFilter | None
) -> dict[int, list[Row]]:
    """Stored addresses equal to each probe, for a whole batch, in one statement.

    The probes of each shape travel as arrays, unnested and joined LATERAL to `addresses`, so
    each probe is one descent of ix_addresses_structured (road anchor) or ix_addresses_compound
    (compound anchor) with every given element as an index condition; the shapes are UNION ALL
    branches of the one statement."""
    shapes: dict[tuple[str, tuple[bool, ...]], list[Probe]] = {}
    for probe in probes:
        shapes.setdefault(probe.shape, []).append(probe)
    branches: list[str] = []
    params: dict[str, Any] = dict(_area_params(area))
    for n, ((anchor, given), group) in enumerate(shapes.items()):
        columns = [c for c, present in zip(ANCHORS[anchor], given, strict=True) if present]
        arrays = ", ".join(f"CAST(:s{n}_{c} AS text[])" for c in ("query", "district", *columns))
        where = " AND ".join(_conditions(anchor, given))
        branches.append(
            f"""
            (SELECT CAST(q.query AS int), {ROW_COLUMNS}
             FROM unnest({arrays}) AS q(query, district, {", ".join(columns)})
             CROSS JOIN LATERAL (
                 SELECT * FROM addresses a WHERE {where}{_area_sql(area)} LIMIT {PER_PROBE}
             ) a)"""
        )
        params[f"s{n}_query"] = [str(p.query) for p in group]
        params[f"s{n}_district"] = [p.district for p in group]
        for column in columns:
            position = ANCHORS[anchor].index(column)
            params[f"s{n}_{column}"] = [p.values[position] for p in group]
    found: dict[int, list[Row]] = {}
    if branches:
        for query, *row in session.execute(text(" UNION ALL ".join(branches)), params).tuples():
            found.setdefault(query, []).append(Row(*row))
    return found


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Where the addresses below a house, building or unit are on average: the answer when the
    text goes deeper than the library (room 502 of a building whose rooms are not all known)."""

    district_code: str
    subdistrict_code: str | None
    community_code: str | None
    elements: dict[str, str | None]
    standard: str
    count: int
    lon: float
    lat: float
    exact_id: int | None  # an address stored at exactly this level, if there is one


def relaxed(
    session: Session,
    anchor: str,
    districts: Sequence[str],
    values: Sequence[str | None],
    depth: int,
    area: AreaFilter | None,
) -> list[Aggregate]:
    """Addresses matching the anchor's given elements down to `depth` (an index into
    ANCHORS[anchor]), grouped by district: the centroid of up to AGGREGATE_ROWS of them (one
    range of the anchor's index), the most common value of the shallower elements the text did
    not give (the compound of a house, the road of a compound), and the address stored at exactly
    this level, if there is one."""
    columns = ANCHORS[anchor]
    fixed = {c: values[i] for i, c in enumerate(columns[: depth + 1]) if values[i] is not None}
    level = max(ELEMENTS.index(c) for c in fixed)
    free = [c for c in ELEMENTS[:level] if c not in fixed]
    where = " AND ".join(["a.district_code = ANY(:districts)", *(f"a.{c} = :{c}" for c in fixed)])
    exact_where = " AND ".join(
        [*(f"e.{c} = :{c}" for c in fixed), *(f"e.{c} IS NULL" for c in columns[depth + 1 :])]
    )
    modes = "".join(f", mode() WITHIN GROUP (ORDER BY m.{c}) AS {c}" for c in free)
    form = ", ".join(
        f"CAST(:{c} AS text)" if c in fixed else f"g.{c}" if c in free else "NULL" for c in ELEMENTS
    )
    sql = f"""
        WITH m AS (  -- one range of ix_addresses_structured / ix_addresses_compound
            SELECT a.* FROM addresses a WHERE {where}{_area_sql(area)} LIMIT {AGGREGATE_ROWS}
        ), g AS (
            SELECT m.district_code, count(*) AS n, avg(ST_X(m.geom)) AS x, avg(ST_Y(m.geom)) AS y,
                   mode() WITHIN GROUP (ORDER BY m.subdistrict_code) AS subdistrict_code,
                   mode() WITHIN GROUP (ORDER BY m.community_code) AS community_code{modes}
            FROM m GROUP BY m.district_code
        )
        SELECT g.district_code, g.subdistrict_code, g.community_code,
               address_full_form(d.name, s.name, {form}), g.n, g.x, g.y,
               (SELECT e.id FROM addresses e WHERE e.district_code = g.district_code
                  AND {exact_where}{_area_sql(area, "e")} LIMIT 1)
               {"".join(f", g.{c}" for c in free)}
        FROM g
        LEFT JOIN current_admin_areas d ON d.code = g.district_code
        LEFT JOIN current_admin_areas s ON s.code = g.subdistrict_code
        ORDER BY g.n DESC
    """
    params = {"districts": list(districts), **fixed, **_area_params(area)}
    out = []
    for row in session.execute(text(sql), params).tuples():
        found = {**dict(zip(free, row[8:], strict=True)), **fixed}
        elements = {c: found.get(c) for c in ELEMENTS}
        out.append(Aggregate(row[0], row[1], row[2], elements, *row[3:8]))
    return out


def rows_by_id(session: Session, ids: Iterable[int]) -> dict[int, Row]:
    """Stored addresses by primary key."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        text(f"SELECT {ROW_COLUMNS} FROM addresses a WHERE a.id = ANY(:ids)"), {"ids": wanted}
    ).tuples()
    return {row[0]: Row(*row) for row in rows}


def successors(session: Session, retired: Iterable[int]) -> dict[int, Row]:
    """For each retired address, the active address its chain of successors ends at (if any)."""
    wanted = sorted(set(retired))
    if not wanted:
        return {}
    chains = session.execute(
        text(
            """
            WITH RECURSIVE chain(origin, id, successor_id, status, depth) AS (
                SELECT a.id, a.id, a.successor_id, a.status, 0 FROM addresses a
                WHERE a.id = ANY(:ids)
                UNION ALL
                SELECT c.origin, n.id, n.successor_id, n.status, c.depth + 1
                FROM chain c JOIN addresses n ON n.id = c.successor_id
                WHERE c.status <> 'active' AND c.depth < 50
            )
            SELECT origin, id FROM chain WHERE status = 'active' AND depth > 0
            """
        ),
        {"ids": wanted},
    ).tuples()
    ends = dict(chains.all())
    rows = rows_by_id(session, ends.values())
    return {origin: rows[end] for origin, end in ends.items() if end in rows}


def similar(
    session: Session,
    normalized: str,
    pieces: Sequence[str],
    elements: Mapping[str, str],
    districts: Sequence[str],
    area: AreaFilter | None,
) -> list[tuple[Row, float]]:
    """The stored addresses whose standard full form is most like the text (pg_trgm
    similarity at least SIMILAR_THRESHOLD), inside `districts` when the text named any: the
    last resort for text whose elements the parser could not find in the library.

    The candidates are the ones a name leads to, so that no index over millions of full forms is
    needed (the bulk import would spend a third of its time building it): the roads and
    compounds of the small name dictionary like one of the text's `pieces` (its road, compound
    and unparsed words; pg_trgm `%` on ix_address_names_name_trgm), the SIMILAR_NAMES closest,
    each read as one range of ix_addresses_structured / ix_addresses_compound, narrowed to the
    house number (road) or building (compound) of `elements` (the text's, in the library's
    spelling) when it has one, at most NAME_ROWS rows; and the rows that have neither a road
    nor a compound, which no name leads to (hand-made data; the partial GIN index
    ix_addresses_unnamed_trgm). SIMILAR_TIMEOUT_MS bounds the statement (a savepoint keeps the
    caller's transaction usable when it is cancelled)."""
    scope_names = " AND n.district_code = ANY(:districts)" if districts else ""
    scope_rows = " AND a.district_code = ANY(:districts)" if districts else ""
    area_sql = _area_sql(area)
    columns = f"{ROW_COLUMNS}, similarity(a.full_address, :q) AS sim"
    branches = [
        f"""
        SELECT {columns} FROM addresses a
        WHERE a.road IS NULL AND a.compound IS NULL  -- ix_addresses_unnamed_trgm
          AND a.full_address % :q{scope_rows}{area_sql}"""
    ]
    for kind, narrow in (("road", "house_number"), ("compound", "building")):
        narrowed = f" AND a.{narrow} = :{narrow}" if elements.get(narrow) else ""
        branches.append(
            f"""
        SELECT r.* FROM names n CROSS JOIN LATERAL (
            SELECT {columns} FROM addresses a
            WHERE n.kind = '{kind}' AND a.district_code = n.district_code
              AND a.{kind} = n.name{narrowed}{area_sql} LIMIT {NAME_ROWS}
        ) r"""
        )
    sql = f"""
        WITH names AS (  -- ix_address_names_name_trgm
            SELECT n.kind, n.name, n.district_code, max(similarity(n.name, p.piece)) AS s
            FROM unnest(CAST(:pieces AS text[])) AS p(piece)
            JOIN address_names n ON n.name % p.piece
            WHERE n.kind IN ('road', 'compound'){scope_names}
            GROUP BY n.kind, n.name, n.district_code
            ORDER BY s DESC, n.name, n.district_code LIMIT {SIMILAR_NAMES}
        )
        SELECT DISTINCT ON (sim, found.id) * FROM ({" UNION ALL ".join(branches)}
        ) found WHERE sim >= {SIMILAR_THRESHOLD}
        ORDER BY sim DESC, found.id LIMIT {SIMILAR_ROWS}
    """
    settings = text(
        "SELECT set_config('pg_trgm.similarity_threshold', :threshold, true), "
        "set_config('statement_timeout', :timeout, true)"
    )
    previous = session.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
    try:
        with session.begin_nested():
            session.execute(
                settings,
                {"threshold": str(NAME_THRESHOLD), "timeout": str(SIMILAR_TIMEOUT_MS)},
            )
            params = {
                "q": normalized,
                "pieces": list(pieces),
                "districts": list(districts),
                **{k: elements[k] for k in ("house_number", "building") if elements.get(k)},
                **_area_params(area),
            }
            rows = session.execute(text(sql), params).tuples().all()
            session.execute(
                text("SELECT set_config('statement_timeout', :t, true)"), {"t": previous}
            )
    except OperationalError as exc:
        if not isinstance(exc.orig, psycopg.errors.QueryCanceled):
            raise
        return []  # the savepoint's rollback also undid its settings
    return [(Row(*row[:-1]), float(row[-1])) for row in rows]


# address_standard is IMMUTABLE: its answers can be kept for as long as the process lives (a
# migration that redefines it restarts the service). The bare numbers 1-9999 of every element,
# the bulk of what texts hold, are asked for in one statement when the process first needs them;
# anything else (8-10, 12A) once, when first seen.
_SPELLING_CACHE = 200_000
_WARM_NUMBERS = 9999
# Road and compound names come from the parser's dictionary, which is read from the library:
# they already are the library's spelling. The numbers are what needs address_standard.
NUMBER_ELEMENTS: Final = ("house_number", "building", "unit", "room")
_SPELL_SQL: Final = """
SELECT k, v, address_standard(k, v)
FROM unnest(CAST(:k AS text[]), CAST(:v AS text[])) AS t(k, v)
"""
_WARM_SQL: Final = """
SELECT k, CAST(n AS text), address_standard(k, CAST(n AS text))
FROM unnest(CAST(:k AS text[])) AS k, generate_series(1, :n) AS n
"""
Spellings = Mapping[tuple[str, str], str | None]


class _SpellingCache:
    """The spellings asked for so far. Request threads (and a batch's chunks) read it while
    another thread adds to it, so a published mapping is never changed: new spellings go into a
    copy that replaces it whole, under a lock that only writers take. A reader keeps the mapping
    it was handed, which holds everything it asked for, even if the cache starts afresh."""

    def __init__(self) -> None:
        self.known: Spellings = MappingProxyType({})
        self.lock = threading.Lock()

    def spell(self, session: Session, wanted: set[tuple[str, str]]) -> Spellings:
        """A mapping holding every (element, value) of `wanted`."""
        known = self.known
        if known and not any(w not in known for w in wanted):
            return known
        with self.lock:
            known = self.known
            updated = dict(known)
            if not updated:
                rows = session.execute(
                    text(_WARM_SQL), {"k": list(NUMBER_ELEMENTS), "n": _WARM_NUMBERS}
                ).tuples()
                updated.update(((k, v), s) for k, v, s in rows)
            missing = {w for w in wanted if w not in updated}
            if len(updated) + len(missing) > _SPELLING_CACHE:
                # start afresh (rare: only unusual values are added after warming)
                updated, missing = {}, set(wanted)
            if missing:
                kinds, values = zip(*sorted(missing), strict=True)
                rows = session.execute(
                    text(_SPELL_SQL), {"k": list(kinds), "v": list(values)}
                ).tuples()
                updated.update(((k, v), s) for k, v, s in rows)
            self.known = MappingProxyType(updated)
            return self.known


_spellings = _SpellingCache()


def standardise(session: Session, texts: Sequence[dict[str, str | None]]) -> list[dict[str, str]]:
    """The parsed elements of many texts in the library's spelling: names as they are, numbers
    through address_standard (the SQL function the importer and the lifecycle edits use too):
    32 -> 32号, 1 -> 1号楼..."""
    spelled = _spellings.spell(
        session, {(c, v) for t in texts for c in NUMBER_ELEMENTS if (v := t.get(c)) is not None}
    )
    out = []
    for t in texts:
        found = {
            c: spelled[(c, v)] if c in NUMBER_ELEMENTS else v
            for c in ELEMENTS
            if (v := t.get(c)) is not None
        }
        out.append({c: v for c, v in found.items() if v is not None})
    return out


@dataclass(frozen=True, slots=True)
class Place:
    """An answer that is not a stored address: a road, a compound, an admin area."""

    district: str | None
    subdistrict: str | None
    elements: dict[str, str | None]
    lon: float
    lat: float


def describe_places(
    session: Session, places: Sequence[Place], area: AreaFilter | None
) -> list[tuple[str, bool]]:
    """For each place, its standard form (address_full_form, as for stored addresses) and
    whether its point lies in the `area=` polygon (true without an area, or for an area that has
    no polygon)."""
    columns = ("district", "subdistrict", *ELEMENTS)
    arrays = ", ".join(f"CAST(:{c} AS text[])" for c in columns)
    params: dict[str, Any] = {
        "district": [p.district for p in places],
        "subdistrict": [p.subdistrict for p in places],
        **{c: [p.elements.get(c) for p in places] for c in ELEMENTS},
        "x": [p.lon for p in places],
        "y": [p.lat for p in places],
        "area_code": area.code if area else None,
    }
    rows = session.execute(
        text(
            f"""
            SELECT address_full_form({", ".join(columns)}),
                   coalesce(ST_Intersects(
                       (SELECT geom FROM current_admin_areas
                        WHERE code = :area_code LIMIT 1),
                       ST_SetSRID(ST_MakePoint(t.x, t.y), 4490)), true)
            FROM unnest({arrays}, CAST(:x AS float8[]), CAST(:y AS float8[]))
                 WITH ORDINALITY AS t({", ".join(columns)}, x, y, n)
            ORDER BY t.n
            """
        ),
        params,
    ).tuples()
    return [(form, bool(inside)) for form, inside in rows]

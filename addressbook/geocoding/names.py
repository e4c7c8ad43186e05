"""The names the parser and the suggester know, kept in ``address_names`` (and the spellings of
the named places, which the suggester finds there too).

One row per (kind, name, district) with its full pinyin, its pinyin initials and a weight (how
many active addresses use it), so that suggestions rank by use and the parser's dictionary is read
from a few thousand rows instead of millions of addresses. Imports recompute only the names they
touched; an admin area import recomputes the area names.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from pypinyin import Style, lazy_pinyin
from pypinyin import pinyin as pinyin_of
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas.resolver import AreaKeys
from addressbook.geocoding.places import PLACE_WEIGHT, spelled_places
from geo.db import raw_connection

AREA_KINDS = ("district", "subdistrict", "community")
STREET_KINDS = ("road", "compound")


@cache
def _syllable(char: str) -> str | None:
    """The toneless reading of a character, or None when its readings differ without tones
    (长 chang/zhang, 重 zhong/chong): those need pypinyin's phrase dictionary."""
    readings = {r.lower() for r in pinyin_of(char, style=Style.NORMAL, heteronym=True)[0]}
    return readings.pop() if len(readings) == 1 else None


@lru_cache(maxsize=65536)
def pinyin(name: str) -> tuple[str, str]:
    """Full pinyin without tones and the initials: 友谊路 -> ('youyilu', 'yyl').

    pypinyin segments phrases to pick the right reading, at ~100 us a name; an import meets
    tens of thousands of new names, so names without an ambiguous character are spelled
    character by character from a cache, and only the others go through pypinyin."""
    cached = [_syllable(c) for c in name]
    syllables = lazy_pinyin(name, errors="default") if None in cached else [s for s in cached if s]
    full = [s.lower() for s in syllables if s]
    return "".join(full), "".join(s[0] for s in full)


def _upsert(session: Session, table: str) -> None:
    """Fill pinyin for the rows of the temp table `table` (kind, name, district_code, area_code,
    weight, x, y) and upsert them into address_names; names seen before reuse their pinyin."""
    new_names = session.execute(
        text(
            f"SELECT DISTINCT t.name FROM {table} t WHERE NOT EXISTS "
            "(SELECT 1 FROM address_names n WHERE n.name = t.name)"
        )
    ).scalars()
    spelled = [(n, *pinyin(n)) for n in new_names]
    session.execute(text("CREATE TEMP TABLE _pinyin (name text, pinyin text, initials text)"))
    if spelled:  # COPY: a bulk import brings tens of thousands of new names
        raw = raw_connection(session)
        with raw.cursor() as cursor, cursor.copy("COPY _pinyin FROM STDIN") as copy:
            for row in spelled:
                copy.write_row(row)
    session.execute(
        text(
            f"""
            INSERT INTO _pinyin
            SELECT DISTINCT ON (n.name) n.name, n.pinyin, n.initials
            FROM address_names n JOIN (SELECT DISTINCT name FROM {table}) t USING (name)
            ORDER BY n.name
            """
        )
    )
    session.execute(
        text(
            f"""
            INSERT INTO address_names (kind, name, district_code, area_code, pinyin, initials,
                                       weight, centroid)
            SELECT t.kind, t.name, t.district_code, t.area_code, p.pinyin, p.initials, t.weight,
                   CASE WHEN t.x IS NOT NULL THEN ST_SetSRID(ST_MakePoint(t.x, t.y), 4490) END
            FROM {table} t
            JOIN (SELECT DISTINCT ON (name) * FROM _pinyin ORDER BY name) p USING (name)
            ON CONFLICT (kind, name, district_code) DO UPDATE
               SET weight = EXCLUDED.weight, area_code = EXCLUDED.area_code,
                   centroid = EXCLUDED.centroid
            """
        )
    )
    session.execute(text("DROP TABLE _pinyin"))


def refresh_areas(session: Session) -> None:
    """Rebuild the district, subdistrict and community names from the current admin areas."""
    session.execute(text("DELETE FROM address_names WHERE kind = ANY(:k)"), {"k": list(AREA_KINDS)})
    session.execute(
        text(
            """
            CREATE TEMP TABLE _names ON COMMIT DROP AS
            WITH counted AS (
                SELECT 'district' AS kind, district_code AS code, count(*) AS n FROM addresses
                WHERE status = 'active' GROUP BY district_code
                UNION ALL
                SELECT 'subdistrict', subdistrict_code, count(*) FROM addresses
                WHERE status = 'active' GROUP BY subdistrict_code
                UNION ALL
                SELECT 'community', community_code, count(*) FROM addresses
                WHERE status = 'active' GROUP BY community_code
            )
            SELECT a.level AS kind, a.name, a.district_code,
                   a.code AS area_code, coalesce(c.n, 0)::int AS weight,
                   ST_X(a.centroid) AS x, ST_Y(a.centroid) AS y
            FROM current_admin_area_tree a
            LEFT JOIN counted c ON c.kind = a.level AND c.code = a.code
            WHERE a.level = ANY(:k)
            """
        ),
        {"k": list(AREA_KINDS)},
    )
    # Two areas of a level with one name in one district (rare) share a row: keep the heavier.
    session.execute(
        text(
            """
            DELETE FROM _names a USING _names b
            WHERE a.kind = b.kind AND a.name = b.name
              AND a.district_code IS NOT DISTINCT FROM b.district_code
              AND (a.weight, a.area_code) < (b.weight, b.area_code)
            """
        )
    )
    _upsert(session, "_names")
    session.execute(text("DROP TABLE _names"))


# Few touched names: index probes per name (ix_addresses_structured / ix_addresses_compound).
_USED_BY_NAME = """
    SELECT kind, name, district_code, count(*)::int AS weight,
           avg(ST_X(geom)) AS x, avg(ST_Y(geom)) AS y
    FROM (
        SELECT 'road' AS kind, road AS name, district_code, geom FROM addresses
        WHERE status = 'active'
          AND (district_code, road) IN
              (SELECT district_code, name FROM {touched} WHERE kind = 'road')
        UNION ALL
        SELECT 'compound', compound, district_code, geom FROM addresses
        WHERE status = 'active'
          AND (district_code, compound) IN
              (SELECT district_code, name FROM {touched} WHERE kind = 'compound')
    ) used GROUP BY kind, name, district_code
"""
# Every name (a bulk import): one sequential pass aggregating both kinds at once; probing the
# indexes per name would read the table in random order.
_USED_BY_SCAN = """
    SELECT c.* FROM (
        SELECT CASE WHEN grouping(road) = 0 THEN 'road' ELSE 'compound' END AS kind,
               coalesce(road, compound) AS name, district_code, count(*)::int AS weight,
               avg(ST_X(geom)) AS x, avg(ST_Y(geom)) AS y
        FROM addresses WHERE status = 'active'
        GROUP BY GROUPING SETS ((road, district_code), (compound, district_code))
    ) c
    WHERE c.name IS NOT NULL
"""


def refresh_streets(session: Session, touched: str | None) -> None:
    """Recompute the road and compound names listed in the temp table `touched`
    (kind, name, district_code), or every one of them when `touched` is None (after a bulk
    import, which touches most): weight and centroid from the active addresses using them;
    names no active address uses any more go."""
    used = _USED_BY_NAME.format(touched=touched) if touched else _USED_BY_SCAN
    session.execute(
        text(
            f"CREATE TEMP TABLE _names ON COMMIT DROP AS "
            f"SELECT kind, name, district_code, NULL::text AS area_code, weight, x, y "
            f"FROM ({used}) u"
        )
    )
    gone = (
        "NOT EXISTS (SELECT 1 FROM _names u WHERE u.kind = n.kind AND u.name = n.name "
        "AND u.district_code = n.district_code)"
    )
    if touched:
        session.execute(
            text(
                f"DELETE FROM address_names n USING {touched} t WHERE n.kind = t.kind "
                f"AND n.name = t.name AND n.district_code = t.district_code AND {gone}"
            )
        )
    else:
        session.execute(
            text(f"DELETE FROM address_names n WHERE n.kind IN ('road', 'compound') AND {gone}")
        )
    _upsert(session, "_names")
    session.execute(text("DROP TABLE _names"))
    if not touched:
        # Tens of thousands of new names: the planner must know before autovacuum comes round,
        # or it reads the dictionary by its unique key instead of the trigram index.
        session.execute(text("ANALYZE address_names"))


def refresh_places(session: Session) -> None:
    """Rebuild the place spellings (kind 'place'): one row per spelling and district, at the
    mean position of the places spelled so, which the suggester searches like any name."""
    rows: dict[tuple[str, str | None], list[tuple[float, float]]] = {}
    for entry, spellings in spelled_places(session):
        for surface in spellings:
            rows.setdefault((surface, entry.district_code), []).append((entry.lon, entry.lat))
    session.execute(text("DELETE FROM address_names WHERE kind = 'place'"))
    session.execute(
        text(
            "CREATE TEMP TABLE _names (kind text, name text, district_code text, "
            "area_code text, weight int, x float8, y float8) ON COMMIT DROP"
        )
    )
    if rows:
        raw = raw_connection(session)
        with raw.cursor() as cursor, cursor.copy("COPY _names FROM STDIN") as copy:
            for (surface, district), points in rows.items():
                x = sum(p[0] for p in points) / len(points)
                y = sum(p[1] for p in points) / len(points)
                copy.write_row(("place", surface, district, None, PLACE_WEIGHT, x, y))
    # Thousands of rows deleted and written again: without fresh statistics the planner reads
    # the spellings' pinyin (`_upsert`) by a nested loop over the whole dictionary.
    session.execute(text("ANALYZE _names"))
    session.execute(text("ANALYZE address_names"))
    _upsert(session, "_names")
    session.execute(text("DROP TABLE _names"))


def load_name_lists(session: Session, keys: AreaKeys) -> dict[str, Any]:
    """Everything the parser's dictionary needs, by name (not code): the current areas, and
    the subdistrict and community names of earlier division sets (`keys`, the area resolver's),
    which the geocoder resolves to their successors.

    - districts: [name]
    - subdistricts: [(name, district)]
    - communities: [(name, subdistrict, district)]
    - roads, compounds: [(name, district)]
    - aliases: {alias: (canonical, kind)}, including the statistical table's committee names
      (花园路社区居委会 -> 花园路社区).
    """
    areas = session.execute(
        text(
            "SELECT code, level, name, subdistrict_code, district_code "
            "FROM current_admin_area_tree ORDER BY code"
        )
    ).all()
    name_of = {code: name for code, _, name, _, _ in areas}
    streets = session.execute(
        text(
            "SELECT kind, name, district_code FROM address_names "
            "WHERE kind IN ('road', 'compound') ORDER BY weight DESC, name"
        )
    ).all()
    aliases: dict[str, tuple[str, str]] = {}
    for alias, canonical, kind in session.execute(
        text(
            "SELECT official_name, name, level FROM current_admin_areas "
            "WHERE official_name <> name AND level IN ('subdistrict', 'community') "
            "UNION ALL SELECT alias, canonical, kind FROM address_aliases "
            "WHERE valid_to IS NULL AND kind IN ('road', 'compound')"
        )
    ).tuples():
        aliases.setdefault(alias, (canonical, kind))
    return {
        "districts": sorted(name for _, level, name, _, _ in areas if level == "district"),
        "subdistricts": [
            (name, name_of.get(district or "", ""))
            for _, level, name, _, district in areas
            if level == "subdistrict"
        ]
        + [(name, name_of.get(scope, "")) for name, scope in keys.superseded("subdistrict")],
        "communities": [
            (name, name_of.get(sub or "", ""), name_of.get(district or "", ""))
            for _, level, name, sub, district in areas
            if level == "community" and sub in name_of
        ]
        + [
            (name, name_of.get(scope, ""), "")
            for name, scope in keys.superseded("community")
            if scope in name_of
        ],
        "roads": [(n, name_of.get(d, "")) for k, n, d in streets if k == "road"],
        "compounds": [(n, name_of.get(d, "")) for k, n, d in streets if k == "compound"],
        "aliases": aliases,
    }

"""Which current admin area a name or code stands for: one rule for every way into the library.

Bulk imports, single edits and the geocoder (its parse of free text, one text or a batch) all
turn what people write into area codes here, so that a file, an edit and a typed address never
disagree about which area is meant. The rule:

- a district by its name, its 12-digit code or its 6-digit adcode;
- a subdistrict by its name, its official name or its 12-digit code, inside its district;
- a community by its name, its official name or its 12-digit code, inside its subdistrict, or,
  when no subdistrict is given, inside its district if no other community there has that key.

Codes count whole: a 9-digit township code (or any other prefix) is not a key, since the same
digits begin a subdistrict's communities too. The keys are rows of one SQL statement (`KEYS`):
the importer joins its table of them, an edit looks one up, the geocoder keeps them in memory.

Names and codes of an earlier division set (the bundled 2016 baseline) still count: they stand
for the area that carries the place today, the current version of the same code or else the
end of its successor chain (双环村街道 of 红桥区 became 双环邨街道 of 北辰区 in 2023). Such a
key says so in its `note`, which the import report, the edit's audit entry and the geocoder's
candidate notes carry; the district follows the area (an address in 双环村街道 is in 北辰区
now). A superseded area without a successor resolves to nothing, with a note that says why.
Current keys win over historical ones of the same spelling in the same scope.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

# level: district | subdistrict | community | community_in_district (a community looked up in
# its district, unique there); scope: the code the key is looked up in ('' for districts);
# code: the current area (NULL for a superseded area without successor); district_code: the
# district the area lies in today; note: for a historical key, what became of the area.
KEYS: Final = """
WITH RECURSIVE
old AS (
    SELECT o.code, o.name, o.official_name, o.level, o.parent_code, o.valid_from, o.valid_to,
           o.successor_code
    FROM admin_areas o
    WHERE o.valid_to IS NOT NULL AND o.level IN ('district', 'subdistrict', 'community')
),
chain (origin, code, depth) AS (  -- from a superseded code along its successors
    SELECT DISTINCT code, code, 0 FROM old
    UNION ALL
    SELECT c.origin, o.successor_code, c.depth + 1
    FROM chain c JOIN old o ON o.code = c.code
    WHERE o.successor_code IS NOT NULL AND o.successor_code <> c.code AND c.depth < 10
      AND NOT EXISTS (SELECT 1 FROM current_admin_areas t WHERE t.code = c.code)
),
heir AS (  -- the current area at the nearest end of the chain
    SELECT DISTINCT ON (c.origin) c.origin, t.code, t.district_code, t.subdistrict_code,
           concat_ws('', td.name, ts.name, CASE t.level WHEN 'community' THEN t.name END)
               AS path
    FROM chain c JOIN current_admin_area_tree t ON t.code = c.code
    LEFT JOIN current_admin_areas td ON td.code = t.district_code
    LEFT JOIN current_admin_areas ts ON ts.code = t.subdistrict_code
    ORDER BY c.origin, c.depth
),
past AS (  -- superseded versions: where they were, and what carries them today
    SELECT o.*, h.code AS heir, h.district_code AS heir_district,
           h.subdistrict_code AS heir_subdistrict,
           CASE o.level WHEN 'district' THEN o.code
                        WHEN 'subdistrict' THEN o.parent_code ELSE p.parent_code END
               AS old_district,
           concat_ws('', (SELECT d.name FROM admin_areas d
                          WHERE d.code = CASE o.level WHEN 'subdistrict' THEN o.parent_code
                                                      ELSE p.parent_code END
                          ORDER BY d.valid_to IS NULL DESC, d.valid_from DESC LIMIT 1),
                     p.name, o.name) AS old_path,
           h.path AS heir_path
    FROM old o
    LEFT JOIN heir h ON h.origin = o.code
    LEFT JOIN LATERAL (  -- the parent as it was when this version began
        SELECT q.name, q.parent_code FROM admin_areas q
        WHERE o.level = 'community' AND q.code = o.parent_code AND q.valid_from <= o.valid_from
        ORDER BY q.valid_from DESC LIMIT 1
    ) p ON true
),
noted AS (
    SELECT past.*,
           CASE WHEN heir IS NULL
                THEN format('%s was superseded on %s without a successor', old_path, valid_to)
                ELSE format('%s (until %s) is now %s', old_path, valid_to, heir_path) END AS note
    FROM past
),
keyed AS (
    SELECT 'district' AS level, '' AS scope, k AS key, code, code AS district_code,
           NULL AS note, 0 AS historical
    FROM current_admin_areas, unnest(ARRAY[name, code, left(code, 6)]) k
    WHERE level = 'district'
    UNION ALL
    SELECT 'subdistrict', a.parent_code, k, a.code, a.parent_code, NULL, 0
    FROM current_admin_areas a, unnest(ARRAY[a.name, a.official_name, a.code]) k
    WHERE a.level = 'subdistrict'
    UNION ALL
    SELECT 'community', a.parent_code, k, a.code, a.district_code, NULL, 0
    FROM current_admin_area_tree a, unnest(ARRAY[a.name, a.official_name, a.code]) k
    WHERE a.level = 'community'
    UNION ALL
    SELECT 'district', '', k, heir, heir_district, note, 1
    FROM noted, unnest(ARRAY[name, code, left(code, 6)]) k
    WHERE level = 'district'
    UNION ALL
    SELECT 'subdistrict', s, k, heir, heir_district, note, 1
    FROM noted, unnest(ARRAY[name, official_name, code]) k,
         unnest(ARRAY[parent_code, heir_district]) s
    WHERE level = 'subdistrict'
    UNION ALL
    SELECT 'community', s, k, heir, heir_district, note, 1
    FROM noted, unnest(ARRAY[name, official_name, code]) k,
         unnest(ARRAY[parent_code, heir_subdistrict]) s
    WHERE level = 'community'
),
in_district AS (  -- a community by its district: the key must be unique there
    SELECT 'community_in_district' AS level, a.district_code AS scope, k AS key, a.code,
           a.district_code, NULL AS note, 0 AS historical
    FROM current_admin_area_tree a, unnest(ARRAY[a.name, a.official_name, a.code]) k
    WHERE a.level = 'community'
    UNION ALL
    SELECT 'community_in_district', s, k, heir, heir_district, note, 1
    FROM noted, unnest(ARRAY[name, official_name, code]) k,
         unnest(ARRAY[old_district, heir_district]) s
    WHERE level = 'community'
),
unique_in_district AS (
    SELECT level, scope, key, code, district_code, note, historical FROM (
        SELECT i.*, min(coalesce(code, '')) OVER w = max(coalesce(code, '')) OVER w AS alone
        FROM in_district i WINDOW w AS (PARTITION BY scope, key, historical)
    ) i WHERE alone
)
SELECT DISTINCT ON (level, scope, key) level::text, scope::text, key::text, code::text,
       district_code::text, note::text
FROM (SELECT * FROM keyed UNION ALL SELECT * FROM unique_in_district) k
WHERE key IS NOT NULL AND scope IS NOT NULL
ORDER BY level, scope, key, historical, code
"""


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a key stands for: the current area, the district it lies in today, and for a
    historical key the note saying what became of the area it named."""

    code: str
    district_code: str | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Gone:
    """A key of an area superseded without a successor: it names no current area."""

    note: str


Row = tuple[str, str, str, str | None, str | None, str | None]


def _found(code: str | None, district_code: str | None, note: str | None) -> Resolved | Gone:
    return Resolved(code, district_code, note) if code is not None else Gone(note or "")


def create_key_table(session: Session, table: str) -> None:
    """The keys as an (unlogged, analysed) table, for the importer's hash joins."""
    session.execute(text(f"CREATE UNLOGGED TABLE {table} AS {KEYS}"))
    session.execute(text(f"ANALYZE {table}"))


def resolve(session: Session, level: str, value: str, scope: str | None) -> Resolved | Gone | None:
    """The area a single value names at `level` inside `scope` (a district code for
    subdistricts, a subdistrict code for communities, a district code for a community named
    without its subdistrict: level `community_in_district`); None when it names none."""
    row = session.execute(
        text(
            f"SELECT code, district_code, note FROM ({KEYS}) k "
            "WHERE level = :level AND scope = :scope AND key = :key"
        ),
        {"level": level, "scope": scope or "", "key": value.strip()},
    ).first()
    return _found(*row) if row is not None else None


class AreaKeys:
    """The keys in memory, for the geocoder: a parse names areas without codes, and a batch
    resolves thousands of them. Built from the rows of `KEYS`, never changed."""

    def __init__(self, rows: Iterable[Row]) -> None:
        by_key: dict[tuple[str, str], dict[str, Resolved | Gone]] = {}
        for level, scope, key, code, district, note in rows:
            by_key.setdefault((level, key), {})[scope] = _found(code, district, note)
        self._by_key: Mapping[tuple[str, str], Mapping[str, Resolved | Gone]] = by_key

    @classmethod
    def load(cls, session: Session) -> AreaKeys:
        return cls(session.execute(text(KEYS)).tuples())

    def resolve(
        self, level: str, name: str | None, scopes: Collection[str] | None
    ) -> list[Resolved]:
        """What `name` stands for at `level` in each of `scopes` (None: wherever it is a key),
        current areas only, each once."""
        if not name:
            return []
        found = self._by_key.get((level, name), {})
        chosen = found.values() if scopes is None else (found[s] for s in scopes if s in found)
        out: dict[str, Resolved] = {}
        for resolved in chosen:
            if isinstance(resolved, Resolved):
                out.setdefault(resolved.code, resolved)
        return list(out.values())

    def superseded(self, level: str) -> list[tuple[str, str]]:
        """The (name, scope) keys of `level` that only an earlier division set has: the parser
        must know these spellings to read them where they are written (codes left out)."""
        return sorted(
            (key, scope)
            for (at, key), scopes in self._by_key.items()
            if at == level and not key.isdigit()
            for scope, found in scopes.items()
            if found.note is not None
        )

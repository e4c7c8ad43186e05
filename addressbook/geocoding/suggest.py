"""Suggestions while typing: names from address_names (admin areas, roads, compounds and the
spellings of named places, geocoding.places), then house numbers and buildings.

Grid staff type a few characters and pick; so every path is an index range, not a scan:

- Chinese prefix (友谊 -> 友谊路): `name LIKE '友谊%'` on ix_address_names_name_prefix;
- full pinyin (youyilu, youyi) and initials (yyl): `pinyin` / `initials LIKE` on
  ix_address_names_pinyin_prefix / ix_address_names_initials_prefix;
- one typo: in Chinese, a homophone (友宜 -> 友谊, the usual slip of a pinyin input method) is a
  pinyin prefix match, and a substituted character in a longer name a trigram match
  (ix_address_names_name_trgm); in pinyin, an edit distance of one (rapidfuzz) over the few names
  sharing the first two letters;
- once the text holds a whole road or compound (友谊路3), its house numbers (or buildings) by a
  skip scan of ix_addresses_structured (ix_addresses_compound): one index probe per value.

A leading city, district or subdistrict (天津市河西区友谊) narrows the search to that area, as
does `area=` (a district, subdistrict or community code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
from rapidfuzz.distance import OSA
from rapidfuzz.process import cdist
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.geocoding import gazetteer, places
from addressbook.geocoding.gazetteer import Library
from addressbook.geocoding.geocoder import area_filter, check_text
from addressbook.geocoding.matching import AreaFilter
from addressbook.geocoding.names import pinyin
from addressbook.geocoding.normalize import fold
from addressbook.geocoding.words import Kind

MAX_LIMIT: Final = 50
TYPO_PREFILTER: Final = 20_000  # spellings sharing the first pinyin letter, at most
TRIGRAM_THRESHOLD: Final = 0.2  # short Chinese names share few trigrams after one slip
_LATIN: Final = re.compile(r"^[a-z' ]+$")
_NUMBER_TAIL: Final = re.compile(r"^(\d*)号?$")
_STREET_KINDS: Final = {Kind.ROAD: "road", Kind.COMPOUND: "compound"}
# The element listed below a complete name, and the index whose ranges list it.
_BELOW: Final = {"road": ("house_number", "号"), "compound": ("building", "号楼")}


@dataclass(frozen=True)
class Suggestion:
    kind: str  # district | subdistrict | community | road | compound | alias | place | ...
    name: str
    label: str  # what to put in the search box (and geocode)
    district_code: str | None
    area_code: str | None
    lon: float | None
    lat: float | None
    weight: int
    match: str  # prefix | pinyin | initials | homophone | typo | number
    canonical: str | None = None  # for an old name (alias): the road's (place's) current name
    category: str | None = None  # of a named place


@dataclass(frozen=True)
class _Scope:
    districts: tuple[str, ...] = ()
    area: AreaFilter | None = None

    def sql(self) -> str:
        """Conditions on address_names `n` for this scope."""
        out = " AND n.district_code = ANY(:districts)" if self.districts else ""
        if self.area is not None and self.area.column != "district_code":
            column = self.area.column
            out += f"""
                AND (n.kind NOT IN ('road', 'compound')
                     OR (n.kind = 'road' AND EXISTS (
                            SELECT 1 FROM addresses a WHERE a.district_code = n.district_code
                            AND a.road = n.name AND a.{column} = :area_code))
                     OR (n.kind = 'compound' AND EXISTS (
                            SELECT 1 FROM addresses a WHERE a.district_code = n.district_code
                            AND a.compound = n.name AND a.{column} = :area_code)))"""
        return out

    def params(self) -> dict[str, Any]:
        return {"districts": list(self.districts), **(self.area.params() if self.area else {})}


_NAME_SQL: Final = """
SELECT n.kind, n.name, n.district_code, n.area_code, n.weight,
       ST_X(n.centroid), ST_Y(n.centroid), n.pinyin
FROM {source} n
WHERE {where}{scope}
ORDER BY {order} LIMIT :limit
"""
# Trigram candidates first, whatever the scope (OFFSET 0 keeps the planner from merging the
# scope's conditions in and scanning another index): ix_address_names_name_trgm.
_TRIGRAM_SOURCE: Final = "(SELECT * FROM address_names WHERE name % :q OFFSET 0)"
_SPELLINGS_SQL: Final = """
SELECT DISTINCT pinyin FROM address_names WHERE pinyin LIKE :p ORDER BY pinyin LIMIT :limit
"""
_CANONICAL_SQL: Final = """
SELECT al.alias, al.district_code, al.canonical FROM address_aliases al  -- ix_address_aliases_alias
WHERE al.kind = 'road' AND al.alias = ANY(:names) AND al.valid_to IS NULL
"""


def _names(
    session: Session,
    where: str,
    params: dict[str, Any],
    scope: _Scope,
    limit: int,
    order: str,
    source: str = "address_names",
) -> list[tuple[Any, ...]]:
    sql = _NAME_SQL.format(source=source, where=where, scope=scope.sql(), order=order)
    return list(session.execute(text(sql), {**params, **scope.params(), "limit": limit}).tuples())


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _label(library: Library, kind: str, name: str, district: str | None) -> str:
    area = library.areas.get(district) if district else None
    return name if kind == "district" or area is None else area.name + name


def _suggestion(library: Library, row: tuple[Any, ...], match: str) -> Suggestion:
    kind, name, district, area_code, weight, lon, lat, _ = row
    found = places.entries_in(library.places, name, district) if kind == "place" else ()
    if found:
        area = library.areas.get(district) if district else None
        place = found[0]
        return Suggestion(
            kind=kind,
            name=name,
            label=places.label(place.name, area.name if area else None),
            district_code=district,
            area_code=None,
            lon=lon,
            lat=lat,
            weight=weight,
            match=match,
            canonical=place.name if place.name != name else None,
            category=place.category,
        )
    return Suggestion(
        kind=kind,
        name=name,
        label=_label(library, kind, name, district),
        district_code=district,
        area_code=area_code,
        lon=lon,
        lat=lat,
        weight=weight,
        match=match,
    )


def _with_canonical(
    session: Session, library: Library, found: list[Suggestion]
) -> list[Suggestion]:
    """Old road names (kind alias, kept by addressbook.lifecycle.rename_road) labelled with the
    road's current name, which is what a search should look up."""
    old = [s for s in found if s.kind == "alias"]
    if not old:
        return found
    rows = session.execute(text(_CANONICAL_SQL), {"names": [s.name for s in old]}).tuples()
    canonical = {(alias, district): name for alias, district, name in rows}

    def renamed(item: Suggestion) -> Suggestion:
        name = canonical.get((item.name, item.district_code))
        if item.kind != "alias" or name is None:
            return item
        label = _label(library, "road", name, item.district_code)
        return replace(item, canonical=name, label=label)

    return [renamed(item) for item in found]


def _complete(library: Library, rest: str) -> tuple[str, str, str] | None:
    """(kind, name, number prefix) when `rest` is a whole road or compound name followed by
    nothing but digits (友谊路, 友谊路3, 友谊路32号)."""
    for length, entries in library.gazetteer.matches_at(rest, 0):
        tail = _NUMBER_TAIL.match(rest[length:])
        for entry in entries:
            kind = _STREET_KINDS.get(entry.kind)
            if tail and kind and not entry.weak:
                return kind, entry.name, tail.group(1)
    return None


_NUMBERS_SQL: Final = """
WITH RECURSIVE v(value) AS (  -- a skip scan: one probe of {index} per distinct value
    (SELECT a.{column} FROM addresses a
     WHERE a.district_code = :district AND a.{anchor} = :name AND a.{column} LIKE :prefix{area}
     ORDER BY a.{column} LIMIT 1)
    UNION ALL
    SELECT (SELECT a.{column} FROM addresses a
            WHERE a.district_code = :district AND a.{anchor} = :name
              AND a.{column} > v.value AND a.{column} LIKE :prefix{area}
            ORDER BY a.{column} LIMIT 1)
    FROM v WHERE v.value IS NOT NULL
)
SELECT value FROM v WHERE value IS NOT NULL LIMIT :limit
"""


def _numbers(
    session: Session,
    library: Library,
    complete: tuple[str, str, str],
    scope: _Scope,
    limit: int,
) -> list[Suggestion]:
    """House numbers on a road (buildings in a compound), the number typed so far first."""
    kind, name, digits = complete
    column, marker = _BELOW[kind]
    index = "ix_addresses_structured" if kind == "road" else "ix_addresses_compound"
    area = f" AND a.{scope.area.column} = :area_code" if scope.area else ""
    sql = _NUMBERS_SQL.format(index=index, column=column, anchor=kind, area=area)
    out = []
    for street in library.streets(kind, name):
        if scope.districts and street.district_code not in scope.districts:
            continue
        params = {
            "district": street.district_code,
            "name": name,
            "prefix": _like(digits),
            "limit": 4 * limit,
            **(scope.area.params() if scope.area else {}),
        }
        values = session.execute(text(sql), params).scalars().all()
        numeric = sorted(values, key=lambda v: (v != digits + marker, _number(v), v))
        out += [
            Suggestion(
                kind=column,
                name=name + value,
                label=_label(library, kind, name + value, street.district_code),
                district_code=street.district_code,
                area_code=None,
                lon=None,
                lat=None,
                weight=street.weight,
                match="number",
            )
            for value in numeric[:limit]
        ]
    return out


def _number(value: str) -> int:
    digits = re.match(r"\d+", value)
    return int(digits.group()) if digits else 1 << 30


def _chinese(
    session: Session, library: Library, typed: str, scope: _Scope, limit: int
) -> list[Suggestion]:
    rest, named = library.peel(typed)
    found: list[Suggestion] = []
    if rest != typed:  # a name that opens with the city or a district: 天津站, 河西区人民医院
        order = "n.weight DESC, n.name"
        rows = _names(session, "n.name LIKE :p", {"p": _like(typed)}, scope, limit, order)
        found += [_suggestion(library, r, "prefix") for r in rows]
    if named:
        scope = replace(scope, districts=tuple(d for d in named if d in scope.districts) or named)
    complete = _complete(library, rest)
    order = "n.weight DESC, n.name"
    rows = _names(session, "n.name LIKE :p", {"p": _like(rest)}, scope, limit, order)
    found += [_suggestion(library, r, "prefix") for r in rows]
    if complete:
        found += _numbers(session, library, complete, scope, limit)
        if complete[2]:
            return found  # a name and digits: the user is typing a number, not a name
    if len(found) < limit and len(rest) >= 2:
        spelled = pinyin(rest)[0]
        rows = _names(session, "n.pinyin LIKE :p", {"p": _like(spelled)}, scope, limit, order)
        found += [_suggestion(library, r, "homophone") for r in rows]
    if not found and len(rest) >= 3:  # a typo: nothing above matched
        session.execute(
            text("SELECT set_config('pg_trgm.similarity_threshold', :t, true)"),
            {"t": str(TRIGRAM_THRESHOLD)},
        )
        rows = _names(
            session,
            "true",
            {"q": rest},
            scope,
            limit,
            "similarity(n.name, :q) DESC, n.weight DESC",
            source=_TRIGRAM_SOURCE,
        )
        found += [_suggestion(library, r, "typo") for r in rows]
    return found


def _latin(
    session: Session, library: Library, typed: str, scope: _Scope, limit: int
) -> list[Suggestion]:
    spelled = typed.replace(" ", "").replace("'", "")
    order = "n.weight DESC, n.name"
    found = []
    for column in ("pinyin", "initials"):
        rows = _names(session, f"n.{column} LIKE :p", {"p": _like(spelled)}, scope, limit, order)
        found += [_suggestion(library, r, column) for r in rows]
    if not found and len(spelled) >= 3:  # a typo: nothing above matched
        # The spellings sharing the first letter, from the index alone (an index-only scan of
        # ix_address_names_pinyin_prefix: no rows are read), checked here, then the rows of the
        # few that are one slip away.
        spellings = session.execute(
            text(_SPELLINGS_SQL), {"p": _like(spelled[:1]), "limit": TYPO_PREFILTER}
        ).scalars()
        near = _one_slip(spelled, list(spellings))
        if near:
            rows = _names(session, "n.pinyin = ANY(:near)", {"near": near}, scope, limit, order)
            found += [_suggestion(library, r, "typo") for r in rows]
    return found


def _one_slip(typed: str, spellings: list[str]) -> list[str]:
    """The spellings whose start is one edit from `typed`: a letter replaced, added, dropped or
    two letters swapped (optimal string alignment) in what has been typed so far."""
    if not spellings:
        return []
    close = np.zeros(len(spellings), dtype=bool)
    for n in (len(typed) - 1, len(typed), len(typed) + 1):
        starts = [s[:n] for s in spellings]
        distances = cdist([typed], starts, scorer=OSA.distance, score_cutoff=1, workers=1)
        close |= distances[0] <= 1
    return [s for s, ok in zip(spellings, close.tolist(), strict=True) if ok]


def suggest(session: Session, q: str, area: str | None = None, limit: int = 10) -> list[Suggestion]:
    """Up to `limit` suggestions for what has been typed so far, best first."""
    typed = fold(check_text(q)).strip()
    library = gazetteer.current(session)
    found_area = area_filter(library, area)
    scope = _Scope(area=found_area)
    if found_area is not None:
        district = library.areas[found_area.code].district_code or found_area.code
        scope = _Scope((district,), found_area)
    lowered = typed.lower()
    if _LATIN.match(lowered):
        found = _latin(session, library, lowered, scope, limit)
    else:
        found = _chinese(session, library, typed, scope, limit)
    seen: set[tuple[str, str, str | None]] = set()
    out = []
    for item in found:
        key = (item.kind, item.name, item.district_code)
        if key not in seen and _inside(library, found_area, item):
            seen.add(key)
            out.append(item)
    return _with_canonical(session, library, out[:limit])


def _inside(library: Library, area: AreaFilter | None, item: Suggestion) -> bool:
    """Admin areas and places must lie in `area=` (streets were checked in SQL)."""
    if area is not None and item.kind == "place":
        entries = places.entries_in(library.places, item.name, item.district_code)
        return any(area.code in places.area_codes(e).values() for e in entries)
    if area is None or item.kind not in ("district", "subdistrict", "community"):
        return True
    code = item.area_code
    chain = []
    while code:
        chain.append(code)
        found = library.areas.get(code)
        code = found.parent_code if found else None
    return area.code in chain

"""Named places as the geocoder and the suggester find them: the spellings of each place's name
and aliases (`surfaces`), the in-memory index the gazetteer snapshot keeps of them, and the one
lookup of a place in a text (`find`).

People write a place as it is called (天津站, 南开大学), by a short or former name (南大, 天津
火车站), or without the city or district that opens its official name (第一中心医院 for 天津市
第一中心医院, 人民医院 for 河西区人民医院, usually with the district in front: 河西区人民医院
peels to the same). So every name and alias is indexed as written and without a leading 天津市
or full district name, when what remains still names something (three characters or more:
天津站 must not become 站). The same spellings are the places' rows in address_names (kind
'place'), where the suggester's prefix, pinyin, initials and trigram searches find them, and the
gazetteer's deletion index (geocoding.spelling.Corrector) corrects a typo in them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.geocoding.normalize import fold
from addressbook.geocoding.spelling import Corrector

# Suggestions rank by weight, which for roads and compounds counts the addresses using the name;
# a place's spelling counts as one use, so a road of the same beginning keeps its rank.
PLACE_WEIGHT: Final = 1
MIN_STRIPPED: Final = 3
_CITY: Final = ("天津市",)


@dataclass(frozen=True, slots=True)
class PlaceEntry:
    """A place as the snapshot keeps it; `address_*` describe its standard address, if linked."""

    id: int
    name: str
    category: str
    district_code: str | None
    subdistrict_code: str | None
    community_code: str | None
    grid_code: str | None
    lon: float
    lat: float
    address_id: int | None
    address_code: str | None


def surfaces(names: Iterable[str], district: str | None) -> dict[str, bool]:
    """The spellings of a place (its name first, then its aliases), each with whether it is only
    a shortened form (the name or an alias without its leading 天津市 or district)."""
    out: dict[str, bool] = {}
    prefixes = (*_CITY, *((district,) if district else ()))
    for name in names:
        written = fold(name).strip()
        if not written:
            continue
        out.setdefault(written, False)
        rest = written
        for prefix in prefixes:
            if rest.startswith(prefix) and len(rest) - len(prefix) >= MIN_STRIPPED:
                rest = rest[len(prefix) :]
                out.setdefault(rest, True)
    return out


_PLACES_SQL: Final = """
SELECT p.id, p.name, p.category, p.district_code, p.subdistrict_code, p.community_code,
       p.grid_code, ST_X(p.geom), ST_Y(p.geom), p.address_id, a.code, p.aliases, d.name
FROM places p
LEFT JOIN addresses a ON a.id = p.address_id
LEFT JOIN current_admin_areas d ON d.code = p.district_code
ORDER BY p.id
"""


def spelled_places(session: Session) -> list[tuple[PlaceEntry, dict[str, bool]]]:
    """Every place with its spellings."""
    out = []
    for row in session.execute(text(_PLACES_SQL)).tuples():
        entry = PlaceEntry(*row[:11])
        out.append((entry, surfaces([entry.name, *(row[11] or ())], row[12])))
    return out


@dataclass(frozen=True, eq=False)
class PlaceIndex:
    """Spelling -> places; never changed, rebuilt with the gazetteer snapshot."""

    by_surface: Mapping[str, tuple[PlaceEntry, ...]]
    lengths: tuple[int, ...]  # of the spellings, longest first
    corrector: Corrector

    @classmethod
    def build(cls, spelled: Iterable[tuple[PlaceEntry, Mapping[str, bool]]]) -> PlaceIndex:
        found: dict[str, list[PlaceEntry]] = {}
        for entry, spellings in spelled:
            for surface in spellings:
                found.setdefault(surface, []).append(entry)
        return cls(
            {k: tuple(v) for k, v in found.items()},
            tuple(sorted({len(k) for k in found}, reverse=True)),
            Corrector(found),
        )


@dataclass(frozen=True, slots=True)
class Found:
    """A place a text names: its spelling as typed, whether it had to be corrected, and what
    the text says besides (`rest`, for the caller to judge)."""

    entries: tuple[PlaceEntry, ...]
    typed: str
    corrected: bool
    rest: str


def find(index: PlaceIndex, typed: str, peeled: str) -> Found | None:
    """The place `typed` names: of the longest spelling of three characters or more anywhere in
    it (earliest on a tie), the whole text or the text after its city and district (`peeled`)
    as a spelling (南大: a two-character alias only counts alone, not inside 上海西站), and the
    whole or peeled text one edit from a spelling (the corrector's rule), the one that explains
    most of the text, an exact spelling before a correction: a misspelt 邵官庄小学 is not the
    官庄小学 inside it, and 武清区泗村店镇人民政府 is not 人民政府 (天津市人民政府's short
    form) left after its district and town."""
    found: list[tuple[int, bool, Found]] = []
    best: tuple[int, int, str] | None = None
    for start in range(len(typed)):
        for length in index.lengths:
            if length < MIN_STRIPPED or (best is not None and length <= best[1]):
                break
            surface = typed[start : start + length]
            if len(surface) == length and surface in index.by_surface:
                best = (start, length, surface)
                break
    if best is not None:
        start, length, surface = best
        rest = (typed[:start] + " " + typed[start + length :]).strip()
        found.append((length, True, Found(index.by_surface[surface], surface, False, rest)))
    for whole in dict.fromkeys((typed, peeled)):
        rest = typed[: len(typed) - len(whole)]
        if whole in index.by_surface:
            found.append((len(whole), True, Found(index.by_surface[whole], whole, False, rest)))
        elif near := index.corrector.near(whole):
            # A character replaced (the usual slip of an input method) rather than one added or
            # lost, where both would do.
            near = [name for name in near if len(name) == len(whole)] or near
            entries = tuple(e for name in near for e in index.by_surface[name])
            found.append((len(whole), False, Found(entries, whole, True, rest)))
    return max(found, key=lambda item: item[:2])[2] if found else None


def label(name: str, district: str | None) -> str:
    """How a place is written with its district (南开区南开大学), unless its name opens with the
    city or the district already (天津市第一中心医院, 河西区人民医院)."""
    if district is None or name.startswith(("天津", district)):
        return name
    return district + name


def entries_in(index: PlaceIndex, surface: str, district: str | None) -> tuple[PlaceEntry, ...]:
    """The places a spelling stands for in `district` (its address_names row's district)."""
    return tuple(e for e in index.by_surface.get(surface, ()) if e.district_code == district)


def area_codes(entry: PlaceEntry) -> dict[str, Any]:
    """The place's admin codes and grid, keyed as address elements are."""
    return {
        "district_code": entry.district_code,
        "subdistrict_code": entry.subdistrict_code,
        "community_code": entry.community_code,
        "grid_code": entry.grid_code,
    }

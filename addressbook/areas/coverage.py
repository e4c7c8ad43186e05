"""Which admin levels a place lacks, and why: an answer never fills a level it does not know.

A point gets its district from the district boundaries and its subdistrict from the derived
subdistrict outlines, which tile each district (addressbook.areas.import_derived), so inside the
city both are always known. Community and grid are not: 17 current townships (太湖路街道 and the
other 2023 ones among them) have no communities on record, so no community outline and no grid
lies there. Such answers carry ``missing``: one entry per unknown level, nearest the top first,
each with the reason the records give (``太湖路街道 (2023) has no communities on record``),
rather than the nearest community of another township.

A level that is known but rests on no record is an estimate, and answers say that too
(``estimated``): the derived outline of a subdistrict or community the records give no location
for is drawn around a generated point (``placement = 'spread'``, addressbook.areas.
import_derived), so which of it and its neighbours a point near their edge lies in is a guess.

The reasons are read from the current areas and grids in one statement (code lookups on
ix_admin_areas_code, ix_admin_areas_parent_code and ix_grids_community_code), for every answer
of a request at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

# The current district, subdistrict and community whose outline contains the point :x :y (GiST
# probes of idx_admin_areas_geom), with how each outline was placed; reverse geocoding embeds
# it, /grids/at runs it alone.
AREAS_AT: Final = """
SELECT json_agg(json_build_object('level', a.level, 'code', a.code, 'name', a.name,
                                  'placement', a.placement)
                ORDER BY a.level, a.code)
FROM current_admin_areas a
WHERE a.level IN ('district', 'subdistrict', 'community')
  AND ST_Intersects(a.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4490))  -- idx_admin_areas_geom
"""

# Per named area: its name, the year its version began, and how many current communities
# (a subdistrict) or grids (a community) it has; and whether any grid is on record at all.
FACTS: Final = """
    SELECT a.code, a.name, extract(year FROM a.valid_from)::int AS since,
           CASE a.level
               WHEN 'subdistrict' THEN (SELECT count(*) FROM current_admin_areas c
                                        WHERE c.parent_code = a.code AND c.level = 'community')
               WHEN 'community' THEN (SELECT count(*) FROM grids g
                                      WHERE g.community_code = a.code)
           END AS children,
           a.placement, p.name AS parent
    FROM current_admin_areas a
    LEFT JOIN current_admin_areas p ON p.code = a.parent_code
    WHERE a.code = ANY(CAST(:codes AS text[]))
    UNION ALL
    SELECT '', '', 0, (SELECT count(*) FROM (SELECT 1 FROM grids LIMIT 1) g), NULL, NULL
    """

LEVELS: Final = ("district", "subdistrict", "community", "grid")


@dataclass(frozen=True, slots=True)
class Place:
    """The codes an answer found for one point (None where it found none)."""

    district: str | None
    subdistrict: str | None
    community: str | None
    grid: str | None

    @classmethod
    def of(cls, codes: Mapping[Any, Any]) -> Place:
        """From a mapping with `district_code`, `subdistrict_code`, ... keys."""
        district, subdistrict, community, grid = (codes.get(f"{lv}_code") for lv in LEVELS)
        return cls(district, subdistrict, community, grid)


@dataclass(frozen=True, slots=True)
class _Fact:
    name: str
    since: int
    children: int
    placement: str | None
    parent: str | None


Reasons = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Explained:
    """What an answer lacks (`missing`) and what it only estimates (`estimated`), each a list
    of ``{"level", "reason"}``, top level first."""

    missing: Reasons
    estimated: Reasons

    def fields(self) -> dict[str, Reasons]:
        """The two lists as an answer's fields."""
        return {"missing": self.missing, "estimated": self.estimated}


def by_level(found: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The rows of `AREAS_AT` by level, as answers show them (without `placement`)."""
    return {a["level"]: {k: v for k, v in a.items() if k != "placement"} for a in found or ()}


def areas_at(session: Session, x: float, y: float) -> list[dict[str, Any]]:
    """The rows of `AREAS_AT`: the current areas whose outline contains (x, y) in EPSG:4490."""
    return session.execute(text(AREAS_AT), {"x": x, "y": y}).scalar() or []


def explain_at(session: Session, found: Sequence[Mapping[str, Any]], grid: str | None) -> Explained:
    """`explain_one` for a point whose areas `AREAS_AT` found: when every level is known, the
    estimates follow from those rows and no statement is sent (the common case of reverse
    geocoding)."""
    areas = {a["level"]: a for a in found}
    place = Place.of({f"{lv}_code": a["code"] for lv, a in areas.items()} | {"grid_code": grid})
    if None in (place.district, place.subdistrict, place.community, place.grid):
        return explain_one(session, place)
    parents = {"subdistrict": areas["district"]["name"], "community": areas["subdistrict"]["name"]}
    facts = {
        a["code"]: _Fact(a["name"], 0, 0, a.get("placement"), parents.get(level))
        for level, a in areas.items()
    }
    return Explained([], _estimated(place, facts))


def _missing(place: Place, facts: Mapping[str, _Fact], any_grid: bool) -> Reasons:
    missing: Reasons = []

    def lacks(level: str, reason: str) -> None:
        missing.append({"level": level, "reason": reason})

    district = facts.get(place.district or "")
    subdistrict = facts.get(place.subdistrict or "")
    community = facts.get(place.community or "")
    if place.district is None:
        lacks("district", "the point lies outside the boundaries of every district of 天津市")
    if place.subdistrict is None:
        lacks(
            "subdistrict",
            f"no current subdistrict outline of {district.name} covers the point"
            if district
            else "the subdistrict lies in a district, and the point has none",
        )
    if place.community is None:
        if subdistrict is None:
            lacks("community", "the community lies in a subdistrict, and the point has none")
        elif subdistrict.children == 0:
            lacks(
                "community",
                f"{subdistrict.name} ({subdistrict.since}) has no communities on record",
            )
        else:
            lacks("community", f"no community outline of {subdistrict.name} covers the point")
    if place.grid is None:
        if not any_grid:
            lacks("grid", "no grids are on record")
        elif community is None:
            lacks("grid", "grids are drawn within communities, and the point has no community")
        elif community.children == 0:
            lacks("grid", f"{community.name} has no grids on record")
        else:
            lacks("grid", f"no grid of {community.name} covers the point")
    return missing


def _estimated(place: Place, facts: Mapping[str, _Fact]) -> Reasons:
    estimated: Reasons = []
    for level, code in (("subdistrict", place.subdistrict), ("community", place.community)):
        fact = facts.get(code or "")
        if fact is not None and fact.placement == "spread":
            estimated.append(
                {
                    "level": level,
                    "reason": f"{fact.name} has no location on record: its outline is a share "
                    f"of {fact.parent} drawn around a generated point",
                }
            )
    return estimated


def explain(session: Session, places: Sequence[Place]) -> list[Explained]:
    """For each place, the levels it lacks and those it only estimates, with the reasons. One
    statement for all the places."""
    codes = {c for p in places for c in (p.district, p.subdistrict, p.community) if c}
    if not places:
        return []
    facts: dict[str, _Fact] = {}
    any_grid = False
    rows = session.execute(text(FACTS), {"codes": sorted(codes)}).tuples()
    for code, name, since, children, placement, parent in rows:
        if code:
            facts[code] = _Fact(name, since, children or 0, placement, parent)
        else:
            any_grid = bool(children)
    return [
        Explained(_missing(place, facts, any_grid), _estimated(place, facts)) for place in places
    ]


def explain_one(session: Session, place: Place) -> Explained:
    return explain(session, [place])[0]

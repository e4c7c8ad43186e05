"""The checks a proposal gets when submitted; what they find is stored with it for the reviewer.

Findings are warnings, never refusals: the reviewer decides. (What could never be published,
an unknown area, a point outside the city, a retired address, is refused at submission, by the
same checks a direct edit makes.) Each finding is ``{"kind", "message", "details"}``:

- ``duplicate``: the standard form is already an active address (the write would be refused
  until that one is retired), or another pending proposal's;
- ``outside_named_area``: the point lies outside the subdistrict, community or grid the
  proposal names (with the distance, and whether the outline is itself an estimate);
- ``house_number_sequence``: the number is out of order along its road (review.sequence);
- ``unknown_name``: the road or compound is not in the district's dictionary (the names the
  parser and suggestions know, addressbook.geocoding.names), with the nearest known spellings;
- ``former_name``: a road named by an old name the library keeps as an alias, or an area named
  by a superseded name or code (the resolver's note).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.prepared import Prepared, existing, invalid
from addressbook.review import sequence

Finding = dict[str, Any]

# The named areas and grid a point must lie in: GiST-free, by code (one row each).
_NAMED_SQL: Final = """
SELECT a.level, a.code, a.name, ST_Intersects(a.geom, p.pt) AS inside,
       ST_Distance(CAST(a.geom AS geography), CAST(p.pt AS geography)) AS metres,
       a.placement = 'spread' AS estimated
FROM current_admin_areas a, (SELECT ST_SetSRID(ST_MakePoint(:x, :y), 4490) AS pt) p
WHERE a.code IN (:subdistrict, :community) AND a.geom IS NOT NULL
UNION ALL
SELECT 'grid', g.code, g.name, ST_Intersects(g.geom, p.pt),
       ST_Distance(CAST(g.geom AS geography), CAST(p.pt AS geography)), false
FROM grids g, (SELECT ST_SetSRID(ST_MakePoint(:x, :y), 4490) AS pt) p
WHERE g.code = :grid
"""
# Trigram neighbours in the district (ix_address_names_name_trgm), at pg_trgm's default 0.3.
_SIMILAR_SQL: Final = """
SELECT n.name FROM address_names n
WHERE n.name % :name AND n.kind = :kind AND n.district_code = :district
ORDER BY similarity(n.name, :name) DESC, n.weight DESC LIMIT 3
"""


def check_grid(session: Session, grid: str | None) -> None:
    """A proposal naming a grid must name one that exists (400)."""
    if grid is None:
        return
    found = session.execute(text("SELECT 1 FROM grids WHERE code = :g"), {"g": grid}).first()
    if found is None:
        raise invalid("grid", f"there is no grid {grid!r}")


def _finding(kind: str, message: str, **details: Any) -> Finding:
    return {"kind": kind, "message": message, "details": details}


def duplicates(session: Session, prepared: Prepared, other_than: int | None) -> list[Finding]:
    found = []
    clash = existing(session, prepared, other_than)
    if clash is not None:
        found.append(
            _finding(
                "duplicate",
                f"address {clash} already is {prepared.full_address}",
                address_id=clash,
                standard=prepared.full_address,
            )
        )
    pending = session.execute(
        text(
            "SELECT id FROM address_proposals WHERE status = 'pending' AND kind <> 'retire' "
            "AND district_code = :district AND standard = :standard ORDER BY id LIMIT 5"
        ),
        {"district": prepared.district_code, "standard": prepared.full_address},
    ).scalars()
    found += [
        _finding(
            "duplicate",
            f"pending proposal {p} would publish the same {prepared.full_address}",
            proposal_id=int(p),
            standard=prepared.full_address,
        )
        for p in pending
    ]
    return found


def outside_named(
    session: Session, prepared: Prepared, named: Mapping[str, Any], grid: str | None
) -> list[Finding]:
    """The areas the proposal names itself (not those found from its point, which contain it
    by construction) and the grid it names."""
    params = {
        "x": prepared.lon,
        "y": prepared.lat,
        "subdistrict": prepared.subdistrict_code if named.get("subdistrict") else None,
        "community": prepared.community_code if named.get("community") else None,
        "grid": grid,
    }
    rows = session.execute(text(_NAMED_SQL), params).mappings()
    return [
        _finding(
            "outside_named_area",
            f"the point is {row['metres']:.0f} m outside the {row['level']} {row['name']} "
            "the proposal names",
            level=row["level"],
            code=row["code"],
            name=row["name"],
            metres=round(float(row["metres"]), 1),
            estimated=bool(row["estimated"]),
        )
        for row in rows
        if not row["inside"]
    ]


def house_number(session: Session, prepared: Prepared) -> list[Finding]:
    road, number = prepared.elements["road"], prepared.elements["house_number"]
    plain = sequence.plain_number(number)
    if road is None or plain is None:
        return []
    numbers = sequence.road_numbers(session, prepared.district_code, road)
    why = sequence.out_of_sequence(numbers, plain, prepared.lon, prepared.lat)
    if why is None:
        return []
    low, high = why["between"]
    span = (
        f"between {low} and {high}" if low and high else f"after {low}" if low else f"before {high}"
    )
    return [
        _finding(
            "house_number_sequence",
            f"{road}{number} stands {why['metres_outside']} m outside its place along the road "
            f"({span}, {why['side']} side)",
            road=road,
            house_number=number,
            **why,
        )
    ]


def _known(session: Session, kind: str, name: str, district: str) -> bool:
    """In the district's dictionary (uq_address_names: kind, name, district)."""
    return (
        session.execute(
            text(
                "SELECT 1 FROM address_names "
                "WHERE kind = :kind AND name = :name AND district_code = :district"
            ),
            {"kind": kind, "name": name, "district": district},
        ).first()
        is not None
    )


def _renamed_to(session: Session, name: str, district: str) -> str | None:
    """The road an old road name now stands for (ix_address_aliases_alias)."""
    found = session.execute(
        text(
            "SELECT canonical FROM address_aliases "
            "WHERE alias = :name AND kind = 'road' AND district_code = :district LIMIT 1"
        ),
        {"name": name, "district": district},
    ).scalar()
    return str(found) if found is not None else None


def names(session: Session, prepared: Prepared) -> list[Finding]:
    found = []
    district = prepared.district_code
    for kind in ("road", "compound"):
        name = prepared.elements[kind]
        if name is None or _known(session, kind, name, district):
            continue
        current = _renamed_to(session, name, district) if kind == "road" else None
        if current is not None:
            message = f"{name} is a former name of the road {current}"
            found.append(_finding("former_name", message, element=kind, name=name, current=current))
            continue
        similar = session.execute(
            text(_SIMILAR_SQL), {"name": name, "kind": kind, "district": district}
        ).scalars()
        found.append(
            _finding(
                "unknown_name",
                f"the {kind} {name} is not in the district's dictionary",
                element=kind,
                name=name,
                similar=list(similar),
            )
        )
    found += [_finding("former_name", note, element="area", note=note) for note in prepared.notes]
    return found


def findings(
    session: Session,
    prepared: Prepared,
    named: Mapping[str, Any],
    grid: str | None,
    other_than: int | None,
) -> list[Finding]:
    """Every check on the address a proposal would publish (`named`: the fields it gives;
    `other_than`: the address a change proposal changes)."""
    return [
        *duplicates(session, prepared, other_than),
        *outside_named(session, prepared, named, grid),
        *house_number(session, prepared),
        *names(session, prepared),
    ]

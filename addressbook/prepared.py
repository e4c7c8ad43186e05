"""An address as a single edit will store it: admin areas resolved by the rule imports follow
too (addressbook.areas.resolver), elements in the library's spelling, areas and grid found by
location where not given, the stable code and the full form, and the checks before writing
(widths, a road or compound, no second active address with the same elements).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas import resolver
from addressbook.areas.resolver import Gone, Resolved
from addressbook.models import ELEMENT_WIDTHS, ELEMENTS
from geo.errors import ApiError

# Standard spelling, areas by location where not given (each inside the district), grid by
# location (GiST probes of idx_admin_areas_geom / idx_grids_geom), code and full form.
_PREPARE_SQL: Final = """
WITH v AS (
    SELECT address_standard('road', CAST(:road AS text)) AS road,
           address_standard('house_number', CAST(:house_number AS text)) AS house_number,
           address_standard('compound', CAST(:compound AS text)) AS compound,
           address_standard('building', CAST(:building AS text)) AS building,
           address_standard('unit', CAST(:unit AS text)) AS unit,
           address_standard('room', CAST(:room AS text)) AS room,
           ST_SetSRID(ST_MakePoint(:x, :y), 4490) AS pt
), c AS (
    SELECT v.*, coalesce(CAST(:community AS text), (
        SELECT a.code FROM current_admin_area_tree a
        WHERE a.level = 'community' AND ST_Intersects(a.geom, v.pt)
          AND a.district_code = :district
          AND (CAST(:subdistrict AS text) IS NULL OR a.parent_code = :subdistrict)
        ORDER BY a.code LIMIT 1)) AS community_code
    FROM v
), q AS (
    SELECT c.*, coalesce(
        CAST(:subdistrict AS text),
        (SELECT a.parent_code FROM current_admin_areas a
         WHERE a.code = c.community_code LIMIT 1),
        (SELECT a.code FROM current_admin_areas a
         WHERE a.level = 'subdistrict' AND a.parent_code = :district
           AND ST_Intersects(a.geom, c.pt)
         ORDER BY a.code LIMIT 1)) AS subdistrict_code,
        (SELECT g.code FROM grids g WHERE ST_Intersects(g.geom, c.pt)
         ORDER BY g.code LIMIT 1) AS grid_code
    FROM c
)
SELECT q.road, q.house_number, q.compound, q.building, q.unit, q.room,
       q.subdistrict_code, q.community_code, q.grid_code,
       address_code(d.code, q.road, q.house_number, q.compound, q.building, q.unit, q.room),
       address_full_form(d.name, s.name, q.road, q.house_number, q.compound, q.building,
                         q.unit, q.room)
FROM q
JOIN current_admin_areas d ON d.code = :district
LEFT JOIN current_admin_areas s ON s.code = q.subdistrict_code
"""


@dataclass(frozen=True)
class Prepared:
    """An address as it will be stored."""

    district_code: str
    subdistrict_code: str | None
    community_code: str | None
    grid_code: str | None
    elements: dict[str, str | None]
    code: str
    full_address: str
    lon: float
    lat: float
    # What became of areas named by a superseded name or code (areas.resolver), for the audit.
    notes: tuple[str, ...] = ()

    def columns(self) -> dict[str, Any]:
        return {
            "district_code": self.district_code,
            "subdistrict_code": self.subdistrict_code,
            "community_code": self.community_code,
            "grid_code": self.grid_code,
            **self.elements,
            "full_address": self.full_address,
            "x": self.lon,
            "y": self.lat,
        }


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "InvalidAddress", f"{field}: {message}", {"field": field})


def area(session: Session, level: str, value: Any, scope: str | None) -> Resolved:
    """The current area `value` names (areas.resolver's rule, the importer's too): a district,
    a subdistrict inside the district `scope`, a community inside the subdistrict `scope` or
    (level community_in_district) unique in the district `scope`; a 400 naming the field if
    there is none."""
    field = level.removesuffix("_in_district")
    found = resolver.resolve(session, level, str(value), scope)
    if not isinstance(found, Resolved):
        where = f" in {scope}" if scope else ""
        why = f": {found.note}" if isinstance(found, Gone) else ""
        if level == "community_in_district" and not why:
            why = " (a name several communities of the district share needs the subdistrict)"
        raise invalid(field, f"unknown {field} {str(value).strip()!r}{where}{why}")
    return found


def prepare(session: Session, fields: Mapping[str, Any], lon: float, lat: float) -> Prepared:
    """Resolve the admin areas, standardise the elements, place the address, and check it. A
    historical name resolves to the area carrying the place today, and the district follows
    it; the notes say so."""
    named = area(session, "district", fields["district"], None)
    found = [named]
    subdistrict = community = None
    if fields.get("subdistrict"):
        subdistrict = area(session, "subdistrict", fields["subdistrict"], named.code)
        found.append(subdistrict)
    if fields.get("community"):
        level, scope = (
            ("community", subdistrict.code)
            if subdistrict
            else ("community_in_district", named.code)
        )
        community = area(session, level, fields["community"], scope)
        found.append(community)
    district = found[-1].district_code or named.code
    notes = tuple(dict.fromkeys(f.note for f in found if f.note))
    params = {
        **{c: fields.get(c) for c in ELEMENTS},
        "x": lon,
        "y": lat,
        "district": district,
        "subdistrict": subdistrict.code if subdistrict else None,
        "community": community.code if community else None,
    }
    row = session.execute(text(_PREPARE_SQL), params).tuples().one()
    elements = dict(zip(ELEMENTS, row[:6], strict=True))
    if not elements["road"] and not elements["compound"]:
        raise invalid("road", "an address needs a road or a compound")
    for name, width in ELEMENT_WIDTHS.items():
        value = elements[name]
        if value is not None and len(value) > width:
            raise invalid(name, f"{value!r} is longer than {width} characters")
    return Prepared(district, row[6], row[7], row[8], elements, row[9], row[10], lon, lat, notes)


def notes_of(prepared: Prepared) -> dict[str, Any]:
    return {"notes": list(prepared.notes)} if prepared.notes else {}


def _same_elements(session: Session, prepared: Prepared, other_than: int | None) -> int | None:
    """An active address with the same district and elements (ix_addresses_structured /
    ix_addresses_compound): a second one would make the library ambiguous."""
    conditions = ["a.district_code = :district_code", "a.status = 'active'"]
    for name in ELEMENTS:
        value = prepared.elements[name]
        conditions.append(f"a.{name} = :{name}" if value is not None else f"a.{name} IS NULL")
    if other_than is not None:
        conditions.append("a.id <> :other")
    found = session.execute(
        text(f"SELECT a.id FROM addresses a WHERE {' AND '.join(conditions)} LIMIT 1"),
        {**prepared.columns(), "other": other_than},
    ).scalar()
    return int(found) if found is not None else None


def existing(session: Session, prepared: Prepared, other_than: int | None) -> int | None:
    """The address that writing `prepared` would duplicate (same active elements, or for a new
    address the same code), if any: refused by edits, a finding for a proposal under review."""
    clash = _same_elements(session, prepared, other_than)
    if clash is None and other_than is None:
        found = session.execute(
            text("SELECT id FROM addresses WHERE code = :code"), {"code": prepared.code}
        ).scalar()
        clash = int(found) if found is not None else None
    return clash


def check_unique(session: Session, prepared: Prepared, other_than: int | None) -> None:
    """Refuse a write that would duplicate an address. Writers of the same district and
    elements first take a transaction advisory lock on them: without it two concurrent edits
    could both pass the check (a new address then failed on the code's unique index, a 500,
    and an update had no index to stop it). The second writer waits for the first's commit
    and, its next statement seeing the committed row, gets the same 409."""
    key = "|".join(
        [prepared.district_code, *(str(prepared.elements[name] or "") for name in ELEMENTS)]
    )
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
    clash = existing(session, prepared, other_than)
    if clash is not None:
        raise ApiError(
            409,
            "DuplicateAddress",
            f"address {clash} already is {prepared.full_address}",
            {"existing_id": int(clash), "standard": prepared.full_address},
        )

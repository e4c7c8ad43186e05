"""Editing the library one address at a time: create, update, retire, rename a road, history.

Every edit happens in the caller's transaction together with its history row (address_history
keeps every version, as it was after the change), its audit entry and a bump of the "addresses"
data version (which makes every worker's dictionary and every cache notice). Element spelling,
the standard full form and the stable code come from the same SQL functions the bulk importer
uses (address_standard, address_full_form, address_code; see addressbook.prepared), so an
address typed in here and the same address imported from a file look exactly alike. The code
is assigned once, at creation, and is the address's identity: later edits keep it.

Every change to an existing address (update, replace, retire) needs `If-Match` with the version
the client read (the ETag of GET /addresses/{id}): a 428 without it, a 412 when someone else
changed the address in between (geo.preconditions, the rule of every ETag of the service).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas import coverage
from addressbook.geocoding import gazetteer, names
from addressbook.models import ELEMENT_WIDTHS, ELEMENTS
from addressbook.prepared import Prepared, area, check_unique, invalid, notes_of, prepare
from geo import audit, departments, versions
from geo.auth import Principal
from geo.crs import STORAGE_CRS, transform_xy
from geo.errors import ApiError, not_found
from geo.extent import city_point
from geo.preconditions import check_if_match

_RECORD_SQL: Final = """
SELECT a.id, a.code, a.status, a.successor_id, a.version, a.full_address AS standard,
       d.name AS district, a.district_code, s.name AS subdistrict, a.subdistrict_code,
       c.name AS community, a.community_code, a.grid_code,
       a.road, a.house_number, a.compound, a.building, a.unit, a.room,
       ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat, a.created_at, a.updated_at, a.updated_by
FROM addresses a
LEFT JOIN current_admin_areas d ON d.code = a.district_code
LEFT JOIN current_admin_areas s ON s.code = a.subdistrict_code
LEFT JOIN current_admin_areas c ON c.code = a.community_code
WHERE a.id = :id
"""
_ELEMENT_KEYS: Final = (
    "district",
    "district_code",
    "subdistrict",
    "subdistrict_code",
    "community",
    "community_code",
    "grid_code",
    *ELEMENTS,
)


def require_authority(session: Session, who: Principal) -> None:
    """Only the address authority writes the standard library (DESIGN.md: one authoritative
    address per place). An editor key is not enough: the department must be the authority
    (departments.address_authority, set by the platform administrator; the platform department
    always is). Other departments get a 403 that names the rule."""
    if departments.is_address_authority(session, who.department):
        return
    raise ApiError(
        403,
        "NotAddressAuthority",
        "only the address authority may change the standard address library; department "
        f"{who.department!r} is not the address authority",
        {"rule": "address-authority", "department": who.department},
    )


def actor(who: Principal) -> str:
    """How the library names who changed an address (`updated_by`, history): the department and
    the account or key prefix, as the audit trail does."""
    return f"{who.department}/{who.actor}" if who.department else (who.actor or "")


# --- reading -------------------------------------------------------------------------------------


def record(session: Session, address_id: int, crs: str = "CRS84") -> dict[str, Any]:
    """The address as the API shows it (location in `crs`); 404 when there is none."""
    row = session.execute(text(_RECORD_SQL), {"id": address_id}).mappings().first()
    if row is None:
        raise not_found(f"there is no address {address_id}", {"id": address_id})
    x, y = transform_xy([row["lon"]], [row["lat"]], STORAGE_CRS, crs)
    return {
        **{k: row[k] for k in ("id", "code", "status", "successor_id", "version", "standard")},
        "elements": {k: row[k] for k in _ELEMENT_KEYS},
        # Areas or grid the address lacks or only estimates, with the reasons (coverage).
        **coverage.explain_one(session, coverage.Place.of(row)).fields(),
        "location": {"type": "Point", "coordinates": [float(x[0]), float(y[0])]},
        "crs": crs,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "updated_by": row["updated_by"],
    }


def history(session: Session, address_id: int) -> list[dict[str, Any]]:
    """Every stored version, oldest first (ix_address_history_address_version)."""
    record(session, address_id)  # 404 for an unknown address
    rows = session.execute(
        text(
            "SELECT version, action, data, changed_at, changed_by FROM address_history "
            "WHERE address_id = :id ORDER BY version, id"
        ),
        {"id": address_id},
    ).tuples()
    return [
        {
            "version": version,
            "action": action,
            "data": data,
            "changed_at": changed_at.isoformat(),
            "changed_by": changed_by,
        }
        for version, action, data, changed_at, changed_by in rows
    ]


# --- writes --------------------------------------------------------------------------------------


def _refresh_names(session: Session, touched: Iterable[tuple[str, str | None, str | None]]) -> None:
    """Weights and centroids of the road and compound names an edit touched (names.py)."""
    rows = [{"kind": k, "name": n, "district_code": d} for k, n, d in set(touched) if n and d]
    if not rows:
        return
    session.execute(
        text("CREATE TEMP TABLE _touched (kind text, name text, district_code text) ON COMMIT DROP")
    )
    session.execute(text("INSERT INTO _touched VALUES (:kind, :name, :district_code)"), rows)
    names.refresh_streets(session, "_touched")
    session.execute(text("DROP TABLE _touched"))


def _streets(district: str | None, elements: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    return [
        ("road", elements.get("road"), district),
        ("compound", elements.get("compound"), district),
    ]


def _write_history(session: Session, address_id: int, action: str, who: Principal) -> None:
    """The version just written, as it now stands, into address_history."""
    session.execute(
        text(
            """
            INSERT INTO address_history (address_id, version, action, data, changed_by)
            SELECT a.id, a.version, :action,
                   jsonb_build_object(
                       'code', a.code, 'status', a.status, 'successor_id', a.successor_id,
                       'full_address', a.full_address, 'district_code', a.district_code,
                       'subdistrict_code', a.subdistrict_code,
                       'community_code', a.community_code, 'grid_code', a.grid_code,
                       'road', a.road, 'house_number', a.house_number, 'compound', a.compound,
                       'building', a.building, 'unit', a.unit, 'room', a.room,
                       'lon', ST_X(a.geom), 'lat', ST_Y(a.geom)),
                   :who
            FROM addresses a WHERE a.id = :id
            """
        ),
        {"id": address_id, "action": action, "who": actor(who)},
    )


def _changed(session: Session) -> None:
    versions.bump(session, "addresses")
    gazetteer.expire()


def create(session: Session, who: Principal, fields: Mapping[str, Any], crs: str) -> int:
    """A new address from its elements and location (`lon`, `lat` in `crs`); returns its id."""
    require_authority(session, who)
    lon, lat = city_point(float(fields["lon"]), float(fields["lat"]), crs)
    prepared = prepare(session, fields, lon, lat)
    check_unique(session, prepared, None)
    address_id = session.execute(
        text(
            """
            INSERT INTO addresses (code, district_code, subdistrict_code, community_code,
                grid_code, road, house_number, compound, building, unit, room, full_address,
                geom, updated_by)
            VALUES (:code, :district_code, :subdistrict_code, :community_code, :grid_code,
                :road, :house_number, :compound, :building, :unit, :room, :full_address,
                ST_SetSRID(ST_MakePoint(:x, :y), 4490), :who)
            RETURNING id
            """
        ),
        {**prepared.columns(), "code": prepared.code, "who": actor(who)},
    ).scalar_one()
    _write_history(session, address_id, "create", who)
    _refresh_names(session, _streets(prepared.district_code, prepared.elements))
    audit.record(
        session,
        who,
        "address.create",
        f"address/{address_id}",
        {"code": prepared.code, **notes_of(prepared)},
    )
    _changed(session)
    return int(address_id)


def _current(session: Session, address_id: int) -> dict[str, Any]:
    """The stored row, locked for the rest of the transaction."""
    row = (
        session.execute(
            text(
                f"""
            SELECT a.id, a.version, a.status, a.district_code, a.subdistrict_code,
                   a.community_code, {", ".join(f"a.{c}" for c in ELEMENTS)},
                   ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat
            FROM addresses a WHERE a.id = :id FOR UPDATE
            """
            ),
            {"id": address_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found(f"there is no address {address_id}", {"id": address_id})
    return dict(row)


def editable(
    session: Session, address_id: int, if_match: str | None, *, required: bool = True
) -> dict[str, Any]:
    """The stored row of an address that may be changed, locked: a 404 for an unknown id, the
    If-Match rule (`required` for an edit; a proposal records the version it saw instead), a
    409 for a retired address."""
    current = _current(session, address_id)
    what = f"address {address_id}"
    check_if_match(if_match, current["version"], required=required, what=what)
    if current["status"] != "active":
        raise ApiError(
            409, "Retired", f"{what} is retired; it cannot be changed", {"id": address_id}
        )
    return current


def planned(
    session: Session,
    current: Mapping[str, Any],
    changes: Mapping[str, Any],
    crs: str,
    replace: bool = False,
) -> Prepared:
    """The address `current` (from :func:`editable`) as `changes` would make it. The
    subdistrict and community follow the location unless given."""
    if "lon" in changes or "lat" in changes:
        if "lon" not in changes or "lat" not in changes:
            raise invalid("lon", "a new location needs both lon and lat")
        lon, lat = city_point(float(changes["lon"]), float(changes["lat"]), crs)
    else:
        lon, lat = current["lon"], current["lat"]
    moved = replace or (lon, lat) != (current["lon"], current["lat"]) or "district" in changes
    fields: dict[str, Any] = {
        "district": current["district_code"],
        "subdistrict": None if moved else current["subdistrict_code"],
        "community": None if moved else current["community_code"],
        **({} if replace else {c: current[c] for c in ELEMENTS}),
        **changes,
    }
    return prepare(session, fields, lon, lat)


def update(
    session: Session,
    who: Principal,
    address_id: int,
    changes: Mapping[str, Any],
    if_match: str | None,
    crs: str,
    replace: bool = False,
) -> None:
    """Change an address (PATCH: only the fields given; PUT, `replace`: every field, absent
    ones cleared)."""
    require_authority(session, who)
    current = editable(session, address_id, if_match)
    prepared = planned(session, current, changes, crs, replace)
    check_unique(session, prepared, address_id)
    session.execute(
        text(
            """
            UPDATE addresses SET district_code = :district_code,
                subdistrict_code = :subdistrict_code, community_code = :community_code,
                grid_code = :grid_code, road = :road, house_number = :house_number,
                compound = :compound, building = :building, unit = :unit, room = :room,
                full_address = :full_address, geom = ST_SetSRID(ST_MakePoint(:x, :y), 4490),
                version = version + 1, updated_at = now(), updated_by = :who
            WHERE id = :id
            """
        ),
        {**prepared.columns(), "id": address_id, "who": actor(who)},
    )
    _write_history(session, address_id, "update", who)
    _refresh_names(
        session,
        [
            *_streets(current["district_code"], current),
            *_streets(prepared.district_code, prepared.elements),
        ],
    )
    audit.record(
        session,
        who,
        "address.update",
        f"address/{address_id}",
        {"changed": sorted(changes), "replace": replace, **notes_of(prepared)},
    )
    _changed(session)


def check_successor(session: Session, address_id: int, successor_id: int | None) -> None:
    """A successor must be another address, and an active one."""
    if successor_id is None:
        return
    if successor_id == address_id:
        raise invalid("successor_id", "an address cannot succeed itself")
    status = session.execute(
        text("SELECT status FROM addresses WHERE id = :id"), {"id": successor_id}
    ).scalar()
    if status is None:
        raise invalid("successor_id", f"there is no address {successor_id}")
    if status != "active":
        raise invalid("successor_id", f"address {successor_id} is retired itself")


def retire(
    session: Session,
    who: Principal,
    address_id: int,
    successor_id: int | None,
    if_match: str | None,
) -> None:
    """Mark an address retired, pointing at the address that replaces it (if any): the
    geocoder answers texts naming the old one with the successor."""
    require_authority(session, who)
    current = editable(session, address_id, if_match)
    check_successor(session, address_id, successor_id)
    session.execute(
        text(
            """
            UPDATE addresses SET status = 'retired', successor_id = :successor,
                version = version + 1, updated_at = now(), updated_by = :who
            WHERE id = :id
            """
        ),
        {"id": address_id, "successor": successor_id, "who": actor(who)},
    )
    _write_history(session, address_id, "retire", who)
    _refresh_names(session, _streets(current["district_code"], current))
    audit.record(
        session,
        who,
        "address.retire",
        f"address/{address_id}",
        {"successor_id": successor_id},
    )
    _changed(session)


def rename_road(
    session: Session, who: Principal, district: str, old: str, new: str
) -> dict[str, Any]:
    """Give every address on road `old` in `district` the name `new` (and a new full form),
    keeping `old` as an alias (address_aliases, read into the parser's dictionary, and
    address_names, for suggestions) so that texts with the old name still find them."""
    require_authority(session, who)
    district_code = area(session, "district", district, None).code
    old, new = old.strip(), new.strip()
    if not new or len(new) > ELEMENT_WIDTHS["road"]:
        raise invalid("new", f"the new name must have 1 to {ELEMENT_WIDTHS['road']} characters")
    if new == old:
        raise invalid("new", "the new name is the old one")
    clash = session.execute(
        text(
            """
            SELECT o.id, n.id FROM addresses o JOIN addresses n
              ON n.district_code = o.district_code AND n.road = :new
             AND n.house_number IS NOT DISTINCT FROM o.house_number
             AND n.compound IS NOT DISTINCT FROM o.compound
             AND n.building IS NOT DISTINCT FROM o.building
             AND n.unit IS NOT DISTINCT FROM o.unit AND n.room IS NOT DISTINCT FROM o.room
            WHERE o.district_code = :district AND o.road = :old LIMIT 1
            """
        ),
        {"district": district_code, "old": old, "new": new},
    ).first()
    if clash is not None:
        raise ApiError(
            409,
            "DuplicateAddress",
            f"address {clash[0]} on {old} would become the same as address {clash[1]} on {new}",
            {"ids": [clash[0], clash[1]]},
        )
    renamed = [
        int(i)
        for i in session.execute(
            text(
                """
                UPDATE addresses a SET road = CAST(:new AS text),
                    full_address = address_full_form(
                        d.name,
                        (SELECT s.name FROM current_admin_areas s
                         WHERE s.code = a.subdistrict_code LIMIT 1),
                        CAST(:new AS text), a.house_number, a.compound, a.building, a.unit, a.room),
                    version = a.version + 1, updated_at = now(), updated_by = :who
                FROM current_admin_areas d
                WHERE a.district_code = :district AND a.road = :old  -- ix_addresses_structured
                  AND d.code = a.district_code
                RETURNING a.id
                """
            ),
            {"district": district_code, "old": old, "new": new, "who": actor(who)},
        ).scalars()
    ]
    if not renamed:
        raise not_found(f"there is no road {old!r} in {district}", {"road": old})
    session.execute(
        text(
            """
            INSERT INTO address_history (address_id, version, action, data, changed_by)
            SELECT a.id, a.version, 'rename',
                   jsonb_build_object('full_address', a.full_address, 'road', a.road,
                                      'old_road', CAST(:old AS text)),
                   :who
            FROM addresses a WHERE a.id = ANY(:ids)
            """
        ),
        {"ids": renamed, "old": old, "who": actor(who)},
    )
    _keep_alias(session, district_code, old, new)
    audit.record(
        session,
        who,
        "address.road_rename",
        f"road/{district_code}/{old}",
        {"new": new, "addresses": len(renamed)},
    )
    _changed(session)
    return {"district_code": district_code, "old": old, "new": new, "renamed": len(renamed)}


def _keep_alias(session: Session, district: str, old: str, new: str) -> None:
    """The old name as an alias of the new one: in address_aliases (and earlier aliases of the
    old name now lead to the new one), and in address_names as kind 'alias' with the new
    road's weight and centroid."""
    session.execute(
        text(
            """
            UPDATE address_aliases SET canonical = :new
            WHERE kind = 'road' AND canonical = :old AND district_code = :district
            """
        ),
        {"district": district, "old": old, "new": new},
    )
    session.execute(
        text(
            """
            INSERT INTO address_aliases (kind, alias, canonical, district_code)
            VALUES ('road', :old, :new, :district)
            ON CONFLICT ON CONSTRAINT uq_address_aliases DO NOTHING
            """
        ),
        {"district": district, "old": old, "new": new},
    )
    _refresh_names(session, [("road", old, district), ("road", new, district)])
    full, initials = names.pinyin(old)
    session.execute(
        text(
            """
            INSERT INTO address_names (kind, name, district_code, pinyin, initials, weight,
                                       centroid)
            SELECT 'alias', CAST(:old AS text), CAST(:district AS text), CAST(:pinyin AS text),
                   CAST(:initials AS text), n.weight, n.centroid
            FROM address_names n
            WHERE n.kind = 'road' AND n.name = :new AND n.district_code = :district
            ON CONFLICT (kind, name, district_code) DO UPDATE
               SET weight = EXCLUDED.weight, centroid = EXCLUDED.centroid
            """
        ),
        {"district": district, "old": old, "new": new, "pinyin": full, "initials": initials},
    )

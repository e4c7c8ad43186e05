"""Granting and revoking access to a layer (分级授权), and listing grants.

The owner of a layer (its department's editors, or the platform administrator) grants one
department, or every department, a level on it, possibly narrowed by area, attributes and
expiry (see :mod:`layers.scope`, which holds the table and decides which grant a request reads
through). Every grant and revocation bumps the layer's data version (geo.versions): the tile
access cache and the tile cache key on it, so a revoked grant stops working on the next request
in every worker, and no tile made for one grant scope is ever served for another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from addressbook.areas.query import get_area
from geo import audit, versions
from geo.auth import Principal
from geo.crs import STORAGE_CRS, transform
from geo.departments import get_department
from geo.errors import ApiError
from geo.extent import city_point
from layers import catalogue
from layers.schema import specs_of
from layers.scope import AREA_SRID, LEVELS, STORAGE_SRID, Grant

__all__ = [
    "Grant",
    "create_grant",
    "grants_given",
    "grants_of_layer",
    "grants_received",
    "revoke_grant",
]

MAX_AREA_VERTICES = 200_000
MAX_ATTRIBUTES = 500
MAX_NOTE = 2_000


def _bad(code: str, message: str, details: Any = None) -> ApiError:
    return ApiError(400, code, message, details)


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise _bad(
            "InvalidParameterValue",
            f"level must be one of {', '.join(LEVELS)}, not {level!r}",
            {"level": level, "levels": list(LEVELS)},
        )
    return level


def _check_grantee(session: Session, owner: str, grantee: str | None) -> str | None:
    if grantee is None:
        return None
    try:
        get_department(session, grantee)
    except ApiError:
        raise _bad(
            "UnknownDepartment", f"no department with code {grantee!r}", {"grantee": grantee}
        ) from None
    if grantee == owner:
        raise _bad(
            "InvalidParameterValue",
            f"{grantee!r} owns the layer: its departments needs no grant",
            {"grantee": grantee},
        )
    return grantee


def check_attributes(declared: list[str], attributes: list[str] | None) -> list[str] | None:
    if attributes is None:
        return None
    if len(attributes) > MAX_ATTRIBUTES:
        raise _bad("InvalidParameterValue", f"at most {MAX_ATTRIBUTES} attributes")
    unknown = [a for a in attributes if a not in declared]
    if unknown:
        raise _bad(
            "UnknownAttribute",
            f"the layer has no attribute(s) {', '.join(map(repr, unknown[:10]))}",
            {"unknown": unknown[:10], "attributes": declared},
        )
    return sorted(set(attributes), key=declared.index)


def _check_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= datetime.now(UTC):
        raise _bad(
            "ExpiryInPast",
            f"expires_at {expires_at.isoformat()} is not in the future",
            {"expires_at": expires_at.isoformat()},
        )
    return expires_at


def _multipolygon(shape: Any) -> Any:
    if isinstance(shape, shapely.Polygon):
        return shapely.MultiPolygon([shape])
    return shape


def polygon(area: dict[str, Any]) -> Any:
    """A GeoJSON (Multi)Polygon in EPSG:4326, valid and inside the city, as a shapely shape."""
    kind = area.get("type") if isinstance(area, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        raise _bad("InvalidArea", "area must be a GeoJSON Polygon or MultiPolygon (EPSG:4326)")
    try:
        shape = shapely.from_geojson(orjson.dumps(area))
    except (TypeError, ValueError, shapely.errors.GEOSException) as exc:
        raise _bad("InvalidArea", f"area is not a valid GeoJSON geometry: {exc}") from exc
    if shape.is_empty:
        raise _bad("InvalidArea", "area is empty")
    if shapely.get_num_coordinates(shape) > MAX_AREA_VERTICES:
        raise _bad("InvalidArea", f"area has more than {MAX_AREA_VERTICES} vertices")
    if not shape.is_valid:
        raise _bad("InvalidArea", f"area is not a valid polygon: {shapely.is_valid_reason(shape)}")
    minx, miny, maxx, maxy = shape.bounds
    city_point(minx, miny, "EPSG:4326")
    city_point(maxx, maxy, "EPSG:4326")
    return _multipolygon(shape)


def admin_area(session: Session, code: str) -> Any:
    """An admin area's polygon, read through the address library (never its tables)."""
    try:
        found = get_area(session, code, STORAGE_CRS)
    except ApiError:
        raise _bad(
            "UnknownArea", f"no admin area has the code {code!r}", {"area_code": code}
        ) from None
    if not found["current"] or not found.get("geometry"):
        raise _bad(
            "UnknownArea",
            f"admin area {code!r} is not in force or has no boundary",
            {"area_code": code},
        )
    shape = shapely.geometry.shape(found["geometry"])
    return _multipolygon(transform(shape, STORAGE_CRS, "EPSG:4326"))


def create_grant(
    session: Session,
    who: Principal,
    layer_id: str,
    *,
    grantee: str | None,
    level: str,
    area_code: str | None = None,
    area: dict[str, Any] | None = None,
    attributes: list[str] | None = None,
    expires_at: datetime | None = None,
    note: str | None = None,
    request_id: int | None = None,
) -> Grant:
    """Grant ``grantee`` (None: every department) ``level`` on the layer, in the caller's
    transaction; everything is checked before anything is written."""
    layer = catalogue.writable_layer(session, who, layer_id, lock=True)
    check_level(level)
    grantee = _check_grantee(session, layer.owner, grantee)
    declared = [p.name for p in specs_of(layer.properties)]
    kept = check_attributes(declared, attributes)
    expires = _check_expiry(expires_at)
    if note is not None and len(note) > MAX_NOTE:
        raise _bad("InvalidParameterValue", f"note is longer than {MAX_NOTE} characters")
    if area is not None and area_code is not None:
        raise _bad("InvalidParameterValue", "give area or area_code, not both")
    shape = None
    if area_code is not None:
        shape = admin_area(session, area_code)
    elif area is not None:
        shape = polygon(area)
    grant = Grant(
        layer_id=layer.id,
        grantee=grantee,
        level=level,
        area_code=area_code,
        area=None if shape is None else from_shape(shape, srid=AREA_SRID),
        area_storage=None
        if shape is None
        else from_shape(transform(shape, "EPSG:4326", STORAGE_CRS), srid=STORAGE_SRID),
        attributes=kept,
        expires_at=expires,
        note=note,
        request_id=request_id,
        origin="grant",
        created_by=who.actor or who.department,
    )
    session.add(grant)
    session.flush()
    versions.bump(session, catalogue.version_key(layer.id))
    audit.record(
        session,
        who,
        "grant.create",
        layer.id,
        {
            "grant": grant.id,
            "grantee": grantee,
            "level": level,
            "area_code": area_code,
            "area": shape is not None,
            "attributes": kept,
            "expires_at": expires.isoformat() if expires else None,
            "request_id": request_id,
        },
    )
    return grant


def revoke_grant(
    session: Session, who: Principal, grant_id: int, layer_id: str | None = None
) -> None:
    """Revoke a grant (kept, marked revoked: audit entries name it). 404 for a grant the
    caller cannot see (or not of ``layer_id``, when given), 403 for one on a layer it does not
    manage, 409 if already revoked."""
    grant = session.scalars(select(Grant).where(Grant.id == grant_id).with_for_update()).first()
    if grant is None or (layer_id is not None and grant.layer_id != layer_id):
        raise ApiError(404, "NotFound", f"no grant {grant_id}", {"grant": grant_id})
    catalogue.writable_layer(session, who, grant.layer_id, lock=True)
    if grant.revoked_at is not None:
        raise ApiError(
            409, "Conflict", f"grant {grant_id} was revoked already", {"grant": grant_id}
        )
    grant.revoked_at = datetime.now(UTC)
    grant.revoked_by = who.actor or who.department
    versions.bump(session, catalogue.version_key(grant.layer_id))
    audit.record(
        session, who, "grant.revoke", grant.layer_id, {"grant": grant.id, "grantee": grant.grantee}
    )
    session.flush()


def grants_of_layer(session: Session, who: Principal, layer_id: str) -> list[Grant]:
    """Every grant of the layer (revoked ones too) for its department and the platform
    administrator; a grantee sees the grants that name it or every department."""
    layer = catalogue.readable_layer(session, who, layer_id)
    stmt = select(Grant).where(Grant.layer_id == layer.id).order_by(Grant.id)
    if not (who.is_admin or who.department == layer.owner):
        stmt = stmt.where(or_(Grant.grantee == who.department, Grant.grantee.is_(None)))
    return list(session.scalars(stmt))


def grants_received(session: Session, who: Principal) -> list[Grant]:
    """Grants naming the caller's department or every department (anonymous callers: none)."""
    if who.department is None:
        return []
    stmt = (
        select(Grant)
        .where(or_(Grant.grantee == who.department, Grant.grantee.is_(None)))
        .order_by(Grant.id)
    )
    owned = set(catalogue.owned_layer_ids(session, who.department))
    return [g for g in session.scalars(stmt) if g.layer_id not in owned]


def grants_given(session: Session, who: Principal) -> list[Grant]:
    """Grants on the layers the caller's department owns."""
    if who.department is None:
        return []
    owned = catalogue.owned_layer_ids(session, who.department)
    stmt = select(Grant).where(Grant.layer_id.in_(owned)).order_by(Grant.id)
    return list(session.scalars(stmt))

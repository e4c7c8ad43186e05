"""Access requests (issue 11, part 5): a department asks for another department's 有条件共享
layer, stating purpose, level, area, attributes and duration; the owner's administrator
approves it, possibly narrower than asked, or rejects it with a reason; the requester may
withdraw it while it is pending. An approval creates the grant (layers.grants) in the same
transaction, so there is never an approved request without its grant.

Who may do what: the requesting department's editors and admins ask and withdraw; only an admin
of the owning department (or the platform administrator) decides, and another department's
admin gets a 403. A layer the requester cannot see in the catalogue (another department's
不予共享 layer, or none) is a 404, as everywhere; asking for what the caller reads already (its
own layer, an unconditionally shared or open one at that level) is a 409 ``NotNeeded``.

Every submission, approval, rejection and withdrawal is on the audit trail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
from geoalchemy2.shape import from_shape, to_shape
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo import audit
from geo.auth import Principal
from geo.errors import ApiError
from layers import catalogue, grants, records_query
from layers.models import AccessRequest, Layer
from layers.schema import specs_of
from layers.scope import AREA_SRID, LEVEL_RANK, Grant

# A grant asked for has an end: at most three years, the usual term of a data-sharing
# agreement between departments; longer use is asked again.
MAX_DURATION_DAYS = 3 * 365
MAX_TEXT = 2_000
# Shapes compared in degrees: an approved area on the asked one's edge still counts as within.
AREA_TOLERANCE = 1e-7


def _bad(code: str, message: str, details: Any = None) -> ApiError:
    return ApiError(400, code, message, details)


def _not_found(request_id: int) -> ApiError:
    return ApiError(404, "NotFound", f"no access request {request_id}", {"request": request_id})


def _end(now: datetime, duration_days: int | None, expires_at: datetime | None) -> datetime | None:
    """The end of a period given as a duration or as an end date (at most one), or None when
    neither is given; 400 for both, a past end, or one beyond MAX_DURATION_DAYS."""
    if duration_days is not None and expires_at is not None:
        raise _bad("InvalidParameterValue", "give duration_days or expires_at, not both")
    if duration_days is not None:
        if duration_days < 1:
            raise _bad(
                "ExpiryInPast", "duration_days must be at least 1", {"duration_days": duration_days}
            )
        expires_at = now + timedelta(days=duration_days)
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= now:
        raise _bad(
            "ExpiryInPast",
            f"expires_at {expires_at.isoformat()} is not in the future",
            {"expires_at": expires_at.isoformat()},
        )
    if expires_at > now + timedelta(days=MAX_DURATION_DAYS):
        raise _bad(
            "DurationTooLong",
            f"access is granted for at most {MAX_DURATION_DAYS} days",
            {"max_days": MAX_DURATION_DAYS},
        )
    return expires_at


def _shape(session: Session, area_code: str | None, area: dict[str, Any] | None) -> Any:
    """The area as a shapely (multi)polygon in EPSG:4326, checked as a grant checks it; None
    for the whole layer."""
    if area is not None and area_code is not None:
        raise _bad("InvalidParameterValue", "give area or area_code, not both")
    if area_code is not None:
        return grants.admin_area(session, area_code)
    if area is not None:
        return grants.polygon(area)
    return None


def _asked_shape(session: Session, request: AccessRequest) -> Any:
    if request.area_code is not None:
        return grants.admin_area(session, request.area_code)
    return to_shape(request.area) if request.area is not None else None


# -- asking -------------------------------------------------------------------------------------


def submit(
    session: Session,
    who: Principal,
    *,
    collection: str,
    purpose: str,
    level: str,
    duration_days: int | None = None,
    expires_at: datetime | None = None,
    area_code: str | None = None,
    area: dict[str, Any] | None = None,
    attributes: list[str] | None = None,
) -> AccessRequest:
    """Record a request (checked whole before anything is written)."""
    if who.department is None or not who.has_role("editor"):
        raise ApiError(
            403, "Forbidden", "asking for access needs an editor or admin key of a department"
        )
    layer = session.scalar(select(Layer).where(Layer.id == collection, records_query.visible(who)))
    if layer is None:
        raise ApiError(404, "NotFound", f"no collection {collection!r}", {"collection": collection})
    grants.check_level(level)
    if catalogue.full_access(who, layer, level):
        raise ApiError(
            409,
            "NotNeeded",
            f"{who.department!r} reads {collection!r} at level {level!r} already "
            f"({'its own layer' if layer.owner == who.department else layer.sharing_type}); "
            "no request is needed",
            {"collection": collection, "sharing_type": layer.sharing_type},
        )
    now = datetime.now(UTC)
    if _end(now, duration_days, expires_at) is None:
        raise _bad(
            "DurationRequired",
            f"state how long access is needed: duration_days (1-{MAX_DURATION_DAYS}) or expires_at",
        )
    declared = [p.name for p in specs_of(layer.properties)]
    kept = grants.check_attributes(declared, attributes)
    shape = _shape(session, area_code, area)
    pending = session.scalar(
        select(AccessRequest.id).where(
            AccessRequest.layer_id == layer.id,
            AccessRequest.requester == who.department,
            AccessRequest.status == "pending",
        )
    )
    if pending is not None:
        raise _duplicate(pending)
    request = AccessRequest(
        layer_id=layer.id,
        requester=who.department,
        owner=layer.owner,
        requested_by=who.actor,
        purpose=purpose,
        level=level,
        area_code=area_code,
        area=None if area_code is not None or shape is None else from_shape(shape, srid=AREA_SRID),
        attributes=kept,
        duration_days=duration_days,
        expires_at=expires_at if duration_days is None else None,
    )
    savepoint = session.begin_nested()
    try:
        session.add(request)
        session.flush()
        savepoint.commit()
    except IntegrityError:
        # Another submission of the same department got in between (ux_access_requests_pending).
        savepoint.rollback()
        raise _duplicate(None) from None
    audit.record(
        session,
        who,
        "access_request.create",
        layer.id,
        {
            "request": request.id,
            "level": level,
            "area_code": area_code,
            "area": area is not None,
            "attributes": kept,
            "duration_days": duration_days,
            "expires_at": request.expires_at.isoformat() if request.expires_at else None,
        },
    )
    return request


def _duplicate(pending: int | None) -> ApiError:
    return ApiError(
        409,
        "DuplicateRequest",
        "this department has a pending request for the layer already; withdraw it or wait "
        "for its decision",
        {"pending_request": pending},
    )


# -- deciding -----------------------------------------------------------------------------------


def _for_decision(session: Session, who: Principal, request_id: int) -> AccessRequest:
    request = session.scalars(
        select(AccessRequest).where(AccessRequest.id == request_id).with_for_update()
    ).first()
    if request is None:
        raise _not_found(request_id)
    # Another department's admin learns no more than that the request is not its to decide.
    if not who.administers(request.owner):
        raise ApiError(
            403,
            "Forbidden",
            f"only an admin of {request.owner!r}, which owns the layer, decides this request",
            {"rule": "owner-admin", "owner": request.owner},
        )
    _still_pending(request)
    return request


def _still_pending(request: AccessRequest) -> None:
    if request.status != "pending":
        raise ApiError(
            409,
            "AlreadyDecided",
            f"access request {request.id} is {request.status} already",
            {"request": request.id, "status": request.status},
        )


def _narrower(
    session: Session, request: AccessRequest, now: datetime, changes: dict[str, Any]
) -> dict[str, Any]:
    """The grant's terms: each as asked unless ``changes`` narrows it; wider is a 400."""
    wider: list[str] = []
    level = changes.get("level") or request.level
    grants.check_level(level)
    if LEVEL_RANK[level] > LEVEL_RANK[request.level]:
        wider.append("level")
    attributes = request.attributes
    if changes.get("attributes") is not None:
        layer = session.get(Layer, request.layer_id)
        declared = [p.name for p in specs_of(layer.properties)] if layer else []
        attributes = grants.check_attributes(declared, changes["attributes"]) or []
        if request.attributes is not None and not set(attributes) <= set(request.attributes):
            wider.append("attributes")
    area_code, area = request.area_code, request.area
    area_json = None if area is None else dict(shapely.geometry.mapping(to_shape(area)))
    if changes.get("area_code") is not None or changes.get("area") is not None:
        approved = _shape(session, changes.get("area_code"), changes.get("area"))
        asked = _asked_shape(session, request)
        if asked is not None and not asked.buffer(AREA_TOLERANCE).covers(approved):
            wider.append("area")
        area_code, area_json = changes.get("area_code"), changes.get("area")
    asked_end = _end(now, request.duration_days, request.expires_at)
    end = _end(now, changes.get("duration_days"), changes.get("expires_at")) or asked_end
    if asked_end is not None and end is not None and end > asked_end:
        wider.append("expiry")
    if wider:
        raise _bad(
            "WiderThanAsked",
            f"an approval may only narrow the request; wider than asked: {', '.join(wider)}",
            {"wider": wider},
        )
    return {
        "level": level,
        "area_code": area_code,
        "area": area_json if area_code is None else None,
        "attributes": attributes,
        "expires_at": end,
    }


def approve(
    session: Session, who: Principal, request_id: int, changes: dict[str, Any]
) -> tuple[AccessRequest, Grant]:
    request = _for_decision(session, who, request_id)
    now = datetime.now(UTC)
    terms = _narrower(session, request, now, changes)
    note = changes.get("note")
    grant = grants.create_grant(
        session,
        who,
        request.layer_id,
        grantee=request.requester,
        note=note,
        request_id=request.id,
        **terms,
    )
    request.status, request.decided_at, request.decided_by = "approved", now, who.actor
    request.reason, request.grant_id = note, grant.id
    session.flush()
    narrowed = sorted(
        k for k in ("level", "area_code", "area", "attributes") if changes.get(k) is not None
    )
    if changes.get("duration_days") is not None or changes.get("expires_at") is not None:
        narrowed.append("expiry")
    audit.record(
        session,
        who,
        "access_request.approve",
        request.layer_id,
        {
            "request": request.id,
            "grant": grant.id,
            "requester": request.requester,
            "narrowed": narrowed,
        },
    )
    return request, grant


def reject(session: Session, who: Principal, request_id: int, reason: str) -> AccessRequest:
    request = _for_decision(session, who, request_id)
    request.status, request.decided_at = "rejected", datetime.now(UTC)
    request.decided_by, request.reason = who.actor, reason
    session.flush()
    audit.record(
        session,
        who,
        "access_request.reject",
        request.layer_id,
        {"request": request.id, "requester": request.requester, "reason": reason},
    )
    return request


def withdraw(session: Session, who: Principal, request_id: int) -> AccessRequest:
    request = session.scalars(
        select(AccessRequest).where(AccessRequest.id == request_id).with_for_update()
    ).first()
    if request is None or not _may_see(who, request):
        raise _not_found(request_id)
    if who.department != request.requester or not who.has_role("editor"):
        raise ApiError(
            403,
            "Forbidden",
            f"only the editors and admins of {request.requester!r}, which asked, withdraw it",
            {"rule": "requester", "requester": request.requester},
        )
    _still_pending(request)
    request.status, request.decided_at = "withdrawn", datetime.now(UTC)
    request.decided_by = who.actor
    session.flush()
    audit.record(session, who, "access_request.withdraw", request.layer_id, {"request": request.id})
    return request


# -- listing ------------------------------------------------------------------------------------


def _may_see(who: Principal, request: AccessRequest) -> bool:
    return who.is_admin or who.department in (request.requester, request.owner)


def get(session: Session, who: Principal, request_id: int) -> AccessRequest:
    request = session.get(AccessRequest, request_id)
    if request is None or not _may_see(who, request):
        raise _not_found(request_id)
    return request


def listing(
    session: Session,
    who: Principal,
    *,
    direction: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AccessRequest]:
    """Newest first: ``incoming`` (for the caller's layers), ``outgoing`` (its own), or both;
    the platform administrator sees every department's."""
    stmt = select(AccessRequest).order_by(AccessRequest.created_at.desc(), AccessRequest.id.desc())
    sides = {
        "incoming": AccessRequest.owner == who.department,
        "outgoing": AccessRequest.requester == who.department,
    }
    if direction is not None:
        stmt = stmt.where(sides[direction])
    elif not who.is_admin:
        stmt = stmt.where(or_(*sides.values()))
    if status is not None:
        stmt = stmt.where(AccessRequest.status == status)
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def as_dicts(session: Session, requests: list[AccessRequest]) -> list[dict[str, Any]]:
    """The requests with their grants (one query), as the API shows them."""
    ids = [r.grant_id for r in requests if r.grant_id is not None]
    found = (
        {g.id: g for g in session.scalars(select(Grant).where(Grant.id.in_(ids)))} if ids else {}
    )
    return [_as_dict(r, found.get(r.grant_id) if r.grant_id else None) for r in requests]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _as_dict(request: AccessRequest, grant: Grant | None) -> dict[str, Any]:
    area = None
    if request.area is not None:
        area = dict(shapely.geometry.mapping(to_shape(request.area)))
    return {
        "id": request.id,
        "collection": request.layer_id,
        "requester": request.requester,
        "owner": request.owner,
        "requested_by": request.requested_by,
        "purpose": request.purpose,
        "level": request.level,
        "area_code": request.area_code,
        "area": area,
        "attributes": list(request.attributes) if request.attributes is not None else None,
        "duration_days": request.duration_days,
        "expires_at": _iso(request.expires_at),
        "status": request.status,
        "created_at": _iso(request.created_at),
        "decided_at": _iso(request.decided_at),
        "decided_by": request.decided_by,
        "reason": request.reason,
        "grant": grant.as_dict() if grant is not None else None,
    }

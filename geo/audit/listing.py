"""Reading entries back: GET /audit, its CSV export, `geo audit list`; who may read which."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Depends, Query
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from geo.audit.models import AuditEvent
from geo.auth import Principal, require
from geo.errors import ApiError


@dataclass(frozen=True)
class Filters:
    """What GET /audit, GET /audit.csv and `geo audit` filter on; each served by an index on
    (filter, at), except `target` (a prefix: "hexi/" finds every key and account of hexi), which
    narrows what another filter or the time order reaches (ix_audit_log_at walked newest first
    for a page stops at the page's end)."""

    department: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    target: str | None = None


def select_events(filters: Filters, newest_first: bool = True) -> Select[tuple[AuditEvent]]:
    stmt = select(AuditEvent)
    if filters.department:
        stmt = stmt.where(AuditEvent.department_code == filters.department)
    if filters.action:
        stmt = stmt.where(AuditEvent.action == filters.action)
    if filters.since:
        stmt = stmt.where(AuditEvent.at >= filters.since)
    if filters.until:
        stmt = stmt.where(AuditEvent.at < filters.until)
    if filters.target:
        stmt = stmt.where(AuditEvent.target.startswith(filters.target, autoescape=True))
    if newest_first:
        return stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    return stmt.order_by(AuditEvent.at, AuditEvent.id)


def as_dict(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "department": e.department_code,
        "key": e.key_prefix,
        "account": e.account,
        "role": e.role,
        "action": e.action,
        "target": e.target,
        "client": str(e.client) if e.client else None,
        "details": e.details,
    }


def query(
    session: Session,
    department: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    target: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first."""
    stmt = select_events(Filters(department, action, since, until, target))
    return [as_dict(e) for e in session.scalars(stmt.limit(limit).offset(offset))]


def department_scope(
    department: str | None = Query(
        default=None,
        description="department code; a department admin reads only its own department's",
    ),
    who: Principal = Depends(require("admin")),
) -> str | None:
    """Dependency of GET /audit and GET /audit.csv: the department filter the caller may use.

    The platform administrator reads every department's entries (or one, when asked). A
    department admin reads its own department's entries only: without a filter it gets its
    own, and asking for another department is a 403 rather than an empty list, so a mistyped
    code is not mistaken for a quiet department."""
    if who.is_admin:
        return department
    if department is not None and department != who.department:
        raise ApiError(
            403,
            "Forbidden",
            f"a department admin reads only its own department's audit: this key belongs to "
            f"{who.department!r}, not {department!r}",
            {"rule": "own-department", "department": department},
        )
    return who.department


def layer_events(
    session: Session,
    layer_id: str,
    actions: Sequence[str],
    department: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Entries about a layer or its features (target ``layer_id`` or ``layer_id/<fid>``) with
    one of ``actions``, newest first; ``department``: only that department's.

    Served by ix_audit_log_layer_at (split_part(target, '/', 1), at, id) WHERE action <>
    'layer.read': walked backwards from the newest of this layer's entries, it stops at the
    page's end, whatever the log's size (test_layer_changes checks the plan)."""
    stmt = (
        select(AuditEvent)
        .where(
            func.split_part(AuditEvent.target, "/", 1) == layer_id,
            AuditEvent.action != "layer.read",
            AuditEvent.action.in_(actions),
        )
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    )
    if department is not None:
        stmt = stmt.where(AuditEvent.department_code == department)
    return [as_dict(e) for e in session.scalars(stmt.limit(limit).offset(offset))]

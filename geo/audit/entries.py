"""The audit trail: every write, and every read of non-public data, with who, when, what, where.

Entries are added to the caller's own transaction, so an action and its record commit or roll
back together: there is never a write without its entry, nor an entry for a write that failed.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from fastapi import Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.audit.models import AuditEvent
from geo.auth import Principal, require
from geo.errors import ApiError


def _ip_or_none(client: str | None) -> str | None:
    """Only real addresses go into the INET column (test clients call themselves 'testclient')."""
    try:
        return str(ipaddress.ip_address(client)) if client else None
    except ValueError:
        return None


def record(
    session: Session,
    who: Principal,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            department_code=who.department,
            key_prefix=who.key_prefix,
            role=who.role,
            action=action,
            target=target,
            client=_ip_or_none(who.client),
            details=details,
        )
    )


def department_scope(
    department: str | None = Query(
        default=None,
        description="department code; a department admin reads only its own department's",
    ),
    who: Principal = Depends(require("admin")),
) -> str | None:
    """Dependency of GET /audit: the department filter the caller may use.

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


def query(
    session: Session,
    department: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Newest first; each filter is optional and served by an index on (filter, at)."""
    stmt = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if department:
        stmt = stmt.where(AuditEvent.department_code == department)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    if until:
        stmt = stmt.where(AuditEvent.at < until)
    rows = session.scalars(stmt.limit(limit).offset(offset))
    return [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "department": e.department_code,
            "key": e.key_prefix,
            "role": e.role,
            "action": e.action,
            "target": e.target,
            "client": str(e.client) if e.client else None,
            "details": e.details,
        }
        for e in rows
    ]

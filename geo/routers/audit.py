"""The audit trail for platform administrators."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Depends, Query

from geo import audit
from geo.auth import Principal, require
from geo.db import DbSession
from geo.openapi import errors
from geo.routing import api_router

router = api_router(tags=["audit"])


@router.get("/audit", summary="Query the audit log (admins)", responses=errors(403))
def read_audit(
    session: DbSession,
    department: str | None = Depends(audit.department_scope),
    action: str | None = Query(default=None, description="e.g. key.create, layer.upload"),
    since: datetime | None = Query(default=None, description="ISO 8601, inclusive"),
    until: datetime | None = Query(default=None, description="ISO 8601, exclusive"),
    limit: int = Query(default=100, ge=1, le=10_000),
    offset: int = Query(default=0, ge=0),
    _: Principal = Depends(require("admin")),
) -> dict[str, Any]:
    events = audit.query(session, department, action, since, until, limit, offset)
    return {"events": events, "numberReturned": len(events)}

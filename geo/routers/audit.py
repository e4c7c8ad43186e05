"""The audit trail for administrators: GET /audit, its CSV export, and the chain's status.

The router brings the audit sealer with it (its lifespan, geo.audit.sealer): an app serving
the audit trail keeps it sealed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Depends, Query
from fastapi.responses import Response, StreamingResponse

from geo import audit
from geo.audit import chain, export
from geo.audit.listing import Filters
from geo.audit.sealer import sealing
from geo.auth import Principal, require, require_platform_admin
from geo.db import DbSession
from geo.openapi import CSV, errors, returns
from geo.routing import api_router

router = api_router(tags=["audit"], lifespan=sealing)

ACTION = Query(default=None, description="e.g. key.create, layer.upload, layer.read")
SINCE = Query(default=None, description="ISO 8601, inclusive")
UNTIL = Query(default=None, description="ISO 8601, exclusive")
TARGET = Query(
    default=None, max_length=500, description="what was acted on, as a prefix (e.g. hexi/)"
)


@router.get("/audit", summary="Query the audit log (admins)", responses=errors(403))
def read_audit(
    session: DbSession,
    department: str | None = Depends(audit.department_scope),
    action: str | None = ACTION,
    since: datetime | None = SINCE,
    until: datetime | None = UNTIL,
    target: str | None = TARGET,
    limit: int = Query(default=100, ge=1, le=10_000),
    offset: int = Query(default=0, ge=0),
    _: Principal = Depends(require("admin")),
) -> dict[str, Any]:
    events = audit.query(session, department, action, since, until, limit, offset, target)
    return {"events": events, "numberReturned": len(events)}


@router.get(
    "/audit.csv",
    summary="The audit log as CSV for auditors (admins)",
    description="UTF-8 with BOM, Chinese column names, oldest first, the same filters as "
    "/audit; a department admin gets its own department's entries only.",
    response_class=Response,
    responses=returns({CSV: None}, "the entries, one per row") | errors(403),
)
def export_audit(
    department: str | None = Depends(audit.department_scope),
    action: str | None = ACTION,
    since: datetime | None = SINCE,
    until: datetime | None = UNTIL,
    target: str | None = TARGET,
    limit: int = Query(default=100_000, ge=1, le=1_000_000),
) -> StreamingResponse:
    filters = Filters(department, action, since, until, target)
    return StreamingResponse(
        export.csv_chunks(filters, limit),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


@router.get(
    "/audit/verify",
    summary="Check the audit trail's hash chain (platform administrator)",
    description="Recomputes every sealed entry's hash; `broken` names the first entry that "
    "does not hold. `anchor` (SEQ:HASH, a head noted earlier) must still be in the chain.",
    responses=errors(403),
)
def verify_audit(
    session: DbSession,
    anchor: str | None = Query(
        default=None, pattern=r"^[0-9]{1,18}:[0-9a-f]{64}$", description="SEQ:HASH"
    ),
    _: Principal = Depends(require_platform_admin),
) -> dict[str, Any]:
    mark = None
    if anchor:
        seq, digest = anchor.split(":")
        mark = (int(seq), digest)
    return chain.verify(session, mark).as_dict()

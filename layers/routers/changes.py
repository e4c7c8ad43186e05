"""A layer's changes: ``GET /collections/{id}/changes`` (see layers.changes)."""

from __future__ import annotations

from fastapi import Depends, Query
from fastapi.responses import JSONResponse

from geo.auth import Principal, require
from geo.db import DbSession
from geo.openapi import errors
from geo.routing import api_router
from layers import changes

router = api_router(tags=["collections"])


@router.get(
    "/collections/{collection_id}/changes",
    summary="The layer's changes, newest first (its department: all; a grantee: its own)",
    description="Uploads (mode and counts), feature creations, edits and deletions (with the "
    "feature's id: its versions are at .../items/{fid}/history) and catalogue edits, from the "
    "audit trail. `more` tells whether another page follows.",
    responses=errors(404),
)
def layer_changes(
    collection_id: str,
    session: DbSession,
    limit: int = Query(default=50, ge=1, le=changes.MAX_LIMIT),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    who: Principal = Depends(require("viewer")),
) -> JSONResponse:
    return JSONResponse(changes.changes(session, who, collection_id, limit, offset))

"""Grant routes (分级授权): POST/GET /collections/{id}/grants, DELETE one, GET /grants."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from geo.auth import Principal, require
from geo.db import DbSession
from geo.http import json_body, model
from geo.openapi import errors, returns
from geo.routing import api_router
from layers import grants
from layers.scope import LEVELS

router = api_router(tags=["grants"])
editor = require("editor")
viewer = require("viewer")

Attribute = Annotated[str, Field(max_length=63)]


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantee: str | None = Field(
        default=None, max_length=64, description="a department code; null: every department"
    )
    level: Literal[LEVELS]  # type: ignore[valid-type]
    area_code: str | None = Field(default=None, max_length=12, description="an admin area code")
    area: dict[str, Any] | None = Field(
        default=None, description="a GeoJSON Polygon or MultiPolygon in EPSG:4326"
    )
    attributes: list[Attribute] | None = Field(
        default=None, max_length=grants.MAX_ATTRIBUTES, description="null: every attribute"
    )
    expires_at: datetime | None = None
    note: str | None = Field(default=None, max_length=grants.MAX_NOTE)
    request_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


_GRANT = {"type": "object", "required": ["id", "collection", "level"]}


@router.post(
    "/collections/{collection_id}/grants",
    status_code=201,
    summary="Grant a department (or every department) access to a layer",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": GrantIn.model_json_schema()}},
        }
    },
    responses=returns({"application/json": _GRANT}, "the grant", 201) | errors(403, 404, 405),
)
def create_grant_route(
    collection_id: str,
    session: DbSession,
    raw: Any = Depends(json_body),
    who: Principal = Depends(editor),
) -> JSONResponse:
    body = model(GrantIn, raw)
    grant = grants.create_grant(session, who, collection_id, **body.model_dump())
    return JSONResponse(grant.as_dict(), 201)


@router.get(
    "/collections/{collection_id}/grants",
    summary="The layer's grants (all for its department; the caller's own for a grantee)",
    responses=errors(404),
)
def list_layer_grants(
    collection_id: str, session: DbSession, who: Principal = Depends(viewer)
) -> JSONResponse:
    found = grants.grants_of_layer(session, who, collection_id)
    return JSONResponse({"collection": collection_id, "grants": [g.as_dict() for g in found]})


@router.delete(
    "/collections/{collection_id}/grants/{grant_id}",
    status_code=204,
    summary="Revoke a grant",
    response_class=Response,
    responses=errors(403, 404, 405, 409),
)
def revoke_grant_route(
    collection_id: str,
    grant_id: int,
    session: DbSession,
    who: Principal = Depends(editor),
) -> Response:
    grants.revoke_grant(session, who, grant_id, layer_id=collection_id)
    return Response(status_code=204)


@router.get(
    "/grants",
    summary="Grants the caller's department received and gave",
    responses=errors(),
)
def my_grants(session: DbSession, who: Principal = Depends(viewer)) -> JSONResponse:
    return JSONResponse(
        {
            "department": who.department,
            "received": [g.as_dict() for g in grants.grants_received(session, who)],
            "given": [g.as_dict() for g in grants.grants_given(session, who)],
        }
    )

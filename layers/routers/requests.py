"""Access request routes (issue 11, part 5): ask, list, approve (possibly narrower), reject,
withdraw. The rules are layers.requests'."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from geo.auth import Principal, require
from geo.db import DbSession
from geo.http import json_body, model
from geo.openapi import errors
from geo.routing import api_router
from layers import grants, requests
from layers.models import REQUEST_STATUSES
from layers.scope import LEVELS

router = api_router(tags=["access requests"])

Attribute = Annotated[str, Field(max_length=63)]
# Wide enough for every error to be the specific one (layers.requests._end), bounded so that a
# huge number cannot overflow a date.
Days = Annotated[int, Field(ge=-100_000, le=100_000)]


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: str = Field(max_length=50)
    purpose: str = Field(min_length=2, max_length=requests.MAX_TEXT, description="用途")
    level: Literal[LEVELS]  # type: ignore[valid-type]
    area_code: str | None = Field(default=None, max_length=12, description="an admin area code")
    area: dict[str, Any] | None = Field(
        default=None, description="a GeoJSON Polygon or MultiPolygon in EPSG:4326"
    )
    attributes: list[Attribute] | None = Field(
        default=None, max_length=grants.MAX_ATTRIBUTES, description="null: every attribute"
    )
    duration_days: Days | None = Field(
        default=None, description=f"1-{requests.MAX_DURATION_DAYS}, counted from the approval"
    )
    expires_at: datetime | None = Field(default=None, description="or an end date")


class ApprovalIn(BaseModel):
    """Each member narrows the request; omitted members stay as asked."""

    model_config = ConfigDict(extra="forbid")
    level: Literal[LEVELS] | None = None  # type: ignore[valid-type]
    area_code: str | None = Field(default=None, max_length=12)
    area: dict[str, Any] | None = None
    attributes: list[Attribute] | None = Field(default=None, max_length=grants.MAX_ATTRIBUTES)
    duration_days: Days | None = None
    expires_at: datetime | None = None
    note: str | None = Field(default=None, max_length=requests.MAX_TEXT)


class RejectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=2, max_length=requests.MAX_TEXT, description="驳回理由")


def _body(schema: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema.model_json_schema()}},
        }
    }


_REQUEST = {"type": "object", "required": ["id", "collection", "status"]}


def _one(description: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"description": description, "content": {"application/json": {"schema": _REQUEST}}}
    }


@router.post(
    "/access-requests",
    status_code=201,
    summary="Ask for access to another department's 有条件共享 layer",
    openapi_extra=_body(RequestIn),
    responses=_one("the request, pending", 201) | errors(403, 404, 409),
)
def ask(
    session: DbSession, raw: Any = Depends(json_body), who: Principal = Depends(require("editor"))
) -> JSONResponse:
    body = model(RequestIn, raw)
    request = requests.submit(session, who, **body.model_dump())
    return JSONResponse(requests.as_dicts(session, [request])[0], 201)


@router.get(
    "/access-requests",
    summary="Requests for the caller's layers (incoming) and by its department (outgoing)",
    responses={
        200: {
            "description": "the requests, newest first, each with its grant",
            "content": {
                "application/json": {"schema": {"type": "object", "required": ["requests"]}}
            },
        }
    },
)
def list_requests(
    session: DbSession,
    who: Principal = Depends(require("viewer")),
    direction: Literal["incoming", "outgoing"] | None = Query(default=None),
    status: Literal[REQUEST_STATUSES] | None = Query(default=None),  # type: ignore[valid-type]
    limit: int = Query(default=100, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> JSONResponse:
    found = requests.listing(
        session, who, direction=direction, status=status, limit=limit, offset=offset
    )
    return JSONResponse({"requests": requests.as_dicts(session, found)})


@router.get(
    "/access-requests/{request_id}",
    summary="One access request (its two departments and the platform admin)",
    responses=_one("the request") | errors(404),
)
def get_request(
    request_id: int, session: DbSession, who: Principal = Depends(require("viewer"))
) -> JSONResponse:
    return JSONResponse(requests.as_dicts(session, [requests.get(session, who, request_id)])[0])


@router.post(
    "/access-requests/{request_id}/approve",
    summary="Approve a request, as asked or narrower; creates the grant (owner's admin)",
    openapi_extra=_body(ApprovalIn),
    responses=_one("the request, approved, with its grant") | errors(403, 404, 409),
)
def approve(
    request_id: int,
    session: DbSession,
    raw: Any = Depends(json_body),
    who: Principal = Depends(require("admin")),
) -> JSONResponse:
    changes = model(ApprovalIn, raw).model_dump(exclude_none=True)
    request, _ = requests.approve(session, who, request_id, changes)
    return JSONResponse(requests.as_dicts(session, [request])[0])


@router.post(
    "/access-requests/{request_id}/reject",
    summary="Reject a request, with a reason (owner's admin)",
    openapi_extra=_body(RejectionIn),
    responses=_one("the request, rejected") | errors(403, 404, 409),
)
def reject(
    request_id: int,
    session: DbSession,
    raw: Any = Depends(json_body),
    who: Principal = Depends(require("admin")),
) -> JSONResponse:
    body = model(RejectionIn, raw)
    request = requests.reject(session, who, request_id, body.reason)
    return JSONResponse(requests.as_dicts(session, [request])[0])


@router.post(
    "/access-requests/{request_id}/withdraw",
    summary="Withdraw a pending request (the requesting department)",
    responses=_one("the request, withdrawn") | errors(403, 404, 409),
)
def withdraw(
    request_id: int, session: DbSession, who: Principal = Depends(require("editor"))
) -> JSONResponse:
    return JSONResponse(
        requests.as_dicts(session, [requests.withdraw(session, who, request_id)])[0]
    )

"""/addresses/proposals: propose, list, read, approve, reject; queue counts by district.

Thin: the rules are in review.proposals (submitting, reading) and review.decisions (deciding).
Proposing needs the editor role in any department; reading, the viewer role (the authority
reads every proposal, other departments their own); deciding, the editor role in the address
authority.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from addressbook.review import decisions, proposals
from addressbook.routers.addresses import AddressIn, AddressPatch, changes_of
from geo.auth import Principal, require
from geo.crs import resolve
from geo.db import DbSession
from geo.openapi import errors
from geo.routing import api_router

router = api_router(prefix="/addresses/proposals", tags=["address review"])
editor = require("editor")
viewer = require("viewer")

Note = Annotated[str | None, Field(default=None, max_length=500, description="for the reviewer")]
GridCode = Annotated[
    str | None,
    Field(default=None, min_length=1, max_length=32, description="a grid the point lies in"),
]
AddressId = Annotated[int, Field(ge=1)]
Crs = Annotated[str, Query(description="CRS of lon/lat in the proposal (default CRS84)")]


class NewAddress(BaseModel):
    """A new address, as POST /addresses takes it."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["create"]
    address: AddressIn
    grid: GridCode = None
    note: Note = None


class AddressChange(BaseModel):
    """A change of an address, as PATCH /addresses/{id} takes it (a new location, a corrected
    number or other fields)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["change"]
    address_id: AddressId
    changes: AddressPatch
    grid: GridCode = None
    note: Note = None


class Retirement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["retire"]
    address_id: AddressId
    successor_id: AddressId | None = None
    note: Note = None


ProposalIn = Annotated[NewAddress | AddressChange | Retirement, Field(discriminator="kind")]


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=decisions.MAX_REASON)


def _proposal(body: NewAddress | AddressChange | Retirement) -> proposals.Proposal:
    if isinstance(body, NewAddress):
        return proposals.Proposal("create", body.address.model_dump(), None, body.grid, body.note)
    if isinstance(body, AddressChange):
        changes = changes_of(body.changes)
        return proposals.Proposal("change", changes, body.address_id, body.grid, body.note)
    return proposals.Proposal(
        "retire", {"successor_id": body.successor_id}, body.address_id, None, body.note
    )


@router.post(
    "",
    status_code=201,
    summary="Propose a new address, a change or a retirement (checked at once)",
    responses=errors(403, 404, 409),
)
def propose(
    body: Annotated[ProposalIn, Body()],
    response: Response,
    session: DbSession,
    crs: Crs = "CRS84",
    who: Principal = Depends(editor),
) -> dict[str, Any]:
    proposal_id = proposals.submit(session, who, _proposal(body), resolve(crs).id)
    response.headers["Location"] = f"/addresses/proposals/{proposal_id}"
    return proposals.get(session, who, proposal_id)


@router.get("", summary="Proposals, oldest first, by status and district")
def list_proposals(
    session: DbSession,
    status: Literal["pending", "approved", "rejected"] | None = None,
    district: Annotated[
        str | None, Query(max_length=100, description="a district's name or code")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=proposals.MAX_LIMIT)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    who: Principal = Depends(viewer),
) -> dict[str, Any]:
    return proposals.listing(session, who, status, district, limit, offset)


@router.get("/queues", summary="Proposals by district and status, with counts")
def proposal_queues(session: DbSession, who: Principal = Depends(viewer)) -> dict[str, Any]:
    return proposals.queues(session, who)


@router.get("/{proposal_id:int}", summary="One proposal with its findings", responses=errors(404))
def get_proposal(
    proposal_id: int, session: DbSession, who: Principal = Depends(viewer)
) -> dict[str, Any]:
    return proposals.get(session, who, proposal_id)


@router.post(
    "/{proposal_id:int}/approve",
    summary="Approve a proposal: publish it (address authority; not one's own)",
    responses=errors(403, 404, 409),
)
def approve_proposal(
    proposal_id: int, session: DbSession, who: Principal = Depends(editor)
) -> dict[str, Any]:
    return decisions.approve(session, who, proposal_id)


@router.post(
    "/{proposal_id:int}/reject",
    summary="Reject a proposal with a reason (address authority; not one's own)",
    responses=errors(403, 404, 409),
)
def reject_proposal(
    proposal_id: int, body: RejectIn, session: DbSession, who: Principal = Depends(editor)
) -> dict[str, Any]:
    return decisions.reject(session, who, proposal_id, body.reason)

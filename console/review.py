"""地址审核 / Review: the queues by district, the proposals with their findings, approve and
reject.

The page reads through the API's own functions with the person's principal
(addressbook.review.proposals: the address authority reads every proposal, another department
its own) and decides through addressbook.review.decisions, whose rules (only the authority, not
one's own proposal, once, a reason to reject) answer here as they answer the API; the proposal's
card comes back re-rendered with the decision or the refusal in the reader's language.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from addressbook.review import decisions, proposals
from console import pages
from console.acting import PAGE_SIZE, acting, attempt, explain, fragment, refusal, status_of
from geo import departments
from geo.auth import Principal, require
from geo.db import session_scope
from geo.errors import ApiError

router = APIRouter(include_in_schema=False)
STATUSES = ("pending", "approved", "rejected")


def _shown(proposal: dict[str, Any]) -> dict[str, Any]:
    proposal["when"] = pages.city_time(proposal["created_at"])
    proposal["decided_when"] = pages.city_time(proposal["decided_at"])
    return proposal


def _reviews(who: Principal) -> bool:
    """Whether the page offers the decisions (the API refuses them to anyone else anyway)."""
    with session_scope() as session:
        return who.has_role("editor") and departments.is_address_authority(session, who.department)


def _asked(request: Request) -> tuple[str, str, int]:
    status = request.query_params.get("status", "pending")
    district = request.query_params.get("district", "").strip()
    offset = request.query_params.get("offset", "0")
    if status not in ("", *STATUSES):
        raise ApiError(400, "InvalidParameterValue", status, {"field": "status"})
    if len(district) > 100:
        raise ApiError(400, "InvalidParameterValue", district, {"field": "district"})
    if not offset.isdigit() or len(offset) > 7:
        raise ApiError(400, "InvalidParameterValue", offset, {"field": "offset"})
    return status, district, int(offset)


def _link(status: str, district: str, offset: int) -> str:
    kept = {"status": status, "district": district, "offset": offset or ""}
    return "/console/review?" + urlencode({k: v for k, v in kept.items() if v != ""})


@router.get("/console/review")
def review_page(request: Request) -> Response:
    who = pages.signed_in(request)
    if isinstance(who, Response):
        return pages.with_lang(request, who)
    status, district, offset, code, error = "pending", "", 0, 200, ""
    queues: dict[str, Any] = {"queues": [], "pending": 0}
    page: dict[str, Any] = {"proposals": [], "next_offset": None}
    try:
        reader = require("viewer")(who)
        status, district, offset = _asked(request)
        with session_scope() as session:
            queues = proposals.queues(session, reader)
            page = proposals.listing(
                session, reader, status or None, district or None, PAGE_SIZE, offset
            )
    except ApiError as exc:
        code, error = exc.status, explain(request, exc)
    return pages.render_for(
        request,
        who,
        "review.html",
        code,
        queues=queues,
        proposals=[_shown(p) for p in page["proposals"]],
        statuses=STATUSES,
        asked_status=status,
        district=district,
        error=error,
        reviewer=_reviews(who),
        prev_link=_link(status, district, max(offset - PAGE_SIZE, 0)) if offset else "",
        next_link=_link(status, district, page["next_offset"]) if page["next_offset"] else "",
    )


def _card(request: Request, who: Principal, proposal_id: int, result: Any, exc: Any) -> Response:
    """The proposal's card after a decision: decided, or as it stands with the refusal."""
    if exc is None:
        return fragment(request, "review_item.html", p=_shown(result), reviewer=True)
    try:
        with session_scope() as session:
            current = proposals.get(session, who, proposal_id)
    except ApiError as missing:
        return refusal(request, missing)
    return fragment(
        request,
        "review_item.html",
        status_of(exc),
        p=_shown(current),
        reviewer=True,
        card_error=explain(request, exc),
    )


@router.post("/console/review/{proposal_id:int}/approve")
def approve(request: Request, proposal_id: int) -> Response:
    who = acting(request)
    if isinstance(who, Response):
        return who
    result, exc = attempt(
        lambda session: decisions.approve(session, require("editor")(who), proposal_id)
    )
    return _card(request, who, proposal_id, result, exc)


@router.post("/console/review/{proposal_id:int}/reject")
def reject(request: Request, proposal_id: int, reason: Annotated[str, Form()] = "") -> Response:
    who = acting(request)
    if isinstance(who, Response):
        return who
    result, exc = attempt(
        lambda session: decisions.reject(session, require("editor")(who), proposal_id, reason)
    )
    return _card(request, who, proposal_id, result, exc)

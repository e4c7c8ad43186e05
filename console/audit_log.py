"""审计日志 / Audit log: the entries with filters, paged, the chain's status and the CSV link.

The filters are GET /audit's (geo.audit.query, scoped by geo.audit.department_scope: a
department admin reads its own department's entries only, and naming another is refused); the
chain's status is GET /audit/verify's (geo.audit.chain.verify, the platform administrator
only), loaded after the page so a long chain does not hold the table back.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from console import pages
from console.acting import PAGE_SIZE, as_platform_admin, explain, fragment, refusal
from geo import audit
from geo.audit import chain
from geo.auth import Principal, require
from geo.db import session_scope
from geo.errors import ApiError

router = APIRouter(include_in_schema=False)
# The text filters' bounds: the audit columns' own lengths.
LIMITS = {"action": 64, "department": 64, "target": 500}
FILTERS = ("action", "department", "target", "since", "until")


def _moment(text: str, field: str) -> datetime | None:
    """A time picked in the page (datetime-local: the city's time) or typed with an offset."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "InvalidParameterValue", text, {"field": field}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=pages.CITY_TIME)


def _offset(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit() or len(text) > 9:
        raise ApiError(400, "InvalidParameterValue", text, {"field": "offset"})
    return int(text)


def _asked(request: Request) -> dict[str, str]:
    asked = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    for name, limit in LIMITS.items():
        if len(asked[name]) > limit:
            raise ApiError(400, "InvalidParameterValue", name, {"field": "too_long_" + name})
    return asked


def _entries(who: Principal, asked: dict[str, str], offset: int) -> dict[str, Any]:
    """One page of entries (newest first) and whether there is a next one; the department
    filter is the one GET /audit would let this person use."""
    department = audit.department_scope(asked["department"] or None, require("admin")(who))
    since = _moment(asked["since"], "since")
    until = _moment(asked["until"], "until")
    if since and until and since >= until:
        raise ApiError(400, "InvalidParameterValue", "since >= until", {"field": "range"})
    with session_scope() as session:
        found = audit.query(
            session,
            department,
            asked["action"] or None,
            since,
            until,
            PAGE_SIZE + 1,
            offset,
            asked["target"] or None,
        )
    for entry in found:
        entry["when"] = pages.city_time(entry["at"])
        entry["details_text"] = (
            json.dumps(entry["details"], ensure_ascii=False) if entry["details"] else ""
        )
    csv_query = {"department": department or "", "action": asked["action"]}
    csv_query |= {"target": asked["target"]}
    csv_query |= {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v}
    return {
        "entries": found[:PAGE_SIZE],
        "more": len(found) > PAGE_SIZE,
        "csv": "/audit.csv?" + urlencode({k: v for k, v in csv_query.items() if v}),
    }


def _page_link(asked: dict[str, str], offset: int) -> str:
    kept = {k: v for k, v in asked.items() if v}
    return "/console/audit?" + urlencode({**kept, "offset": offset})


@router.get("/console/audit")
def audit_page(request: Request) -> Response:
    who = pages.signed_in(request)
    if isinstance(who, Response):
        return pages.with_lang(request, who)
    try:
        require("admin")(who)
    except ApiError as exc:
        return pages.render_for(
            request, who, "forbidden.html", exc.status, reason=explain(request, exc), missing=False
        )
    asked = {name: "" for name in FILTERS}
    offset, status, error = 0, 200, ""
    shown: dict[str, Any] = {"entries": [], "more": False, "csv": ""}
    try:
        asked = _asked(request)
        offset = _offset(request.query_params.get("offset", ""))
        shown = _entries(who, asked, offset)
    except ApiError as exc:
        status, error = exc.status, explain(request, exc)
    return pages.render_for(
        request,
        who,
        "audit.html",
        status,
        asked=asked,
        error=error,
        offset=offset,
        first=offset + 1,
        last=offset + len(shown["entries"]),
        prev_link=_page_link(asked, max(offset - PAGE_SIZE, 0)) if offset else "",
        next_link=_page_link(asked, offset + PAGE_SIZE) if shown["more"] else "",
        **shown,
    )


@router.get("/console/audit/chain")
def chain_status(request: Request) -> Response:
    """The hash chain's check, as GET /audit/verify makes it (the platform administrator)."""
    who = pages.signed_in(request)
    if isinstance(who, Response):
        return who
    try:
        as_platform_admin(who)
    except ApiError as exc:
        return refusal(request, exc)
    with session_scope() as session:
        report = chain.verify(session).as_dict()
    report["when"] = pages.city_time(report["checkedAt"])
    return fragment(request, "audit_chain.html", report=report)

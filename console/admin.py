"""管理 / Administration: departments, accounts and keys.

The platform administrator sees every department and manages any; a department admin sees and
manages its own department only (/console/admin/{code} for another is refused as the API
refuses /departments/{code}/...). Every action calls the API route's own function, so its
checks, audit entry and answer are the API's; the section it changed comes back re-rendered,
with a new password or key shown this once.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from console import pages
from console.acting import (
    acting,
    as_admin_of,
    as_platform_admin,
    attempt,
    explain,
    fragment,
    refusal,
    status_of,
)
from geo.auth import Principal
from geo.db import session_scope
from geo.errors import ApiError
from geo.routers import accounts as accounts_api
from geo.routers import department_settings
from geo.routers import departments as departments_api

router = APIRouter(include_in_schema=False)
ROLES = ("viewer", "editor", "admin")
Field = Annotated[str, Form()]


def _read(request: Request, who: Principal, code: str) -> dict[str, Any]:
    """What the page shows of department `code` (its admin checked first)."""
    with session_scope() as session:
        department = departments_api.get_department(code, session, as_admin_of(request, who))
        return {
            "department": department,
            "departments": departments_api.list_departments(session, as_platform_admin(who))[
                "departments"
            ]
            if who.is_admin
            else [],
            "accounts": accounts_api.list_accounts(code, session, who)["accounts"],
            "keys": departments_api.list_keys(code, session, who)["keys"],
        }


@router.get("/console/admin")
def admin_home(request: Request) -> Response:
    who = pages.signed_in(request)
    if isinstance(who, Response):
        return pages.with_lang(request, who)
    return pages.with_lang(
        request, RedirectResponse(f"/console/admin/{who.department}", status_code=303)
    )


@router.get("/console/admin/{code}")
def admin_page(request: Request, code: str) -> Response:
    who = pages.signed_in(request)
    if isinstance(who, Response):
        return pages.with_lang(request, who)
    try:
        shown = _read(request, who, code)
    except ApiError as exc:
        return pages.render_for(
            request,
            who,
            "forbidden.html",
            exc.status,
            reason=explain(request, exc),
            missing=exc.status == 404,
        )
    return pages.render_for(request, who, "admin.html", code=code, roles=ROLES, **shown)


def _section(
    request: Request,
    who: Principal,
    code: str,
    template: str,
    problem: ApiError | ValidationError | None = None,
    **context: Any,
) -> Response:
    """Section `template` of department `code`'s page read after the change, with the change's
    mistake (and the form as typed) when there was one."""
    shown = _read(request, who, code)
    status = status_of(problem) if problem else 200
    error = explain(request, problem) if problem else ""
    return fragment(
        request, template, status, who=who, code=code, roles=ROLES, error=error, **shown, **context
    )


def _guard(request: Request, platform: bool = False) -> Principal | Response:
    """The acting person, if they administer the path's department (or, with `platform`, the
    whole platform); else what to answer. The check is the API route's own, so the console
    refuses exactly what the API refuses."""
    who = acting(request)
    if isinstance(who, Response):
        return who
    try:
        return as_platform_admin(who) if platform else as_admin_of(request, who)
    except ApiError as exc:
        return refusal(request, exc)


# ---------------- departments (the platform administrator) ----------------


@router.post("/console/admin/{code}/departments")
def create_department(
    request: Request, code: str, name: Field = "", new_code: Field = ""
) -> Response:
    who = _guard(request, platform=True)
    if isinstance(who, Response):
        return who
    admin = who

    def act(session: Session) -> dict[str, Any]:
        body = departments_api.DepartmentIn(name=name, code=new_code.strip() or None)
        return departments_api.create_department(body, session, admin)

    created, problem = attempt(act)
    form = {"name": name, "code": new_code} if problem else {}
    return _section(
        request, who, code, "admin_departments.html", problem, form=form, created=created
    )


@router.post("/console/admin/{code}/authority")
def set_authority(request: Request, code: str, address_authority: Field = "") -> Response:
    who = _guard(request, platform=True)
    if isinstance(who, Response):
        return who
    admin = who

    def act(session: Session) -> dict[str, Any]:
        body = department_settings.DepartmentPatch.model_validate(
            {"address_authority": address_authority}
        )
        return department_settings.patch_department(code, body, admin, session)

    saved, problem = attempt(act)
    return _section(request, who, code, "admin_department.html", problem, saved=saved)


# ---------------- accounts ----------------


@router.post("/console/admin/{code}/accounts")
def create_account(
    request: Request,
    code: str,
    username: Field = "",
    role: Field = "",
    display_name: Field = "",
) -> Response:
    who = _guard(request)
    if isinstance(who, Response):
        return who
    admin = who

    def act(session: Session) -> dict[str, Any]:
        body = accounts_api.AccountIn.model_validate(
            {
                "username": username.strip(),
                "role": role,
                "display_name": display_name.strip() or None,
            }
        )
        return accounts_api.create_account(code, body, session, admin)

    created, problem = attempt(act)
    form = {"username": username, "role": role, "display_name": display_name} if problem else {}
    return _section(request, who, code, "admin_accounts.html", problem, form=form, once=created)


@router.post("/console/admin/{code}/accounts/{username}/reset")
def reset_account(request: Request, code: str, username: str) -> Response:
    who = _guard(request)
    if isinstance(who, Response):
        return who
    admin = who
    done, problem = attempt(lambda s: accounts_api.reset_account(code, username, s, admin))
    return _section(request, who, code, "admin_accounts.html", problem, form={}, once=done)


@router.post("/console/admin/{code}/accounts/{username}/disable")
def disable_account(request: Request, code: str, username: str) -> Response:
    who = _guard(request)
    if isinstance(who, Response):
        return who
    admin = who
    _, problem = attempt(lambda s: accounts_api.disable_account(code, username, s, admin))
    return _section(request, who, code, "admin_accounts.html", problem, form={}, once=None)


# ---------------- keys ----------------


def _expiry(day: str) -> datetime | str | None:
    """A key's expiry is picked as a day: the end of that day in the city's time; what was
    typed when it is no date (the key's model then names the field)."""
    if not day.strip():
        return None
    try:
        return datetime.combine(date.fromisoformat(day.strip()), time.max, pages.CITY_TIME)
    except ValueError:
        return day


@router.post("/console/admin/{code}/keys")
def create_key(
    request: Request,
    code: str,
    role: Field = "",
    label: Field = "",
    expires_on: Field = "",
    read_only: Field = "",
) -> Response:
    who = _guard(request)
    if isinstance(who, Response):
        return who
    admin = who

    def act(session: Session) -> dict[str, Any]:
        body = departments_api.KeyIn.model_validate(
            {
                "role": role,
                "label": label.strip() or None,
                "expires_at": _expiry(expires_on),
                "read_only": read_only == "on",
            }
        )
        return departments_api.create_key(code, body, session, admin)

    created, problem = attempt(act)
    form = {"role": role, "label": label, "expires_on": expires_on} if problem else {}
    return _section(request, who, code, "admin_keys.html", problem, form=form, once=created)


@router.post("/console/admin/{code}/keys/{key_id}/revoke")
def revoke_key(request: Request, code: str, key_id: int) -> Response:
    who = _guard(request)
    if isinstance(who, Response):
        return who
    admin = who
    _, problem = attempt(lambda s: departments_api.revoke_key(code, key_id, s, admin))
    return _section(request, who, code, "admin_keys.html", problem, form={}, once=None)

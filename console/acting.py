"""What the administration and audit pages share: the person acting, authenticated exactly as an
API call is, the role checks of the API's own routes, and mistakes put into words.

These pages submit htmx forms to console routes that call the API routes' plain functions
(geo.routers.departments, .accounts, .department_settings, geo.audit) with the same role checks
(geo.auth.department_admin, require_platform_admin, geo.audit.department_scope), and answer
with the page's section re-rendered: the one-time password or key, the refreshed table, or the
error in the reader's language. The session cookie and the CSRF header from <body hx-headers>
are checked by geo.auth.principal, as for every write signed in by cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from console import i18n, pages
from geo.auth import Principal, department_admin, principal, require, require_platform_admin
from geo.db import session_scope
from geo.errors import ApiError

# The one page size of the tables these pages page through.
PAGE_SIZE = 50


def acting(request: Request) -> Principal | Response:
    """The signed-in person behind a form, or where htmx must take the browser instead: sign-in
    when the session ended (with `next=` back to the page), the password page when an
    administrator set the password."""
    page = request.headers.get("HX-Current-URL", "").split("//", 1)[-1].partition("/")[2]
    back = quote("/" + page, safe="/")
    sign_in = f"{pages.LOGIN}?expired=1&next={back}" if page else pages.LOGIN
    try:
        who = principal(request)
    except ApiError as exc:
        if exc.code == "PasswordChangeRequired":
            return _redirect(pages.PASSWORD)
        if exc.status == 401:
            return _redirect(sign_in)
        return refusal(request, exc)  # a missing or stale CSRF token: nothing done
    if who.account is None:
        return _redirect(sign_in)
    return who


def refusal(request: Request, exc: ApiError) -> Response:
    """What stands in for a section the person may not see or change: the reason alone."""
    return HTMLResponse(
        f'<p class="error" role="alert">{escape(explain(request, exc))}</p>', exc.status
    )


def _redirect(target: str) -> Response:
    return Response(status_code=204, headers={"HX-Redirect": target})


def as_admin_of(request: Request, who: Principal) -> Principal:
    """The check of the /departments/{code}/... routes: an admin of the path's {code}, or the
    platform administrator (geo.auth.department_admin reads the same path parameter)."""
    return department_admin(request, require("admin")(who))


def as_platform_admin(who: Principal) -> Principal:
    return require_platform_admin(require("admin")(who))


def words(request: Request) -> dict[str, str]:
    return i18n.MESSAGES[i18n.language(request)]


def fragment(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """A section of a page, in the reader's language, for htmx to swap in."""
    html = pages.templates.get_template(template).render(
        t=words(request), lang=i18n.language(request), **context
    )
    return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})


def explain(request: Request, exc: ApiError | ValidationError) -> str:
    """A person's mistake or a refusal in their language, naming the field when there is one."""
    t = words(request)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        label = t.get("field_" + field, field)
        kind = first["type"]
        if kind in ("missing", "string_too_short"):
            return t["err_required"].format(field=label)
        if kind == "string_too_long":
            return t["err_too_long"].format(field=label)
        return t["err_invalid"].format(field=label)
    details = exc.details or {}
    named = details.get("field")
    if exc.code == "InvalidParameterValue" and named:
        return t.get(f"err_field_{named}", t["err_invalid"].format(field=named))
    if exc.code == "InvalidParameterValue" and details.get("rule") == "platform-is-authority":
        return t["err_platform_authority"]
    if exc.code == "InvalidParameterValue" and exc.message.startswith("department code"):
        return t["err_field_code"]
    if exc.code == "InvalidParameterValue" and exc.message.startswith("department name"):
        return t["err_required"].format(field=t["field_name"])
    if exc.code == "Forbidden" and details.get("rule") == "own-department":
        return t["err_own_department"]
    if exc.code in ("Forbidden", "ReadOnlyKey"):
        return t["err_Forbidden"]
    if exc.code.startswith("CsrfToken"):
        return t["err_csrf"]
    known = t.get("err_" + exc.code)
    return known or t["err_other"].format(message=exc.message)


def status_of(exc: ApiError | ValidationError) -> int:
    return 422 if isinstance(exc, ValidationError) else exc.status


def attempt(action: Callable[[Session], Any]) -> tuple[Any, ApiError | ValidationError | None]:
    """Run `action` in its own transaction: its result once committed (the answer is rendered
    after the commit), or the mistake, with nothing of it written."""
    try:
        with session_scope() as session:
            return action(session), None
    except (ApiError, ValidationError) as exc:
        return None, exc

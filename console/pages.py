"""The console's pages: Jinja2 templates rendered on the server, data from the JSON API.

A page handler only decides who may see the page shell (a signed-in person; one whose password
an administrator set goes to the password page first) and renders the words in the chosen
language. Everything a page shows or changes comes from the browser calling the service's own
API with the person's cookie (console/static/console.js), so roles and grants apply exactly as
they do for any client: the console has no privileged path to the data.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from console import i18n
from geo import crs as geo_crs
from geo.accounts import csrf, sessions
from geo.auth import Principal, principal
from geo.errors import ApiError
from layers import export

HERE = Path(__file__).resolve().parent
# Outside /console/ so the pages' catch-all 404 never shadows it.
ASSETS_PATH = "/console-assets"
LOGIN = "/console/login"
PASSWORD = "/console/password"
# The forms' CRS choices: every CRS the service supports (GET /crs), the city's usual ones first
# (GCJ02/BD09 are what phone maps and many department spreadsheets carry; EPSG:4548 is CGCS2000's
# 3-degree zone through Tianjin, 117°E). Read from the registry so a form never offers a CRS the
# API refuses.
_USUAL_CRS = ("EPSG:4326", "EPSG:4490", "GCJ02", "BD09", "EPSG:4548", "EPSG:3857")
CRS_CHOICES = tuple(
    sorted(
        (info["id"] for info in geo_crs.list_crs()),
        key=lambda id_: _USUAL_CRS.index(id_) if id_ in _USUAL_CRS else len(_USUAL_CRS),
    )
)
# What GET /collections/{id}/export writes (in any of CRS_CHOICES).
DOWNLOAD_FORMATS = tuple(export.FORMATS)

# Times are shown as Tianjin's clock reads them, whatever the server's zone.
CITY_TIME = ZoneInfo("Asia/Shanghai")

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)


def city_time(iso: str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """An instant from the API's ISO 8601 as the city's wall clock ("" for none)."""
    return datetime.fromisoformat(iso).astimezone(CITY_TIME).strftime(fmt) if iso else ""


templates.filters["city_time"] = city_time


def with_lang(request: Request, response: Response) -> Response:
    """Remember a language picked by `?lang=` for the next pages."""
    asked = request.query_params.get("lang")
    if asked in i18n.MESSAGES:
        response.set_cookie(i18n.COOKIE, asked, max_age=365 * 86400, samesite="lax")
    return response


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    lang = i18n.language(request)
    messages = i18n.MESSAGES[lang]
    html = templates.get_template(template).render(
        t=messages,
        lang=lang,
        other_lang="en" if lang == i18n.DEFAULT else i18n.DEFAULT,
        messages_json=json.dumps(messages, ensure_ascii=False).replace("</", "<\\/"),
        path=request.url.path,
        assets=ASSETS_PATH,
        **context,
    )
    # The page carries the session's CSRF token: never kept by a cache.
    response = HTMLResponse(html, status, headers={"Cache-Control": "no-store"})
    return with_lang(request, response)


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def go(target: str, request: Request) -> RedirectResponse:
    return RedirectResponse(f"{target}?next={quote(_here(request), safe='')}", status_code=303)


def signed_in(request: Request) -> Principal | RedirectResponse:
    """The person behind the cookie, or where they must go first: sign-in when there is no
    session (or it ended), the password page when an administrator set the password."""
    if not request.cookies.get(sessions.COOKIE):
        return go(LOGIN, request)
    try:
        who = principal(request)
    except ApiError as exc:
        if exc.code == "PasswordChangeRequired":
            return go(PASSWORD, request)
        redirect = go(LOGIN, request)
        redirect.delete_cookie(sessions.COOKIE, path="/")
        return redirect
    if who.account is None:
        return go(LOGIN, request)
    return who


def render_for(
    request: Request, who: Principal, template: str, status: int = 200, **context: Any
) -> Response:
    """A page for the signed-in `who`, carrying their session's CSRF token for its forms."""
    token = request.cookies[sessions.COOKIE]
    return render(request, template, status, who=who, csrf=csrf.token_for(token), **context)


def _page(request: Request, template: str, **context: Any) -> Response:
    who = signed_in(request)
    if isinstance(who, Response):
        return with_lang(request, who)
    return render_for(request, who, template, **context)


def _next(request: Request) -> str:
    """Where to go after signing in: only a console page of this site, never elsewhere."""
    target = request.query_params.get("next", "")
    return target if target.startswith("/console/") and "//" not in target else "/console/layers"


@router.get("/console")
def home(request: Request) -> Response:
    return with_lang(request, RedirectResponse("/console/layers", status_code=303))


@router.get(LOGIN)
def login_page(request: Request) -> Response:
    expired = request.query_params.get("expired") == "1"
    return render(request, "login.html", who=None, csrf="", next=_next(request), expired=expired)


@router.get(PASSWORD)
def password_page(request: Request) -> Response:
    if not request.cookies.get(sessions.COOKIE):
        return go(LOGIN, request)
    token = request.cookies[sessions.COOKIE]
    return render(
        request, "password.html", who=None, csrf=csrf.token_for(token), next=_next(request)
    )


@router.get("/console/layers")
def layers_page(request: Request) -> Response:
    return _page(request, "layers.html", crs_choices=CRS_CHOICES)


@router.get("/console/layers/{layer_id}")
def layer_page(request: Request, layer_id: str) -> Response:
    return _page(
        request,
        "layer.html",
        layer_id=layer_id,
        crs_choices=CRS_CHOICES,
        formats=DOWNLOAD_FORMATS,
        download_crs=CRS_CHOICES,
    )


@router.get("/console/catalogue")
def catalogue_page(request: Request) -> Response:
    return _page(request, "catalogue.html")


@router.get("/console/{rest:path}")
def not_found(request: Request, rest: str) -> Response:
    return render(request, "not_found.html", status=404, who=None, csrf="")


def mount_assets(app: FastAPI) -> None:
    app.mount(ASSETS_PATH, StaticFiles(directory=HERE / "static"), name="console-assets")

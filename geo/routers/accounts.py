"""Staff accounts over HTTP: signing in and out, one's own password, and the department
administrators' account management (`/departments/{code}/accounts`, the platform administrator
for any department, a department admin for its own). Logic lives in geo.accounts.service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from geo.accounts import csrf, service, sessions
from geo.auth import Principal, department_admin, principal_pending_change
from geo.db import DbSession
from geo.errors import ApiError
from geo.openapi import errors
from geo.routing import api_router
from geo.settings import get_settings

router = api_router(tags=["accounts"])
Username = Annotated[str, Path(min_length=1, max_length=64)]


class SignInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    role: Literal["admin", "editor", "viewer"]
    display_name: str | None = Field(default=None, min_length=1, max_length=200)


def _signed_in(request: Request, who: Principal) -> str:
    """The session cookie of a caller signed in by it (a key caller has none)."""
    token = request.cookies.get(sessions.COOKIE)
    if who.account is None or not token:
        raise ApiError(
            401,
            "NotSignedIn",
            "this needs a signed-in account (POST /auth/login), not an API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


def _session_info(token: str) -> dict[str, Any]:
    settings = get_settings()
    return {
        "csrf_token": csrf.token_for(token),
        "csrf_header": csrf.HEADER,
        "idle_minutes": settings.session_idle_minutes,
        "lifetime_hours": settings.session_lifetime_hours,
    }


@router.post(
    "/auth/login",
    summary="Sign in with a username and password (sets the session cookie)",
    responses=errors(401),
)
def sign_in(
    body: SignInIn, request: Request, response: Response, session: DbSession
) -> dict[str, Any]:
    client = request.client.host if request.client else None
    signed = service.sign_in(session, body.username, body.password, client)
    sessions.set_cookie(response, request, signed.token)
    return {**service.account_dict(signed.account), **_session_info(signed.token)}


@router.post("/auth/logout", summary="Sign out (ends the session, clears the cookie)")
def sign_out(
    request: Request,
    response: Response,
    session: DbSession,
    who: Principal = Depends(principal_pending_change),
) -> dict[str, Any]:
    service.sign_out(session, who, _signed_in(request, who))
    sessions.clear_cookie(response, request)
    return {"signed_out": who.account}


@router.post(
    "/auth/password",
    summary="Change one's own password (required after an administrator set it)",
)
def change_password(
    body: PasswordIn,
    request: Request,
    session: DbSession,
    who: Principal = Depends(principal_pending_change),
) -> dict[str, Any]:
    token = _signed_in(request, who)
    account = service.change_password(session, who, body.current_password, body.new_password, token)
    return service.account_dict(account)


@router.get("/auth/me", summary="Who is calling: the signed-in account (with its CSRF token)")
def me(
    request: Request, session: DbSession, who: Principal = Depends(principal_pending_change)
) -> dict[str, Any]:
    if who.anonymous:
        raise ApiError(
            401,
            "Unauthorized",
            "neither an API key nor a session cookie came with the request",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if who.account is None:
        return {
            "department": who.department,
            "role": who.role,
            "key_prefix": who.key_prefix,
            "read_only": who.read_only,
            "account": None,
        }
    token = _signed_in(request, who)
    account = service.find_account(session, who.account)
    return {
        **service.account_dict(account),
        "account": who.account,
        "key_prefix": None,
        "read_only": False,
        **_session_info(token),
    }


@router.post(
    "/departments/{code}/accounts",
    status_code=201,
    summary="Create a staff account (its one-time password is shown once)",
    responses=errors(404, 409),
)
def create_account(
    code: str, body: AccountIn, session: DbSession, who: Principal = Depends(department_admin)
) -> dict[str, Any]:
    account, temporary = service.create_account(
        session, who, code, body.username, body.role, body.display_name
    )
    return {**service.account_dict(account), "temporary_password": temporary}


@router.get(
    "/departments/{code}/accounts", summary="List a department's accounts", responses=errors(404)
)
def list_accounts(
    code: str, session: DbSession, _: Principal = Depends(department_admin)
) -> dict[str, Any]:
    return {"accounts": service.list_accounts(session, code)}


@router.post(
    "/departments/{code}/accounts/{username}/reset",
    summary="Reset an account's password (a one-time password, shown once; unlocks it)",
    responses=errors(404),
)
def reset_account(
    code: str,
    username: Username,
    session: DbSession,
    who: Principal = Depends(department_admin),
) -> dict[str, Any]:
    account, temporary = service.reset_password(session, who, code, username)
    return {**service.account_dict(account), "temporary_password": temporary}


@router.post(
    "/departments/{code}/accounts/{username}/disable",
    summary="Disable an account (its sessions end at once)",
    responses=errors(404),
)
def disable_account(
    code: str,
    username: Username,
    session: DbSession,
    who: Principal = Depends(department_admin),
) -> dict[str, Any]:
    return service.account_dict(service.disable_account(session, who, code, username))

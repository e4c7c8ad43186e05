"""Web sessions: the cookie a signed-in person's browser carries, and its two time limits.

The cookie holds a random token (256 bits); the table keeps only its SHA-256, like API keys:
the token is as strong as a key, so a slow hash would only slow every request. A session ends
at sign-out, after `GEO_SESSION_IDLE_MINUTES` without a request, `GEO_SESSION_LIFETIME_HOURS`
after sign-in whatever happens, and when its account is disabled or its password reset.

The cookie is HttpOnly (scripts cannot read it), SameSite=Strict (other sites' pages do not
send it) and Secure when the request came over HTTPS. Behind a TLS-terminating proxy, uvicorn
(`geo serve` runs it with proxy headers on) takes the scheme from `X-Forwarded-Proto` only when
the proxy's address is in `FORWARDED_ALLOW_IPS` (127.0.0.1 by default), so a client cannot
claim HTTPS itself.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from geo.accounts.models import Account, AccountSession
from geo.models import Department
from geo.settings import get_settings

COOKIE = "geo_session"
# last_seen_at is written at most this often: the idle limit needs minutes, not every request.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SignedIn:
    """The account behind a valid session cookie, read fresh on every request (a changed role
    or a disabled account counts at once)."""

    username: str
    department: str
    role: str
    must_change_password: bool
    account_id: int
    session_id: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _limits() -> tuple[timedelta, timedelta]:
    settings = get_settings()
    return (
        timedelta(minutes=settings.session_idle_minutes),
        timedelta(hours=settings.session_lifetime_hours),
    )


def start(session: Session, account: Account) -> str:
    """A new session for `account`; returns the cookie's token (never stored). The account's
    sessions that have run out are cleared on the way."""
    idle, lifetime = _limits()
    now = datetime.now(UTC)
    session.execute(
        delete(AccountSession).where(
            AccountSession.account_id == account.id,
            or_(AccountSession.expires_at <= now, AccountSession.last_seen_at <= now - idle),
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(
        AccountSession(
            account_id=account.id,
            token_hash=hash_token(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return token


def resolve(session: Session, token: str) -> SignedIn | str:
    """The signed-in account, or why the cookie no longer signs anyone in ("unknown",
    "expired", "idle"); a session that ran out is deleted."""
    row = session.execute(
        select(AccountSession, Account, Department.code)
        .join(Account, AccountSession.account_id == Account.id)
        .join(Department, Account.department_id == Department.id)
        .where(AccountSession.token_hash == hash_token(token), Account.disabled_at.is_(None))
    ).first()
    if row is None:
        return "unknown"
    record, account, department = row
    idle, _ = _limits()
    now = datetime.now(UTC)
    if record.expires_at <= now or record.last_seen_at <= now - idle:
        session.delete(record)
        return "expired" if record.expires_at <= now else "idle"
    if now - record.last_seen_at >= TOUCH_EVERY:
        record.last_seen_at = now
    return SignedIn(
        account.username,
        department,
        account.role,
        account.must_change_password,
        account.id,
        record.id,
    )


def end(session: Session, token: str) -> None:
    session.execute(delete(AccountSession).where(AccountSession.token_hash == hash_token(token)))


def end_all(session: Session, account_id: int, keep: int | None = None) -> None:
    """End every session of an account (disabled, reset, or its password changed), but `keep`."""
    stmt = delete(AccountSession).where(AccountSession.account_id == account_id)
    if keep is not None:
        stmt = stmt.where(AccountSession.id != keep)
    session.execute(stmt)


def set_cookie(response: Response, request: Request, token: str) -> None:
    _, lifetime = _limits()
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie_header(request: Request) -> str:
    """A Set-Cookie value that removes the session cookie, for error answers (built from
    headers, not a response object)."""
    secure = "; Secure" if request.url.scheme == "https" else ""
    return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{secure}"

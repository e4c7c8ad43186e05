"""Who is calling: API keys and staff sessions to principals, and the role checks routes
depend on.

Programs present keys, as `Authorization: Bearer KEY` or as `?key=` for map clients that cannot
set headers; people sign in (geo.accounts) and their browser carries a session cookie. A key
wins when both come. Neither means anonymous (public data only); a wrong, revoked or expired
key, or a cookie whose session is over, is a 401, never a silent downgrade to anonymous, so a
misconfigured client notices at once. Writes signed in by cookie need the session's CSRF token
(geo.accounts.csrf); an account whose password an administrator set may do nothing but change
it (403 `PasswordChangeRequired`).

A key may expire (`expires_at`) and may be read-only: on a write method (POST, PUT, PATCH,
DELETE) a read-only key acts as a viewer whatever its role, so every role check a write makes
refuses it, while reads (POST queries such as overlays included) keep working.

Roles are per department, for keys and accounts alike. Only an `admin` of the platform
department is the platform administrator (creates departments, issues keys and accounts
anywhere, reads every audit entry and layer); an `admin` of any other department administers
that department alone (its keys, accounts, audit entries and layers). Before this distinction
every department's admin key acted platform-wide.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from geo.accounts import csrf, sessions
from geo.db import session_scope
from geo.errors import ApiError
from geo.models import ApiKey, Department

ROLE_RANK = {"viewer": 1, "editor": 2, "admin": 3}
# Characters of a key kept to recognise it in listings and the audit trail: "tjg_" and four
# random characters (24 bits). Nothing longer is stored anywhere; a longer stored prefix would
# hand part of the secret to whoever reads the tables, backups or audit exports.
KEY_PREFIX_LEN = 8
# The platform administrators' department (re-exported as geo.departments.PLATFORM).
PLATFORM = "platform"


def key_scope(department: str | None, role: str | None) -> str:
    """What a caller of `department` with `role` reaches: "platform" (every department) for an
    admin of the platform department, "department" (its own) for everyone else."""
    return "platform" if role == "admin" and department == PLATFORM else "department"


@dataclass(frozen=True)
class Principal:
    """The caller. `key_prefix` names a key caller, `account` a person signed in by cookie
    (whose `key_prefix` is None); `read_only` marks a read-only key."""

    department: str | None
    role: str | None
    key_prefix: str | None
    client: str | None = None
    account: str | None = None
    read_only: bool = False

    @property
    def anonymous(self) -> bool:
        return self.role is None

    @property
    def actor(self) -> str | None:
        """Who acted, as rows that record it say (created_by, decided_by, history): the signed-in
        person's account name, else the key's prefix; None when anonymous."""
        return self.account or self.key_prefix

    @property
    def is_admin(self) -> bool:
        """The platform administrator: an admin key of the platform department. Only it acts
        across departments; a department's own admin key is `administers(its code)`."""
        return key_scope(self.department, self.role) == "platform"

    def administers(self, department: str | None) -> bool:
        """May act as the administrator of `department`: the platform administrator for every
        department, a department admin key for its own department only."""
        if self.is_admin:
            return True
        return self.role == "admin" and department is not None and department == self.department

    def has_role(self, role: str) -> bool:
        return self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[role]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Digests of the keys this process has found valid. geo.ratelimit gives a presented key its own
# (higher) limit only once it is in here: made-up keys cannot buy fresh limits, and the limiter
# needs no database to tell. A revoked key stays until restart; it still gets its 401 each time.
verified_key_hashes: set[str] = set()


def key_prefix(key: str) -> str:
    """What is stored of a key besides its hash (see KEY_PREFIX_LEN)."""
    return key[:KEY_PREFIX_LEN]


def new_key() -> str:
    return "tjg_" + secrets.token_urlsafe(32)


def issue_key(
    session: Session,
    department: Department,
    role: str,
    label: str | None = None,
    expires_at: datetime | None = None,
    read_only: bool = False,
) -> tuple[ApiKey, str]:
    """Create a key; the plaintext returned is never stored and never shown again."""
    if role not in ROLE_RANK:
        raise ApiError(
            400, "InvalidRole", f"role must be one of {', '.join(ROLE_RANK)}, not {role!r}"
        )
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"expires_at must be in the future, not {expires_at.isoformat()}",
            {"field": "expires_at"},
        )
    key = new_key()
    record = ApiKey(
        department=department,
        role=role,
        prefix=key_prefix(key),
        key_hash=hash_key(key),
        label=label,
        expires_at=expires_at,
        read_only=read_only,
        scope=key_scope(department.code, role),
    )
    session.add(record)
    session.flush()
    return record, key


def install_bootstrap_key(
    session: Session, department: Department, key: str
) -> tuple[ApiKey | None, list[ApiKey]]:
    """Register the operator's GEO_ADMIN_KEY as the bootstrap admin key and revoke every other
    bootstrap key: changing the setting retires the previous key. Idempotent across restarts
    and workers. Returns the key when this call installed it, and the keys it revoked (both to
    audit)."""
    digest = hash_key(key)
    # ON CONFLICT: workers starting together install the same key once.
    inserted = session.scalar(
        insert(ApiKey)
        .values(
            department_id=department.id,
            role="admin",
            prefix=key_prefix(key),
            key_hash=digest,
            label="GEO_ADMIN_KEY",
            scope=key_scope(department.code, "admin"),
            bootstrap=True,
        )
        .on_conflict_do_nothing(index_elements=[ApiKey.key_hash])
        .returning(ApiKey.id)
    )
    current = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == digest).with_for_update()
    ).one()
    if current.revoked_at is not None:
        return None, []  # revoked on purpose: the setting installs nothing, retires nothing
    current.role, current.bootstrap = "admin", True
    current.scope = key_scope(department.code, "admin")
    older = list(
        session.scalars(
            select(ApiKey)
            .where(
                ApiKey.bootstrap.is_(True),
                ApiKey.revoked_at.is_(None),
                ApiKey.id != current.id,
            )
            .with_for_update()
        )
    )
    now = datetime.now(UTC)
    for previous in older:
        previous.revoked_at = now
    return (current if inserted is not None else None), older


def lookup(session: Session, key: str) -> tuple[ApiKey, Department] | None:
    """The key and its department, unless unknown or revoked (an expired key is returned: the
    caller says it expired)."""
    row = session.execute(
        select(ApiKey, Department)
        .join(Department, ApiKey.department_id == Department.id)
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    ).first()
    return (row[0], row[1]) if row else None


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "Unauthorized",
                "Authorization header must be 'Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return value.strip()
    return request.query_params.get("key") or None


def _key_principal(request: Request, key: str, client: str | None) -> Principal:
    with session_scope() as session:
        found = lookup(session, key)
    if found is None:
        raise ApiError(
            401,
            "InvalidKey",
            "the API key is unknown or has been revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    api_key, department = found
    if api_key.expires_at is not None and api_key.expires_at <= datetime.now(UTC):
        raise ApiError(
            401,
            "KeyExpired",
            f"the API key expired at {api_key.expires_at.isoformat()}",
            {"expired_at": api_key.expires_at.isoformat()},
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    verified_key_hashes.add(api_key.key_hash)
    role = api_key.role
    if api_key.read_only and request.method not in csrf.SAFE_METHODS:
        role = "viewer"
    return Principal(department.code, role, api_key.prefix, client, read_only=api_key.read_only)


_SESSION_OVER = {
    "unknown": ("SessionInvalid", "the session cookie is unknown or was signed out"),
    "expired": ("SessionExpired", "the session reached its lifetime; sign in again"),
    "idle": ("SessionExpired", "the session was idle too long; sign in again"),
}


def _cookie_principal(
    request: Request, token: str, client: str | None, pending_allowed: bool
) -> Principal:
    with session_scope() as session:
        found = sessions.resolve(session, token)  # a session that ran out is deleted here
    if isinstance(found, str):
        code, message = _SESSION_OVER[found]
        raise ApiError(
            401, code, message, headers={"Set-Cookie": sessions.clear_cookie_header(request)}
        )
    csrf.check(request, token)
    if found.must_change_password and not pending_allowed:
        raise ApiError(
            403,
            "PasswordChangeRequired",
            "this account's password was set by an administrator: change it first "
            "(POST /auth/password)",
            {"account": found.username},
        )
    return Principal(found.department, found.role, None, client, account=found.username)


def _authenticate(request: Request, pending_allowed: bool) -> Principal:
    client = request.client.host if request.client else None
    key = _presented_key(request)
    token = request.cookies.get(sessions.COOKIE) if key is None else None
    if key is None and not token:
        return Principal(None, None, None, client)
    if key is not None:
        who = _key_principal(request, key, client)
    else:
        who = _cookie_principal(request, str(token), client, pending_allowed)
    request.state.principal = who  # the request's log line (geo.logs) names it
    return who


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, anonymous when it presented neither key nor cookie."""
    return _authenticate(request, pending_allowed=False)


def principal_pending_change(request: Request) -> Principal:
    """The caller, including a person who must still change their password: for the few
    /auth routes such a person may use (change it, sign out, see who they are)."""
    return _authenticate(request, pending_allowed=True)


def require(role: str) -> Callable[[Principal], Principal]:
    """Dependency factory: the caller must hold `role` or a higher one."""

    def dependency(who: Principal = Depends(principal)) -> Principal:
        if who.anonymous:
            raise ApiError(
                401,
                "Unauthorized",
                f"this needs an API key or a signed-in account with the {role} role",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not who.has_role(role):
            if who.read_only:
                raise ApiError(
                    403,
                    "ReadOnlyKey",
                    "this key is read-only: it cannot write, whatever its role",
                    {"rule": "read-only"},
                )
            raise ApiError(
                403,
                "Forbidden",
                f"this needs the {role} role; the caller has the {who.role} role",
            )
        return who

    return dependency


def require_platform_admin(who: Principal = Depends(require("admin"))) -> Principal:
    """Dependency: the platform administrator (an admin key of the platform department).

    Platform-wide actions (creating departments, listing them all) need it; a department's own
    admin key is refused with a 403 that says so."""
    if not who.is_admin:
        raise ApiError(
            403,
            "Forbidden",
            f"this needs the platform administrator (an admin of department {PLATFORM!r}); "
            f"the caller is an admin of department {who.department!r}",
            {"rule": "platform-admin"},
        )
    return who


def department_admin(request: Request, who: Principal = Depends(require("admin"))) -> Principal:
    """Dependency for /departments routes: an admin of the department named by the path's
    `{code}` (the platform administrator for any), or the platform administrator on routes
    without one (creating or listing departments).

    It reads the path parameter from the request instead of declaring `code`, because on routes
    without `{code}` a declared `code` would become an accepted query parameter."""
    code = request.path_params.get("code")
    if code is None:
        return require_platform_admin(who)
    if not who.administers(code):
        raise ApiError(
            403,
            "Forbidden",
            f"a department admin acts only within its own department: the caller belongs to "
            f"{who.department!r}, not {code!r}",
            {"rule": "own-department", "department": code},
        )
    return who

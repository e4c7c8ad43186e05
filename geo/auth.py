"""Who is calling: API keys to principals, and the role checks routes depend on.

Keys arrive as `Authorization: Bearer KEY`, or as `?key=` for map clients that cannot set
headers. No key means anonymous (public data only); a wrong or revoked key is a 401, never a
silent downgrade to anonymous, so a misconfigured client notices at once.

Roles are per department. Only an `admin` key of the platform department is the platform
administrator (creates departments, issues keys anywhere, reads every audit entry and layer); an
`admin` key of any other department administers that department alone. Before this distinction
every department admin acted platform-wide.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

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


@dataclass(frozen=True)
class Principal:
    department: str | None
    role: str | None
    key_prefix: str | None
    client: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.role is None

    @property
    def is_admin(self) -> bool:
        """The platform administrator: an admin key of the platform department. Only it acts
        across departments; a department's own admin key is `administers(its code)`."""
        return self.role == "admin" and self.department == PLATFORM

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
    session: Session, department: Department, role: str, label: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key; the plaintext returned is never stored and never shown again."""
    if role not in ROLE_RANK:
        raise ApiError(
            400, "InvalidRole", f"role must be one of {', '.join(ROLE_RANK)}, not {role!r}"
        )
    key = new_key()
    record = ApiKey(
        department=department,
        role=role,
        prefix=key_prefix(key),
        key_hash=hash_key(key),
        label=label,
    )
    session.add(record)
    session.flush()
    return record, key


def install_key(session: Session, department: Department, key: str, role: str) -> None:
    """Register a key chosen by the operator (GEO_ADMIN_KEY); idempotent across restarts."""
    digest = hash_key(key)
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if existing is None:
        session.add(
            ApiKey(department=department, role=role, prefix=key_prefix(key), key_hash=digest)
        )
    elif existing.revoked_at is None and existing.role != role:
        existing.role = role


def lookup(session: Session, key: str) -> tuple[ApiKey, Department] | None:
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


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, anonymous when no key was presented."""
    client = request.client.host if request.client else None
    key = _presented_key(request)
    if key is None:
        return Principal(None, None, None, client)
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
    verified_key_hashes.add(api_key.key_hash)
    who = Principal(department.code, api_key.role, api_key.prefix, client)
    request.state.principal = who  # the request's log line (geo.logs) names it
    return who


def require(role: str) -> Callable[[Principal], Principal]:
    """Dependency factory: the caller must hold `role` or a higher one."""

    def dependency(who: Principal = Depends(principal)) -> Principal:
        if who.anonymous:
            raise ApiError(
                401,
                "Unauthorized",
                f"this needs an API key with the {role} role",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not who.has_role(role):
            raise ApiError(
                403,
                "Forbidden",
                f"this needs the {role} role; the key presented is a {who.role} key",
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
            f"this needs a platform admin key (an admin key of department {PLATFORM!r}); "
            f"the key presented is an admin key of department {who.department!r}",
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
            f"a department admin acts only within its own department: this key belongs to "
            f"{who.department!r}, not {code!r}",
            {"rule": "own-department", "department": code},
        )
    return who

"""Departments and their keys: the plain functions behind the CLI and the admin endpoints."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pypinyin import lazy_pinyin
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

# PLATFORM is defined in geo.auth, which decides who the platform administrator is.
from geo.auth import PLATFORM as PLATFORM
from geo.auth import issue_key
from geo.errors import ApiError
from geo.models import ApiKey, Department

CODE_RE = re.compile(r"[a-z][a-z0-9_-]{1,63}")  # fullmatch: "$" also matches before "\n"


def code_for(name: str) -> str:
    """A code from a Chinese name (公安局 -> gonganju) for operators who give only a name."""
    slug = re.sub(r"[^a-z0-9]+", "-", "".join(lazy_pinyin(name)).lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = "d-" + slug
    return slug[:64]


def create_department(
    session: Session, name: str, code: str | None = None, address_authority: bool = False
) -> Department:
    name = name.strip()
    if not name:
        raise ApiError(400, "InvalidParameterValue", "department name must not be empty")
    code = code or code_for(name)
    if not CODE_RE.fullmatch(code):
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"department code {code!r} must be 2-64 lowercase letters, digits, '-' or '_', "
            "starting with a letter",
        )
    department = Department(name=name, code=code, address_authority=address_authority)
    session.add(department)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, "Conflict", f"a department with code {code!r} exists already") from None
    return department


def get_department(session: Session, code: str) -> Department:
    department = session.scalar(select(Department).where(Department.code == code))
    if department is None:
        raise ApiError(404, "NotFound", f"no department with code {code!r}")
    return department


def ensure_platform(session: Session) -> Department:
    """The platform administrators' own department, home of the bootstrap admin key.

    Every worker makes sure of it as it starts (geo.bootstrap.install_admin_key). On a new
    database the workers of `geo serve --workers 2` do so together: ON CONFLICT makes the second
    wait for the first's row and take it. A look-then-insert let both insert, the second's
    startup failed on the unique code, and uvicorn then stopped the whole server."""
    session.execute(
        insert(Department)
        .values(code=PLATFORM, name="平台管理")
        .on_conflict_do_nothing(index_elements=[Department.code])
    )
    return session.scalars(select(Department).where(Department.code == PLATFORM)).one()


def department_dict(department: Department) -> dict[str, Any]:
    return {
        "code": department.code,
        "name": department.name,
        "address_authority": is_authority(department),
        "created_at": _iso(department.created_at),
    }


def is_authority(department: Department) -> bool:
    """The platform department always counts as the address authority: its administrators
    maintain the library when no department has been named."""
    return department.code == PLATFORM or bool(department.address_authority)


def is_address_authority(session: Session, code: str | None) -> bool:
    """Whether department `code` may write the standard address library."""
    if code is None:
        return False
    if code == PLATFORM:
        return True
    flag = session.scalar(select(Department.address_authority).where(Department.code == code))
    return bool(flag)


def set_address_authority(session: Session, code: str, on: bool) -> Department:
    """Name (or stop naming) a department as the address authority; the platform administrator
    decides this (CLI or PATCH /departments/{code}). The platform department always is one."""
    department = get_department(session, code)
    if code == PLATFORM and not on:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"department {PLATFORM!r} is always the address authority",
            {"rule": "platform-is-authority"},
        )
    department.address_authority = on
    session.flush()
    return department


def list_departments(session: Session) -> list[dict[str, Any]]:
    return [
        department_dict(d) for d in session.scalars(select(Department).order_by(Department.code))
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def key_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "prefix": key.prefix,
        "role": key.role,
        "label": key.label,
        "scope": key.scope,
        "read_only": key.read_only,
        "bootstrap": key.bootstrap,
        "created_at": _iso(key.created_at),
        "expires_at": _iso(key.expires_at),
        "expired": key.expires_at is not None and key.expires_at <= datetime.now(UTC),
        "revoked_at": _iso(key.revoked_at),
    }


def create_key(
    session: Session,
    code: str,
    role: str,
    label: str | None = None,
    expires_at: datetime | None = None,
    read_only: bool = False,
) -> tuple[ApiKey, str]:
    return issue_key(session, get_department(session, code), role, label, expires_at, read_only)


def list_keys(session: Session, code: str) -> list[dict[str, Any]]:
    department = get_department(session, code)
    keys = session.scalars(
        select(ApiKey).where(ApiKey.department_id == department.id).order_by(ApiKey.id)
    )
    return [key_dict(k) for k in keys]


def revoke_key(session: Session, code: str, key_id: int) -> ApiKey:
    department = get_department(session, code)
    key = session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.department_id == department.id)
    )
    if key is None:
        raise ApiError(404, "NotFound", f"department {code!r} has no key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
    return key

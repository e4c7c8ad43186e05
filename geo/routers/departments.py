"""Admin endpoints for departments and their keys; every change is audited."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from geo import audit, departments
from geo.auth import Principal, department_admin
from geo.db import DbSession
from geo.openapi import errors
from geo.routing import api_router

router = api_router(prefix="/departments", tags=["departments"], responses=errors(403))
admin = department_admin  # platform admin, or an admin of the path's own {code}


class DepartmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    code: str | None = Field(default=None, max_length=64)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["admin", "editor", "viewer"]
    label: str | None = Field(default=None, max_length=200)
    expires_at: AwareDatetime | None = Field(
        default=None, description="when the key stops working (RFC 3339 with an offset)"
    )
    read_only: bool = Field(default=False, description="never writes, whatever its role")


@router.post("", status_code=201, summary="Create a department", responses=errors(409))
def create_department(
    body: DepartmentIn, session: DbSession, who: Principal = Depends(admin)
) -> dict[str, Any]:
    department = departments.create_department(session, body.name, body.code)
    audit.record(session, who, "department.create", department.code, {"name": department.name})
    session.flush()
    return departments.department_dict(department)


@router.get("", summary="List departments")
def list_departments(session: DbSession, _: Principal = Depends(admin)) -> dict[str, Any]:
    return {"departments": departments.list_departments(session)}


@router.get("/{code}", summary="One department", responses=errors(404))
def get_department(code: str, session: DbSession, _: Principal = Depends(admin)) -> dict[str, Any]:
    return departments.department_dict(departments.get_department(session, code))


@router.post(
    "/{code}/keys", status_code=201, summary="Issue a key (shown once)", responses=errors(404)
)
def create_key(
    code: str, body: KeyIn, session: DbSession, who: Principal = Depends(admin)
) -> dict[str, Any]:
    key, plaintext = departments.create_key(
        session, code, body.role, body.label, body.expires_at, body.read_only
    )
    audit.record(
        session,
        who,
        "key.create",
        f"{code}/{key.prefix}",
        {
            "role": key.role,
            "read_only": key.read_only,
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        },
    )
    return {**departments.key_dict(key), "department": code, "key": plaintext}


@router.get(
    "/{code}/keys",
    summary="List a department's keys (never their secrets)",
    responses=errors(404),
)
def list_keys(code: str, session: DbSession, _: Principal = Depends(admin)) -> dict[str, Any]:
    return {"keys": departments.list_keys(session, code)}


@router.delete("/{code}/keys/{key_id}", summary="Revoke a key", responses=errors(404))
def revoke_key(
    code: str, key_id: int, session: DbSession, who: Principal = Depends(admin)
) -> dict[str, Any]:
    key = departments.revoke_key(session, code, key_id)
    audit.record(session, who, "key.revoke", f"{code}/{key.prefix}")
    return departments.key_dict(key)

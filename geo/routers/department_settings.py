"""PATCH /departments/{code}: what the platform administrator decides about a department.

Today that is one thing, whether the department is the address authority (may write the
standard address library). A department admin may not grant it to itself, so only the platform
administrator's key passes. The change is audited in the same transaction.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.orm import Session

from geo import audit, departments
from geo.auth import Principal, require_platform_admin
from geo.db import get_session
from geo.http import json_body
from geo.openapi import errors
from geo.routing import api_router

router = api_router(prefix="/departments", tags=["departments"])


class DepartmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address_authority: bool


async def department_patch(request: Request) -> DepartmentPatch:
    """Dependency: the JSON body, read and checked before the (sync) handler runs."""
    value = await json_body(request)
    try:
        return DepartmentPatch.model_validate(value)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from exc


@router.patch(
    "/{code}",
    summary="Change a department's settings (platform admin): address_authority",
    responses=errors(403, 404),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DepartmentPatch.model_json_schema()}},
        }
    },
)
def patch_department(
    code: str,
    body: DepartmentPatch = Depends(department_patch),
    who: Principal = Depends(require_platform_admin),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    department = departments.set_address_authority(session, code, body.address_authority)
    audit.record(
        session, who, "department.update", code, {"address_authority": body.address_authority}
    )
    return departments.department_dict(department)

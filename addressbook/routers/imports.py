"""POST /addresses/import: the bulk address import over HTTP (editor or admin keys; audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, UploadFile
from sqlalchemy.orm import Session

from addressbook.importer import import_addresses
from geo.auth import Principal, require
from geo.db import get_session
from geo.errors import ApiError
from geo.routing import api_router
from geo.settings import get_settings

router = api_router(prefix="/addresses", tags=["address import"])


@router.post("/import", summary="Import addresses from a CSV or GeoJSON file (one transaction)")
def import_file(
    request: Request,
    file: UploadFile,
    crs: Annotated[str, Query(description="CRS of lon/lat in the file (default CRS84)")] = "CRS84",
    skip_invalid: Annotated[
        bool, Query(description="import the good rows and report the bad ones")
    ] = False,
    who: Principal = Depends(require("editor")),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    limit = get_settings().max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise ApiError(413, "PayloadTooLarge", f"the upload is larger than {limit} bytes")
    report = import_addresses(
        session, file.file, file.filename or "upload", who, crs=crs, skip_invalid=skip_invalid
    )
    return report.as_dict()

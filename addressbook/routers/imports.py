"""POST /addresses/import: the bulk address import over HTTP (editor or admin keys; audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, UploadFile

from addressbook.ingest.importer import import_addresses
from geo.auth import Principal, require
from geo.db import DbSession
from geo.metrics import record_upload
from geo.openapi import errors
from geo.routing import api_router

router = api_router(prefix="/addresses", tags=["address import"])


@router.post(
    "/import",
    summary="Import addresses from a CSV or GeoJSON file (one transaction)",
    responses=errors(403),
)
def import_file(
    file: UploadFile,
    session: DbSession,
    crs: Annotated[str, Query(description="CRS of lon/lat in the file (default CRS84)")] = "CRS84",
    skip_invalid: Annotated[
        bool, Query(description="import the good rows and report the bad ones")
    ] = False,
    who: Principal = Depends(require("editor")),
) -> dict[str, Any]:
    report = import_addresses(
        session, file.file, file.filename or "upload", who, crs=crs, skip_invalid=skip_invalid
    )
    record_upload("addresses", file.size or 0, report.created + report.updated)
    return report.as_dict()

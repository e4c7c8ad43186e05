"""/addresses/quality: a department's address list checked against the library (issue 15 part 3).

Thin: reading the file is quality.table, the classes quality.classes, the work quality.report
(run as a job, quality.jobs), the downloads quality.downloads, the proposals quality.propose.
Uploading and reading a report needs the viewer role (as the batch geocode); proposing its rows,
the editor role (as any proposal). A report is its department's only: any other caller gets a
404, as if there were none.
"""

from __future__ import annotations

import os
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, File, Path, Query, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from addressbook.quality import downloads, jobs, propose, report
from addressbook.quality.table import open_table
from geo.auth import Principal, require
from geo.crs import resolve
from geo.db import DbSession
from geo.errors import ApiError
from geo.openapi import CSV, errors, returns
from geo.routing import api_router
from geo.settings import get_settings
from layers.ingest.limits import spool

router = api_router(prefix="/addresses/quality", tags=["address quality"])
editor = require("editor")
viewer = require("viewer")

ReportId = Annotated[str, Path(min_length=32, max_length=32, description="the report's id")]
Column = Annotated[str | None, Query(max_length=100)]


def _state(meta: dict[str, Any]) -> dict[str, Any]:
    base = f"/addresses/quality/{meta['id']}"
    done = meta["status"] == "done"
    return {
        "id": meta["id"],
        "status": meta["status"],
        "file": meta["file"],
        "column": meta["column"],
        "rows": meta["rows"],
        "done": meta["done"],
        "counts": meta.get("counts"),
        "error": meta["error"],
        "expires": meta["expires"],
        "links": {
            "self": base,
            "summary": f"{base}/summary" if done else None,
            "csv": f"{base}/rows?f=csv" if done else None,
            "xlsx": f"{base}/rows?f=xlsx" if done else None,
        },
    }


@router.post(
    "",
    status_code=202,
    summary="Upload a department's address list (CSV or XLSX) for a quality report",
    responses=errors(413, 429),
)
def create_report(
    response: Response,
    file: Annotated[UploadFile, File(description="CSV (UTF-8, GB18030...) or XLSX")],
    column: Annotated[str | None, Query(max_length=100, description="the address column")] = None,
    lon_column: Annotated[
        str | None, Query(max_length=100, description="a lon column for proposals")
    ] = None,
    lat_column: Column = None,
    crs: Annotated[
        str, Query(description="CRS of the match columns and of the file's lon/lat")
    ] = "CRS84",
    who: Principal = Depends(viewer),
) -> dict[str, Any]:
    target = resolve(crs).id
    name = FilePath(file.filename or "upload.csv").name
    department = who.department or ""
    folder, fd = jobs.create(department, {"file": name, "column": column, "rows": 0})
    try:
        path = folder / ("upload" + FilePath(name).suffix.lower())
        spool(file.file, path, get_settings().max_upload_bytes)
        table = open_table(path, name, column, lon_column, lat_column)
    except BaseException:
        jobs.discard(folder, fd)
        raise
    meta = jobs.read_meta(folder)
    meta.update(
        rows=table.rows, column=table.header[table.address], crs=target, width=len(table.header)
    )
    jobs.write_meta(folder, meta)

    def work(folder: FilePath, progress: Any) -> dict[str, Any]:
        try:
            return report.run(table, folder, target, progress)
        finally:
            os.remove(path)  # the upload is read: only the results are kept

    width = len(table.header)
    jobs.start(folder, fd, work, then=lambda done: downloads.xlsx(done, width))
    response.headers["Location"] = f"/addresses/quality/{folder.name}"
    return _state(meta)


@router.get("/{report_id}", summary="A quality report's status and progress", responses=errors(404))
def report_state(report_id: ReportId, who: Principal = Depends(viewer)) -> dict[str, Any]:
    return _state(jobs.state(jobs.folder_of(report_id, who.department)))


def _finished(report_id: str, who: Principal) -> FilePath:
    folder = jobs.folder_of(report_id, who.department)
    meta = jobs.state(folder)
    if meta["status"] != "done":
        raise ApiError(
            409,
            "ReportNotReady",
            f"the report is {meta['status']}"
            + (f": {meta['error']['message']}" if meta["error"] else ""),
            {"status": meta["status"], "done": meta["done"], "rows": meta["rows"]},
        )
    return folder


@router.get(
    "/{report_id}/summary",
    summary="A finished report: counts by class, district and subdistrict, the worst rows",
    responses=errors(404, 409),
)
def report_summary(report_id: ReportId, who: Principal = Depends(viewer)) -> Response:
    folder = _finished(report_id, who)
    return Response((folder / report.SUMMARY).read_bytes(), media_type="application/json")


@router.get(
    "/{report_id}/rows",
    summary="The annotated rows (the file's columns, the match columns, quality and reason)",
    response_class=Response,
    responses=returns({CSV: None, downloads.XLSX_TYPE: None}, "the annotated rows")
    | errors(404, 409),
)
def report_rows(
    report_id: ReportId,
    f: Literal["csv", "xlsx"] = "csv",
    who: Principal = Depends(viewer),
) -> FileResponse:
    folder = _finished(report_id, who)
    if f == "xlsx":
        path = downloads.xlsx(folder, jobs.read_meta(folder)["width"])
        return FileResponse(path, media_type=downloads.XLSX_TYPE, filename="quality.xlsx")
    return FileResponse(
        folder / report.ANNOTATED, media_type="text/csv; charset=utf-8", filename="quality.csv"
    )


class RowPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row: int = Field(ge=1, le=10_000_000, description="the row's number in the report (1 = first)")
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)


class ProposeIn(BaseModel):
    """Without `rows`, every not-found row with a location in the file; with them, those rows
    at the points given (the department's fixes)."""

    model_config = ConfigDict(extra="forbid")
    rows: list[RowPoint] | None = Field(default=None, max_length=propose.MAX_PROPOSE)
    note: str | None = Field(default=None, max_length=500, description="for the reviewer")


@router.post(
    "/{report_id}/proposals",
    summary="Propose the report's not-found rows for review in one step",
    responses=errors(403, 404, 409),
)
def propose_rows(
    report_id: ReportId,
    session: DbSession,
    body: Annotated[ProposeIn, Body()] = ProposeIn(),
    crs: Annotated[str, Query(description="CRS of the points (default CRS84)")] = "CRS84",
    who: Principal = Depends(editor),
) -> dict[str, Any]:
    folder = _finished(report_id, who)
    target = resolve(crs).id
    points = {p.row: (p.lon, p.lat, target) for p in body.rows} if body.rows is not None else None
    return propose.propose(session, who, folder, points, body.note)

"""The 地址 / Addresses page: search as you type, reverse geocoding by a click on the map, and
batch geocoding of a CSV or XLSX file with fix-ups (console/static/addresses.js).

Geocoding is the browser calling the API (/addresses/suggest, /addresses/geocode,
/addresses/reverse, POST /addresses/geocode/batch) with the person's session, and a result saved
as a layer goes through POST /collections/{id}/upload, so roles and grants apply as for any
client. The server's own part is what a browser cannot do well: reading the uploaded table
(through the service's one encoding detection, geo.text_files, so UTF-8, UTF-8 with BOM,
GB18030/GBK and UTF-16 exports read alike, and openpyxl for XLSX) into rows, and writing the
result as an XLSX workbook. Fix-ups live in the browser until download or save
(docs/decisions.md): nothing is kept here.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

import openpyxl
import orjson
from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from addressbook.geocoding import batch
from console import pages
from geo import tables
from geo.auth import Principal, require
from geo.errors import ApiError
from geo.settings import get_settings
from geo.spool import new_folder
from geo.spreadsheets import xlsx_value
from geo.text_files import detect_file
from layers.ingest.limits import spool

router = APIRouter(include_in_schema=False)
viewer = require("viewer")

TABLE_KINDS = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx"}
# The batch API takes at most this many addresses per request; a file is refused above it.
MAX_ROWS = batch.MAX_ITEMS
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_NUMERIC = 20


@router.get("/console/addresses")
def addresses_page(request: Request) -> Response:
    who = pages.signed_in(request)
    if isinstance(who, Response):
        return pages.with_lang(request, who)
    return pages.render_for(request, who, "addresses.html", max_rows=MAX_ROWS)


@dataclass
class Table:
    """An uploaded table as the page works on it: every cell as text, rows as wide as the
    header, which columns hold text (candidates for the address column) and the guess."""

    kind: str
    encoding: str | None
    columns: list[str]
    rows: list[list[str]]
    text_columns: list[str]
    address_column: str | None

    def json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "encoding": self.encoding,
            "columns": self.columns,
            "rows": self.rows,
            "text_columns": self.text_columns,
            "address_column": self.address_column,
            # The names the batch API gives its match columns beside these columns.
            "match_columns": batch.CsvInput(self.columns, 0, iter(())).out_header[
                len(self.columns) :
            ],
            "max_rows": MAX_ROWS,
        }


def _csv_cells(path: Path) -> tuple[str, Iterator[list[str]]]:
    encoding = detect_file(path, "the CSV file")  # also refuses a workbook sent as CSV
    return encoding.name, tables.csv_rows(path, encoding.codec)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def read_table(path: Path, name: str) -> Table:
    """The uploaded file `name` (spooled at `path`) as a Table; every problem a 4xx naming it:
    a type other than CSV or XLSX, an empty file, no header, no rows, more rows than the batch
    API takes, a row wider than the header, no column holding text."""
    kind = TABLE_KINDS.get(Path(name).suffix.lower())
    if kind is None:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"{name!r}: upload a CSV (.csv, .txt) or Excel (.xlsx) file",
            {"accepted": sorted(TABLE_KINDS)},
        )
    if path.stat().st_size == 0:
        raise ApiError(400, "EmptyFile", "the file is empty")
    encoding, cells = _csv_cells(path) if kind == "csv" else (None, tables.xlsx_rows(path))
    lines = (row for row in cells if any(c.strip() for c in row))
    header = [h.strip() for h in next(lines, [])]
    while header and not header[-1]:
        header.pop()  # styled but empty cells after the last column
    if not header:
        raise ApiError(400, "EmptyFile", "the file is empty: expected a header row")
    width = len(header)
    rows: list[list[str]] = []
    for row in lines:
        if len(rows) == MAX_ROWS:
            raise ApiError(
                413,
                "TooManyRows",
                f"more than {MAX_ROWS} rows; the batch geocoder takes at most {MAX_ROWS} a file",
                {"limit": MAX_ROWS},
            )
        if any(c.strip() for c in row[width:]):
            raise ApiError(
                400,
                "InvalidFile",
                f"data row {len(rows) + 1} has {len(row)} cells, the header {width}",
                {"row": len(rows) + 1},
            )
        rows.append(row[:width] + [""] * (width - len(row)))
    if not rows:
        raise ApiError(400, "EmptyFile", "the file has a header but no rows", {"columns": header})
    text_columns = [
        name
        for i, name in enumerate(header)
        if any(r[i].strip() and not _is_number(r[i]) for r in rows)
    ]
    if not text_columns:
        raise ApiError(
            400,
            "NoAddressColumn",
            "no column holds text, so none can hold addresses",
            {"columns": header},
        )
    lowered = {h.lower(): h for h in header}
    named = next((lowered[n] for n in batch.ADDRESS_NAMES if n in lowered), None)
    guess = named or (text_columns[0] if len(text_columns) == 1 else None)
    return Table(kind, encoding, header, rows, text_columns, guess)


def _spooled(upload: UploadFile, folder: Path) -> Path:
    path = folder / ("upload" + Path(upload.filename or "").suffix.lower())
    spool(upload.file, path, get_settings().max_upload_bytes)
    return path


@router.post("/console/addresses/table")
def upload_table(
    file: UploadFile = File(description="the CSV or XLSX file"),
    _: Principal = Depends(viewer),
) -> Response:
    """The file's rows for the page to geocode through the batch API, nothing stored."""
    folder = new_folder("console-addresses-")
    try:
        table = read_table(_spooled(file, folder), Path(file.filename or "").name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return Response(
        orjson.dumps(table.json()),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def write_xlsx(source: IO[bytes], target: IO[bytes], numeric: set[str]) -> None:
    """A UTF-8 CSV (the page's result) as a one-sheet workbook: every cell text (codes keep
    their leading zeros, and a cell starting with '=' is never a formula), except the `numeric`
    columns' numbers."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("geocoded")
    reader = csv.reader(io.TextIOWrapper(source, encoding="utf-8-sig", newline=""))
    header = next(reader, [])
    numbers = {i for i, name in enumerate(header) if name in numeric}
    sheet.append(header)
    try:
        for row in reader:
            sheet.append(
                [
                    float(value)
                    if i in numbers and value and _is_number(value)
                    else xlsx_value(sheet, value)
                    for i, value in enumerate(row)
                ]
            )
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "InvalidFile", f"the CSV file: {exc}") from exc
    book.save(target)


@router.post("/console/addresses/xlsx")
def to_xlsx(
    file: UploadFile = File(description="the result as UTF-8 CSV"),
    numeric: Annotated[str, Query(max_length=1000)] = "",
    _: Principal = Depends(viewer),
) -> Response:
    """The page's result (built in the browser, fix-ups included) as an XLSX download."""
    names = {n for n in numeric.split(",") if n}
    if len(names) > MAX_NUMERIC:
        raise ApiError(400, "InvalidParameterValue", f"at most {MAX_NUMERIC} numeric columns")
    folder = new_folder("console-addresses-")
    try:
        path = _spooled(file, folder)
        with path.open("rb") as source, (folder / "geocoded.xlsx").open("wb") as target:
            write_xlsx(source, target, names)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        folder / "geocoded.xlsx",
        media_type=XLSX_TYPE,
        filename="geocoded.xlsx",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )

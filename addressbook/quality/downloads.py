"""The annotated rows as an Excel workbook, made from the report's CSV once the report is done
(on the report's worker, right after it: about 100 s for 1,000,000 rows, longer than a proxy
waits for a first download) and kept beside it until the report expires. A download that comes
before it is made waits for it in the same process; a report whose workbook was never made (the
server stopped in between) gets it on its first download.

Every cell is text (codes keep their leading zeros, and a cell starting with '=' is never a
formula: geo.spreadsheets.xlsx_value) except the match columns that are numbers (score, lon,
lat).
openpyxl's write-only mode streams rows to disk, so a 1,000,000-row report (an XLSX sheet holds
1,048,576) does not sit in memory.
"""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path
from typing import Any, Final

import openpyxl

from addressbook.quality.report import ANNOTATED
from geo.spreadsheets import xlsx_value

XLSX: Final = "annotated.xlsx"
XLSX_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_NUMBERS: Final = ("score", "lon", "lat")
# One maker per report folder in this process: a download waits for the worker's build.
_making: dict[Path, threading.Lock] = {}
_guard = threading.Lock()


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def xlsx(folder: Path, numeric_from: int) -> Path:
    """The workbook of the report in `folder` (made once). Columns from `numeric_from` on (the
    match columns) named score, lon or lat (or their geocode_ names) hold numbers."""
    target = folder / XLSX
    if target.exists():
        return target
    with _guard:
        lock = _making.setdefault(folder, threading.Lock())
    try:
        with lock:
            if not target.exists():
                _write(folder, numeric_from, target)
    finally:
        with _guard:
            _making.pop(folder, None)
    return target


def _write(folder: Path, numeric_from: int, target: Path) -> None:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("quality")
    with (folder / ANNOTATED).open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        numbers = {
            i
            for i, name in enumerate(header)
            if i >= numeric_from and name.removeprefix("geocode_") in _NUMBERS
        }
        sheet.append(header)
        for row in reader:
            cells: list[Any] = [xlsx_value(sheet, value) for value in row]
            for i in numbers:
                if row[i] and (number := _number(row[i])) is not None:
                    cells[i] = number
            sheet.append(cells)
    temporary = folder / f".{XLSX}.{threading.get_ident()}"
    book.save(temporary)
    os.replace(temporary, target)

"""Excel workbooks (XLSX) as uploads: how to recognise one, what a damaged one raises, and a
cell as the text a CSV export would hold. Shared by every reader that takes spreadsheets (layer
uploads, the address quality report, the console's address pages), so that an XLSX file and its
CSV export read alike everywhere."""

from __future__ import annotations

import zipfile
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any, Final

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

# What a damaged workbook raises from openpyxl: a broken zip, a missing part, malformed XML
# (ElementTree's ParseError is a SyntaxError), a cell value it cannot parse.
XLSX_ERRORS: Final = (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, SyntaxError)


def is_xlsx(file: Path | IO[bytes]) -> bool:
    """A zip holding xl/workbook.xml. A stream is left where it was."""
    at = None if isinstance(file, Path) else file.tell()
    try:
        with zipfile.ZipFile(file) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False
    finally:
        if at is not None and not isinstance(file, Path):
            file.seek(at)


def cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV export would hold, so that both formats share one
    set of rules (types inferred from text, codes with leading zeros kept as text...)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def xlsx_value(sheet: Any, value: Any) -> Any:
    """A value as a write-only sheet should receive it. Text is data, never code: openpyxl
    writes a string starting with "=" as a formula, so such text goes in as a cell typed as
    text; characters XML cannot hold become U+FFFD instead of failing the whole file. Only
    those cells are built as cell objects: plain values are several times faster."""
    if isinstance(value, datetime):
        # Excel keeps no time zone: the instant is written as text, zone included.
        return value.isoformat()
    if not isinstance(value, str):
        return value
    value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    if not value.startswith("="):
        return value
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell

"""Excel workbooks (XLSX) as uploads: how to recognise one, what a damaged one raises, and a
cell as the text a CSV export would hold. Shared by every reader that takes spreadsheets (layer
uploads, the address quality report, the console's address pages), so that an XLSX file and its
CSV export read alike everywhere."""

from __future__ import annotations

import zipfile
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any, Final

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

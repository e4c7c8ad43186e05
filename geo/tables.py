"""Uploaded tables (CSV or an Excel workbook) as rows of text, read one row at a time.

Every reader of a department's table (layer uploads, the address quality report, the console's
address pages) goes through these, so a CSV and its XLSX twin give the same rows everywhere and
a 1,000,000-row file never sits in memory: the CSV module streams lines, and openpyxl's
read-only mode streams the sheet's XML (a workbook opened normally is held whole in memory,
several times its file size). The encoding comes from geo.text_files, which has checked the
whole file before the first row is read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from geo.errors import ApiError
from geo.spreadsheets import XLSX_ERRORS, cell_text, is_xlsx

# Enough lines for the sniffer to tell a comma from a semicolon, tab or bar.
SNIFF_CHARS = 64 * 1024


def csv_dialect(sample: str) -> Any:
    """The delimiter the file uses (Excel writes ';' in some locales, tab for "text"); the
    usual comma when the sample does not say."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def csv_rows(path: Path, encoding: str) -> Iterator[list[str]]:
    """The file's rows as lists of text, the header first."""
    with path.open(encoding=encoding, newline="") as f:
        dialect = csv_dialect(f.read(SNIFF_CHARS))
        f.seek(0)
        try:
            yield from csv.reader(f, dialect)
        except csv.Error as exc:  # a field over the csv module's 128 KiB limit, for one
            raise ApiError(400, "InvalidFile", f"the CSV file: {exc}") from exc


def xlsx_rows(path: Path, sheet: str | None = None) -> Iterator[list[str]]:
    """A sheet's rows (the first, or `sheet` by name), formulas as their cached values, each
    cell as the text its CSV export would hold."""
    if not is_xlsx(path):
        raise ApiError(
            400, "InvalidFile", "not an Excel workbook (.xlsx): the zip holds no xl/workbook.xml"
        )
    # A file object, not the path: openpyxl refuses paths whose name does not end in .xlsx
    # (a spooled upload keeps the uploaded name's extension).
    with path.open("rb") as handle:
        try:
            book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except (*XLSX_ERRORS, InvalidFileException) as exc:
            raise ApiError(400, "InvalidFile", f"the workbook cannot be read: {exc}") from exc
        try:
            if sheet is not None and sheet not in book.sheetnames:
                raise ApiError(
                    400,
                    "InvalidParameterValue",
                    f"the workbook has no sheet {sheet!r}; pick one with layer=",
                    {"sheets": list(book.sheetnames)},
                )
            ws = book[sheet] if sheet is not None else book.worksheets[0]
            for values in ws.iter_rows(values_only=True):
                yield [cell_text(v) for v in values]
        except XLSX_ERRORS as exc:
            raise ApiError(400, "InvalidFile", f"the workbook cannot be read: {exc}") from exc
        finally:
            book.close()

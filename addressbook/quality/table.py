"""A department's address list as rows of text: CSV (UTF-8 with or without BOM, GB18030/GBK,
UTF-16, found from the bytes) or XLSX (the first sheet), read through the service's shared readers
(geo.text_files: encoding detection; geo.tables: CSV and XLSX rows, cells as the text a CSV
export would hold), one row at a time so that a 1,000,000-row file never sits in
memory.

Everything that can make the report fail is found by :func:`open_table` in the request, before
any job starts: the type, the encoding, the header, the address column, the number of rows (a
file over MAX_ROWS is a 413 naming the limit, and nothing is kept).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from addressbook.geocoding import batch
from geo import tables
from geo.errors import ApiError
from geo.spreadsheets import is_xlsx
from geo.text_files import detect_file
from layers.ingest.table_readers import LAT_NAMES, LON_NAMES

MAX_ROWS: Final = batch.MAX_ITEMS
KINDS: Final = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx"}


@dataclass(frozen=True)
class Table:
    """An upload checked and ready to read again: where it is, how to read it, its header and
    which columns hold the address and (when the file has them) the location."""

    path: Path
    kind: str
    encoding: str | None
    header: list[str]
    address: int
    lon: int | None
    lat: int | None
    rows: int

    def read(self) -> Iterator[list[str]]:
        """The data rows, each as wide as the header."""
        width = len(self.header)
        lines = _lines(self.path, self.kind, self.encoding)
        next(lines, None)
        for row in lines:
            yield row[:width] + [""] * (width - len(row))


def _lines(path: Path, kind: str, encoding: str | None) -> Generator[list[str]]:
    """Non-empty rows, the header first."""
    cells = tables.csv_rows(path, encoding or "utf-8") if kind == "csv" else tables.xlsx_rows(path)
    return (row for row in cells if any(c.strip() for c in row))


def _column(header: list[str], wanted: str | None, names: tuple[str, ...]) -> int | None:
    if wanted is not None:
        if wanted not in header:
            raise ApiError(
                400,
                "MissingColumn",
                f"the file has no column {wanted!r}; its columns are: {', '.join(header)}",
                {"column": wanted, "header": header},
            )
        return header.index(wanted)
    lowered = [h.lower() for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def open_table(
    path: Path,
    name: str,
    column: str | None,
    lon_column: str | None = None,
    lat_column: str | None = None,
) -> Table:
    """Check the upload `name` spooled at `path` and count its rows; every problem a 4xx that
    names it (the whole file is read once: the row limit is checked before any work)."""
    kind = KINDS.get(Path(name).suffix.lower())
    if kind is None:
        kind = "xlsx" if is_xlsx(path) else "csv"
    if path.stat().st_size == 0:
        raise ApiError(400, "EmptyFile", "the file is empty")
    encoding = detect_file(path, "the CSV file").codec if kind == "csv" else None
    lines = _lines(path, kind, encoding)
    header = [h.strip() for h in next(lines, [])]
    while header and not header[-1]:
        header.pop()  # styled but empty cells after the last column
    if not header:
        raise ApiError(400, "EmptyFile", "the file is empty: expected a header row")
    address = _column(header, column, batch.ADDRESS_NAMES)
    if address is None:
        raise ApiError(
            400,
            "MissingColumn",
            "name the address column with column=; none of the columns "
            f"({', '.join(header)}) is called {' / '.join(batch.ADDRESS_NAMES)}",
            {"header": header},
        )
    lon = _column(header, lon_column, LON_NAMES)
    lat = _column(header, lat_column, LAT_NAMES)
    if (lon is None) != (lat is None):
        raise ApiError(
            400,
            "MissingColumn",
            "the file has one of the lon/lat columns but not the other; name both with "
            "lon_column= and lat_column=",
            {"header": header},
        )
    rows = 0
    for _ in lines:
        rows += 1
        if rows > MAX_ROWS:
            lines.close()
            raise ApiError(
                413,
                "TooManyRows",
                f"more than {MAX_ROWS} rows; a quality report takes at most {MAX_ROWS} a file",
                {"limit": MAX_ROWS},
            )
    if rows == 0:
        raise ApiError(400, "EmptyFile", "the file has a header but no rows", {"header": header})
    return Table(path, kind, encoding, header, address, lon, lat, rows)

"""What text encoding an uploaded text file (CSV, GeoJSON) is in: the one rule every reader of
uploads follows (layer uploads, the address import, batch geocoding, place imports, the address
quality report, the console's address pages).

Accepted: UTF-16 when the file starts with its byte order mark (Excel's "Unicode text"), else
UTF-8 with or without a BOM, else GB18030, GBK's superset (what Excel on Chinese Windows writes
as "CSV"). Each candidate is checked over the whole file, in chunks, before anything is read,
so that decoding can never fail half way through an import or a streamed answer. A spreadsheet
sent as CSV is named as such instead of being decoded as text.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from geo.errors import ApiError
from geo.spreadsheets import is_xlsx

ACCEPTED: Final = "UTF-8 (with or without BOM), GB18030/GBK or UTF-16 (with its BOM)"
CHUNK: Final = 1 << 20
# Signatures of files people upload as CSV that are not text: an Excel workbook (a zip), the
# legacy binary Excel format (an OLE compound file).
_ZIP_MAGIC: Final = b"PK\x03\x04"
_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Python codec -> the name reported to people.
NAMES: Final = {"utf-16": "UTF-16", "utf-8-sig": "UTF-8", "gb18030": "GB18030"}


@dataclass(frozen=True)
class TextEncoding:
    """The file's encoding (a Python codec name: open the file with it) and the first line
    holding a NUL character, which PostgreSQL text cannot hold (readers decide what to do)."""

    codec: str
    nul_line: int | None

    @property
    def name(self) -> str:
        return NAMES[self.codec]


def refuse_spreadsheet(stream: IO[bytes]) -> None:
    """A 400 that names the fix for a workbook sent as CSV, instead of decoding its bytes."""
    at = stream.tell()
    head = stream.read(8)
    stream.seek(at)
    if head.startswith(_ZIP_MAGIC) and is_xlsx(stream):
        raise ApiError(
            400,
            "InvalidFile",
            "this file is an Excel workbook (XLSX), not CSV: save it as CSV, or send it as .xlsx "
            "where workbooks are read (format=xlsx for a layer upload)",
            {"format": "xlsx"},
        )
    if head == _OLE_MAGIC:
        raise ApiError(
            400,
            "InvalidFile",
            "this file is a legacy Excel workbook (.xls), which the service does not read: save "
            "it as .xlsx (format=xlsx) or as CSV",
        )


def _check(stream: IO[bytes], codec: str) -> tuple[int | None, int]:
    """(None if the whole stream decodes, else the line of the first bad byte; the first line
    holding NUL, or 0)."""
    decoder = codecs.getincrementaldecoder(codec)()
    line, nul = 1, 0
    while True:
        chunk = stream.read(CHUNK)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            return line + chunk[: max(exc.start, 0)].count(b"\n"), nul
        if not nul and (at := text.find("\x00")) >= 0:
            nul = line + text.count("\n", 0, at)
        line += text.count("\n")
        if not chunk:
            return None, nul


def detect(stream: IO[bytes], what: str = "the file") -> TextEncoding:
    """The encoding of a seekable binary stream, read from its current position to the end
    and rewound there; a 400 ``InvalidEncoding`` naming the accepted encodings (and the line
    where the candidate that read furthest stopped) when none reads the whole file."""
    refuse_spreadsheet(stream)
    start = stream.tell()
    head = stream.read(2)
    stream.seek(start)
    candidates = ["utf-16"] if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else []
    furthest = 0
    for codec in [*candidates, "utf-8-sig", "gb18030"]:
        bad, nul = _check(stream, codec)
        stream.seek(start)
        if bad is None:
            return TextEncoding(codec, nul or None)
        furthest = max(furthest, bad)
    raise ApiError(
        400,
        "InvalidEncoding",
        f"{what} is not text in {ACCEPTED} (a byte that fits none is on line {furthest}); "
        "re-save it as UTF-8 CSV",
        {"line": furthest, "accepted": ["UTF-8", "GB18030", "GBK", "UTF-16"]},
    )


def detect_file(path: Path, what: str = "the file") -> TextEncoding:
    """:func:`detect` for a file on disk (a spooled upload)."""
    with path.open("rb") as stream:
        return detect(stream, what)

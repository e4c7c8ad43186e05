"""Uploaded address files as a stream of CSV bytes for PostgreSQL's COPY.

The bulk path never turns rows into Python objects. The file's encoding is found first by
geo.text_files (UTF-8 with or without BOM, GB18030/GBK as Chinese Excel writes it, UTF-16 with its
BOM; the whole file checked, so nothing fails half way through COPY and nothing is stored as
mojibake). A UTF-8 CSV file then goes to COPY as it is, in 8 MiB chunks; any other is decoded and
re-encoded as UTF-8 chunk by chunk on the way (never whole in memory). A GeoJSON file is small by
comparison (nobody ships millions of features as one JSON document) and is flattened to the same
CSV shape, with the feature number as its line.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any

import orjson

from addressbook.models import ELEMENTS
from geo import text_files
from geo.errors import ApiError

CHUNK = 8 << 20
ADMIN_COLUMNS = ("district", "subdistrict", "community", "grid")
KNOWN_COLUMNS = (*ADMIN_COLUMNS, *ELEMENTS, "lon", "lat", "code", "aliases")
REQUIRED = ("district", "lon", "lat")
ONE_OF = ("road", "compound")


def check_columns(columns: list[str], what: str) -> None:
    """400 naming every required column the file lacks, or a repeated one."""
    repeated = sorted({c for c in columns if columns.count(c) > 1 and c})
    if repeated:
        raise ApiError(
            400,
            "DuplicateColumns",
            f"{what} names column(s) more than once: {', '.join(repeated)}",
            {"duplicate": repeated},
        )
    missing = [c for c in REQUIRED if c not in columns]
    if not any(c in columns for c in ONE_OF):
        missing.append(" or ".join(ONE_OF))
    if missing:
        raise ApiError(
            400,
            "MissingColumns",
            f"{what} lacks required column(s): {', '.join(missing)}",
            {"missing": missing, "columns": columns},
        )


@dataclass
class Source:
    """What the importer copies: the columns in file order and CSV data (no header)."""

    columns: list[str]
    chunks: Iterator[bytes]
    # True when the first column is the line (feature) number; else COPY numbers rows itself.
    numbered: bool
    size: int | None


def open_source(stream: IO[bytes], filename: str, max_bytes: int) -> Source:
    """The file (a seekable stream: a spooled upload or a file on disk) checked and ready to
    copy; a 4xx naming what is wrong."""
    if stream.seek(0, io.SEEK_END) > max_bytes:
        raise ApiError(
            413, "PayloadTooLarge", f"the file is larger than the {max_bytes}-byte upload limit"
        )
    stream.seek(0)
    chunks = _utf8_chunks(stream, text_files.detect(stream).codec)
    head = b""
    for chunk in chunks:
        head += chunk
        if head.strip():
            break
    is_json = head.lstrip().startswith(b"{") or filename.lower().endswith((".geojson", ".json"))
    if is_json:
        return _geojson(head + b"".join(chunks))
    return _csv(head, chunks)


def _utf8_chunks(stream: IO[bytes], encoding: str) -> Iterator[bytes]:
    """The file as UTF-8 bytes without a BOM: as they are when the file is UTF-8, else decoded
    and re-encoded chunk by chunk."""
    if encoding == "utf-8-sig":
        first = stream.read(CHUNK)
        yield first.removeprefix(codecs.BOM_UTF8)
        while chunk := stream.read(CHUNK):
            yield chunk
        return
    decoder = codecs.getincrementaldecoder(encoding)()
    while chunk := stream.read(CHUNK):
        yield decoder.decode(chunk).encode()
    yield decoder.decode(b"", final=True).encode()


def _csv(head: bytes, chunks: Iterator[bytes]) -> Source:
    pending = head
    while b"\n" not in pending:
        more = next(chunks, None)
        if more is None:
            break
        pending += more
    cut = pending.find(b"\n") + 1 or len(pending)
    text = pending[:cut].decode("utf-8")
    if not text.strip():
        raise ApiError(400, "EmptyFile", "the file is empty: expected a CSV header line")
    try:
        columns = [c.strip().lower() for c in next(csv.reader([text.rstrip("\r\n")]))]
    except csv.Error as exc:  # a lone carriage return inside the header line, for one
        raise ApiError(400, "InvalidCSV", f"line 1 (the header): {exc}", {"line": 1}) from exc
    check_columns(columns, "the CSV file")
    return Source(columns, _rows(pending[cut:], chunks), False, None)


def _rows(first: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The data lines in whole lines, without the trailing blank lines."""
    pending = b""
    for chunk in chain([first], chunks):
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        pending = data[cut:]
    tail = pending.rstrip(b"\r\n")
    if tail:
        yield tail + b"\n"


def _geojson(data: bytes) -> Source:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "MalformedJSON", f"the GeoJSON file is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise ApiError(400, "InvalidGeoJSON", "expected a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise ApiError(400, "InvalidGeoJSON", "features: expected an array")
    present = {"lon", "lat"}
    for feature in features:
        props = feature.get("properties") if isinstance(feature, dict) else None
        if isinstance(props, dict):
            present.update(str(k).strip().lower() for k in props)
    check_columns(sorted(present), "the GeoJSON file")
    columns = [c for c in KNOWN_COLUMNS if c in present]
    return Source(["line", *columns], _geojson_rows(features, columns), True, len(data))


def _position(feature: Any) -> tuple[Any, Any]:
    """The point's raw coordinates (validated as numbers later, with the other rows' problems)."""
    geometry = feature.get("geometry") if isinstance(feature, dict) else None
    if not isinstance(geometry, dict):
        return "", ""
    coords = geometry.get("coordinates")
    if geometry.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:
        return f"not a Point: {geometry.get('type')}", ""
    return coords[0], coords[1]


def _geojson_rows(features: list[Any], columns: list[str], batch: int = 50_000) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for number, feature in enumerate(features, start=1):
        props = feature.get("properties") if isinstance(feature, dict) else None
        props = {str(k).strip().lower(): v for k, v in (props or {}).items()}
        props["lon"], props["lat"] = _position(feature)
        writer.writerow(
            [number, *("" if props.get(c) is None else str(props.get(c)) for c in columns)]
        )
        if number % batch == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue().encode()

"""Uploaded address files as a stream of CSV bytes for PostgreSQL's COPY.

The bulk path never turns rows into Python objects: a CSV file goes to COPY as it is, in 8 MiB
chunks, checked for UTF-8 on the way (a GBK export is the usual culprit and must be named with
its line, not stored as mojibake). A GeoJSON file is small by comparison (nobody ships millions
of features as one JSON document) and is flattened to the same CSV shape, with the feature number
as its line.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from addressbook.models import ELEMENTS
from geo.errors import ApiError

CHUNK = 8 << 20
ADMIN_COLUMNS = ("district", "subdistrict", "community", "grid")
KNOWN_COLUMNS = (*ADMIN_COLUMNS, *ELEMENTS, "lon", "lat", "code", "aliases")
REQUIRED = ("district", "lon", "lat")
ONE_OF = ("road", "compound")


def _encoding_error(line: int, what: str) -> ApiError:
    return ApiError(
        400,
        "InvalidEncoding",
        f"{what} is not UTF-8 (first bad byte on line {line}); re-save it as UTF-8 "
        "(files exported as GBK/GB18030 must be converted)",
        {"line": line},
    )


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
    head = stream.read(1)
    while head and head.isspace():
        head = stream.read(1)
    is_json = head == b"{" or filename.lower().endswith((".geojson", ".json"))
    if is_json:
        return _geojson(head + stream.read(max_bytes + 1 - len(head)), max_bytes)
    return _csv(head, stream, max_bytes)


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413, "PayloadTooLarge", f"the file is larger than the {max_bytes}-byte upload limit"
    )


def _csv(first: bytes, stream: IO[bytes], max_bytes: int) -> Source:
    header = first + stream.readline()
    if header.startswith(codecs.BOM_UTF8):
        header = header[len(codecs.BOM_UTF8) :]
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _encoding_error(1, "the file") from exc
    if not text.strip():
        raise ApiError(400, "EmptyFile", "the file is empty: expected a CSV header line")
    try:
        columns = [c.strip().lower() for c in next(csv.reader([text.rstrip("\r\n")]))]
    except csv.Error as exc:  # a lone carriage return inside the header line, for one
        raise ApiError(400, "InvalidCSV", f"line 1 (the header): {exc}", {"line": 1}) from exc
    check_columns(columns, "the CSV file")
    return Source(columns, _checked_chunks(stream, len(header), max_bytes), False, None)


def _checked_chunks(stream: IO[bytes], already: int, max_bytes: int) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, total = 2, already
    pending = b""
    while True:
        chunk = stream.read(CHUNK)
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(max_bytes)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise _encoding_error(
                line + chunk[: max(exc.start, 0)].count(b"\n"), "the file"
            ) from exc
        if not chunk:
            break
        line += chunk.count(b"\n")
        # Hold back the tail so trailing blank lines can be dropped at the very end.
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        pending = data[cut:]
    tail = pending.rstrip(b"\r\n")
    if tail:
        yield tail + b"\n"


def _geojson(data: bytes, max_bytes: int) -> Source:
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _encoding_error(data[: exc.start].count(b"\n") + 1, "the GeoJSON file") from exc
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

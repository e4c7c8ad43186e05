"""Place files as rows: CSV or a GeoJSON FeatureCollection, in any encoding geo.text_files
accepts (UTF-8 with or without BOM, GB18030/GBK as Chinese Excel writes it, UTF-16 with its BOM).

CSV columns: `category`, `name`, `aliases` (separated by |, ；, ; or 、), `lon`, `lat`, and
optionally `address_code` (the code of its standard address) and `outline` (WKT polygon). A
GeoJSON feature carries the same as properties; its geometry is the point, or the outline (a
Polygon or MultiPolygon; the point is then a point on it unless lon/lat are given). Place files
are a few thousand rows, read whole and checked row by row (addressbook.places.store); the bulk
address path (COPY) is for millions.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import IO, Any, Final

import orjson

from geo import text_files
from geo.errors import ApiError

MAX_BYTES: Final = 20 << 20
MAX_ROWS: Final = 50_000
REQUIRED: Final = ("category", "name")
_ALIAS_SEPARATORS: Final = re.compile(r"\s*[|；;、]\s*")


@dataclass(frozen=True)
class Row:
    """One place as the file gives it (nothing checked yet)."""

    line: int
    category: str
    name: str
    aliases: tuple[str, ...]
    lon: Any
    lat: Any
    address_code: str | None
    outline: str | None  # WKT or GeoJSON text


def _aliases(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        items = [str(v) for v in value]
    else:
        items = _ALIAS_SEPARATORS.split(str(value or ""))
    return tuple(dict.fromkeys(a.strip() for a in items if a and a.strip()))


def _cell(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _row(line: int, fields: dict[str, Any], outline: str | None = None) -> Row:
    return Row(
        line=line,
        category=str(fields.get("category") or "").strip(),
        name=str(fields.get("name") or "").strip(),
        aliases=_aliases(fields.get("aliases")),
        lon=_cell(fields.get("lon")),
        lat=_cell(fields.get("lat")),
        address_code=_cell(fields.get("address_code")),
        outline=outline or _cell(fields.get("outline")),
    )


def _missing(columns: set[str], what: str) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ApiError(
            400,
            "MissingColumns",
            f"{what} lacks required column(s): {', '.join(missing)}",
            {"missing": missing, "columns": sorted(columns)},
        )


def _too_many(count: int) -> None:
    if count > MAX_ROWS:
        raise ApiError(
            413,
            "TooManyRows",
            f"the file has {count} places; one import takes at most {MAX_ROWS}",
            {"rows": count, "max": MAX_ROWS},
        )


def _csv(text: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        columns = [c.strip().lower() for c in reader.fieldnames or ()]
        _missing(set(columns), "the CSV file")
        rows = []
        for number, record in enumerate(reader, start=2):
            fields = {k.strip().lower(): v for k, v in record.items() if k is not None}
            if not any((v or "").strip() for v in fields.values() if isinstance(v, str)):
                continue  # a blank line
            rows.append(_row(number, fields))
            _too_many(len(rows))
    except csv.Error as exc:
        raise ApiError(400, "InvalidCSV", f"line {reader.line_num}: {exc}") from exc
    return rows


def _geojson(data: str) -> list[Row]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "MalformedJSON", f"the GeoJSON file is not valid JSON: {exc}") from exc
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list) or document.get("type") != "FeatureCollection":
        raise ApiError(400, "InvalidGeoJSON", "expected a GeoJSON FeatureCollection")
    _too_many(len(features))
    present: set[str] = set()
    rows = []
    for number, feature in enumerate(features, start=1):
        feature = feature if isinstance(feature, dict) else {}
        props = feature.get("properties")
        fields = {str(k).strip().lower(): v for k, v in (props or {}).items()}
        present.update(fields)
        geometry = feature.get("geometry")
        outline = None
        if isinstance(geometry, dict) and geometry.get("type") == "Point":
            coordinates = geometry.get("coordinates") or [None, None]
            fields.setdefault("lon", coordinates[0])
            fields.setdefault("lat", coordinates[1] if len(coordinates) > 1 else None)
        elif geometry is not None:
            outline = orjson.dumps(geometry).decode()
        rows.append(_row(number, fields, outline))
    _missing(present, "the GeoJSON file")
    return rows


def read_places(stream: IO[bytes], filename: str) -> list[Row]:
    """The rows of an uploaded place file; a 4xx for a file that cannot be read at all."""
    data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ApiError(
            413, "PayloadTooLarge", f"the file is larger than the {MAX_BYTES}-byte upload limit"
        )
    if not data.strip():
        raise ApiError(400, "EmptyFile", "the file is empty")
    text = data.decode(text_files.detect(io.BytesIO(data)).codec)
    if text.lstrip().startswith("{") or filename.lower().endswith((".geojson", ".json")):
        return _geojson(text)
    return _csv(text)

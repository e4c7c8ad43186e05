"""CSV and Excel uploads: points from lon/lat columns, or from an address column geocoded by
the address library; the text encoding found from the bytes by geo.text_files (UTF-8, with or
without BOM, GB18030/GBK, UTF-16), rows read by geo.tables."""

from __future__ import annotations

import csv
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from geo import crs as geo_crs
from geo import tables, text_files
from geo.errors import ApiError
from layers.ingest import geometry
from layers.ingest.readers import BATCH, Batch, Reader

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "东经")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "北纬")
ADDRESS_NAMES = ("address", "addr", "地址", "详细地址", "标准地址")
# Matches the geocoder may be trusted with: the road or deeper (DESIGN.md: never a silent guess).
CONFIDENT_LEVELS = ("road", "house_number", "compound", "building", "unit", "room")
MIN_SCORE = 0.8

# Addresses of a batch -> per address, (lon, lat) in EPSG:4490 or the reason it was not used.
Geocode = Callable[[list[str]], list[tuple[float, float] | str]]


def _pick(header: list[str], wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    if wanted:
        if wanted not in header:
            raise ApiError(
                400,
                "InvalidParameterValue",
                f"column {wanted!r} is not in the file's header",
                {"header": header},
            )
        return wanted
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[c] for c in candidates if c in lowered), None)


def csv_reader(
    path: Path,
    lon_column: str | None,
    lat_column: str | None,
    address_column: str | None,
    geocode: Callable[[], Geocode],
) -> Reader:
    encoding = text_files.detect_file(path, "the CSV file")
    with path.open(encoding=encoding.codec, newline="") as f:
        sample = f.read(tables.SNIFF_CHARS)
    dialect = tables.csv_dialect(sample)
    header = next(csv.reader(sample.splitlines()[:1], dialect), [])
    if not header:
        raise ApiError(400, "InvalidFile", "the CSV file has no header row")

    def rows() -> Iterator[dict[Any, Any]]:
        with path.open(encoding=encoding.codec, newline="") as f:
            try:
                yield from csv.DictReader(f, dialect=dialect)
            except csv.Error as exc:  # a field over the csv module's 128 KiB limit, for one
                raise ApiError(400, "InvalidFile", f"the CSV file: {exc}") from exc

    reader = _table_reader("csv", header, rows, lon_column, lat_column, address_column, geocode)
    reader.encoding = encoding.name
    return reader


def xlsx_reader(
    path: Path,
    sheet: str | None,
    lon_column: str | None,
    lat_column: str | None,
    address_column: str | None,
    geocode: Callable[[], Geocode],
) -> Reader:
    """An Excel workbook's sheet (the first, or ``layer=`` by name) read like a CSV file: the
    first non-empty row is the header, then lon/lat columns or an address column (rows streamed
    by geo.tables.xlsx_rows)."""

    def cells() -> Generator[list[str]]:
        return (row for row in tables.xlsx_rows(path, sheet) if any(row))

    first = cells()
    header = [h.strip() for h in next(first, [])]
    first.close()
    while header and not header[-1]:
        header.pop()  # styled but empty cells after the last column
    if not header:
        raise ApiError(400, "InvalidFile", "the sheet is empty: expected a header row")

    def rows() -> Iterator[dict[Any, Any]]:
        body = cells()
        next(body, None)
        width = len(header)
        for row in body:
            record: dict[Any, Any] = dict(zip(header, row, strict=False))
            for name in header[len(row) :]:
                record[name] = None
            extra = [v for v in row[width:] if v]
            if extra:
                record[None] = extra
            yield record

    return _table_reader("xlsx", header, rows, lon_column, lat_column, address_column, geocode)


def _table_reader(
    format_: str,
    header: list[str],
    rows: Callable[[], Iterator[dict[Any, Any]]],
    lon_column: str | None,
    lat_column: str | None,
    address_column: str | None,
    geocode: Callable[[], Geocode],
) -> Reader:
    """CSV and spreadsheets alike: rows of text by header name (csv.DictReader's shape, extra
    cells under the key None) to points from lon/lat columns or geocoded addresses."""
    lon = _pick(header, lon_column, LON_NAMES)
    lat = _pick(header, lat_column, LAT_NAMES)
    address = None
    if not (lon and lat) or address_column:
        address = _pick(header, address_column, ADDRESS_NAMES)
    if not (lon and lat) and not address:
        raise ApiError(
            400,
            "NoGeometryColumns",
            "the file needs lon/lat columns (lon, lng, longitude, 经度 / lat, latitude, 纬度) or "
            "an address column (address, 地址); name them with lon_column=, lat_column= or "
            "address_column=",
            {"header": header},
        )
    use_address = address is not None and not (lon and lat and not address_column)
    skip = {address} if use_address else {lon, lat}
    locate = geocode() if use_address else None

    def batches() -> Iterator[Batch]:
        start = 0
        chunk: list[dict[str, Any]] = []
        for row in rows():
            chunk.append(row)
            if len(chunk) == BATCH:
                yield _table_batch(start, chunk)
                start += len(chunk)
                chunk = []
        if chunk:
            yield _table_batch(start, chunk)

    def _table_batch(start: int, rows: list[dict[str, Any]]) -> Batch:
        xs = np.full(len(rows), np.nan)
        ys = np.full(len(rows), np.nan)
        errors: geometry.Errors = {}
        props: list[dict[str, Any]] = []
        located = locate([(row.get(address or "") or "").strip() for row in rows]) if locate else []
        for i, row in enumerate(rows):
            extra = row.get(None)  # type: ignore[call-overload]
            if extra:
                errors[i] = f"row has {len(extra) + len(header)} fields, the header {len(header)}"
            props.append({k: v for k, v in row.items() if k not in skip and k is not None})
            if locate is not None:
                found = located[i]
                if isinstance(found, str):
                    errors.setdefault(i, found)
                else:
                    xs[i], ys[i] = found
                continue
            try:
                xs[i], ys[i] = float(row[lon or ""]), float(row[lat or ""])
            except (TypeError, ValueError):
                errors.setdefault(
                    i,
                    f"{lon}/{lat} must be numbers, got "
                    f"{row.get(lon or '')!r}, {row.get(lat or '')!r}",
                )
        geoms = np.empty(len(rows), dtype=object)
        ok = np.isfinite(xs) & np.isfinite(ys)
        geoms[ok] = shapely.points(xs[ok], ys[ok])
        return Batch(start, geoms, props, errors)

    return Reader(
        format_, batches, from_text=True, fixed_crs=geo_crs.STORAGE_CRS if use_address else None
    )


def address_locator(session: Any) -> Geocode:
    """Geocode CSV addresses with the address library; only confident matches are kept.

    A batch goes to ``geocode_many`` (one lookup for the batch's exact matches) when the library
    has it, else address by address to ``geocode``.
    """
    try:
        from addressbook.geocoding import geocoder
    except ImportError as exc:
        raise ApiError(
            400,
            "GeocoderUnavailable",
            "this service has no address geocoder yet; upload lon/lat columns instead",
        ) from exc

    def judge(text: str, candidates: list[Any]) -> tuple[float, float] | str:
        if not text:
            return "the address cell is empty"
        if not candidates:
            return f"address {text!r} not found in the address library"
        best = candidates[0]
        if best.score < MIN_SCORE or best.level not in CONFIDENT_LEVELS:
            return (
                f"address {text!r} not matched confidently (best: {best.standard!r}, level "
                f"{best.level}, score {best.score:.2f}); correct it or give lon/lat"
            )
        # The geocoder answers in EPSG:4490 (the reader's fixed CRS).
        return float(best.lon), float(best.lat)

    def locate(texts: list[str]) -> list[tuple[float, float] | str]:
        many = getattr(geocoder, "geocode_many", None)
        if many is not None:
            found = many(session, texts, limit=1)
        else:
            found = [geocoder.geocode(session, t, limit=1) if t else [] for t in texts]
        return [judge(t, c) for t, c in zip(texts, found, strict=True)]

    return locate

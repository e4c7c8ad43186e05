"""One reader per file format, each yielding batches of (geometries, properties, problems).

Readers stream: GeoJSON a batch of features at a time (layers.ingest.geojson_scan), NDJSON and
CSV line by line, Excel sheets row by row (openpyxl's read-only mode), GeoPackage and Shapefile
through pyogrio in slices of features. Whatever the format, the pipeline sees the same
:class:`Batch`, so validation and COPY exist once.
"""

from __future__ import annotations

import codecs
import csv
import math
import struct
import zipfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import orjson
import pyogrio
import shapely
from openpyxl.utils.exceptions import InvalidFileException
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo import crs as geo_crs
from geo.errors import ApiError
from layers.ingest import geometry
from layers.ingest.geojson_scan import BOM, FeatureScanner, malformed
from layers.ingest.limits import check_zip
from layers.schema import json_depth as value_depth

BATCH = 10_000
FORMATS = ("geojson", "ndjson", "gpkg", "shapefile", "csv", "xlsx")
_EXTENSIONS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".ndjson": "ndjson",
    ".geojsonl": "ndjson",
    ".geojsons": "ndjson",
    ".geojsonseq": "ndjson",
    ".jsonl": "ndjson",
    ".gpkg": "gpkg",
    ".zip": "shapefile",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
}
# A feature sits at depth 3 (root object, features array, feature): its properties may nest
# up to the document limit minus that.
_FEATURE_DEPTH = 3


@dataclass
class Batch:
    start: int
    geoms: geometry.Geoms
    properties: list[dict[str, Any]]
    # Problems found while reading, by position in the batch.
    errors: geometry.Errors = field(default_factory=dict)


@dataclass
class Reader:
    """What the pipeline needs from a file: its batches, and what the file says about itself."""

    format: str
    batches: Callable[[], Iterator[Batch]]
    # The CRS the file declares (GeoPackage, .prj), None when it declares none.
    declared_crs: str | None = None
    # Field name -> type, for formats that type their fields; None when inferred from values.
    fields: dict[str, str] | None = None
    # Values arrive as text (CSV) and are parsed, rather than checked, against the schema.
    from_text: bool = False
    # Coordinates whose CRS is not the uploader's to choose (geocoded addresses are EPSG:4490).
    fixed_crs: str | None = None
    # The text encoding found for formats that do not say (CSV, shapefiles without a .cpg).
    encoding: str | None = None


def detect_format(filename: str, requested: str | None) -> str:
    if requested:
        if requested not in FORMATS:
            raise ApiError(
                400,
                "InvalidParameterValue",
                f"format must be one of {', '.join(FORMATS)}, not {requested!r}",
            )
        return requested
    suffix = Path(filename).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"cannot tell the format of {filename!r} from its extension; use one of "
            f"{', '.join(sorted(_EXTENSIONS))} or pass format= ({', '.join(FORMATS)})",
        )
    return _EXTENSIONS[suffix]


# -- GeoJSON and NDJSON ------------------------------------------------------------------------


def _feature_parts(feature: Any, max_depth: int | None) -> tuple[Any, dict[str, Any], str | None]:
    """(geometry, properties, problem) of one parsed feature; ``max_depth`` checks the nesting
    of its properties (None when the whole file was depth-checked already)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        kind = feature.get("type") if isinstance(feature, dict) else type(feature).__name__
        return None, {}, f"not a GeoJSON Feature (type {kind!r})"
    props = feature.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        return None, {}, "properties must be an object or null"
    if max_depth is not None and value_depth(props, max_depth) > max_depth - _FEATURE_DEPTH:
        return None, {}, f"properties nested deeper than the limit of {max_depth} levels"
    if "geometry" not in feature:
        return None, props, "feature has no geometry member"
    return feature["geometry"], props, None


def _batch(start: int, items: list[tuple[Any, dict[str, Any], str | None]]) -> Batch:
    geoms, errors = geometry.from_geojson([g for g, _, _ in items])
    for i, (_, _, problem) in enumerate(items):
        if problem:
            errors[i] = problem
            geoms[i] = None
    return Batch(start, geoms, [p for _, p, _ in items], errors)


def geojson_reader(path: Path, max_depth: int) -> Reader:
    def batches() -> Iterator[Batch]:
        scanner = FeatureScanner(path, max_depth, BATCH)
        count = 0
        for features in scanner:
            items: list[tuple[Any, dict[str, Any], str | None]] = []
            for feature in features:
                # The usual feature, inline; anything unusual gets the full check.
                props = feature.get("properties") if type(feature) is dict else None
                if (
                    type(props) is dict
                    and feature.get("type") == "Feature"
                    and "geometry" in feature
                ):
                    items.append((feature["geometry"], props, None))
                else:
                    items.append(_feature_parts(feature, None))
            yield _batch(count, items)
            count += len(items)
        if count == 0:
            yield from _single_document(path, max_depth)

    return Reader("geojson", batches)


def _single_document(path: Path, max_depth: int) -> Iterator[Batch]:
    """No ``features`` array: a lone Feature is a one-feature upload; anything else is an error."""
    if path.stat().st_size > 64 * 1024 * 1024:
        raise ApiError(400, "InvalidGeoJSON", "expected a FeatureCollection with features")
    try:
        document = orjson.loads(path.read_bytes().removeprefix(BOM))
    except orjson.JSONDecodeError as exc:
        raise malformed(str(exc).splitlines()[0], 0) from None
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "Feature":
        yield _batch(0, [_feature_parts(document, max_depth)])
        return
    if kind == "FeatureCollection" and isinstance(document.get("features"), list):
        raise ApiError(400, "NoFeatures", "the FeatureCollection has no features")
    raise ApiError(
        400,
        "InvalidGeoJSON",
        f"expected a GeoJSON FeatureCollection or Feature, got type {kind!r}",
    )


def ndjson_reader(path: Path, max_depth: int) -> Reader:
    def batches() -> Iterator[Batch]:
        items: list[tuple[Any, dict[str, Any], str | None]] = []
        start = count = 0
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                # RFC 8142 GeoJSON text sequences; a byte order mark before the first line
                line = raw.strip().lstrip(b"\x1e").removeprefix(BOM)
                if not line:
                    continue
                try:
                    feature = orjson.loads(line)
                    items.append(_feature_parts(feature, max_depth))
                except orjson.JSONDecodeError as exc:
                    items.append((None, {}, f"line {number} is not valid JSON: {exc}"))
                count += 1
                if len(items) == BATCH:
                    yield _batch(start, items)
                    start, items = count, []
        if items:
            yield _batch(start, items)

    return Reader("ndjson", batches)


# -- GeoPackage and zipped Shapefile (GDAL through pyogrio) --------------------------------------

_OGR_TYPES = {
    "OFTInteger": "integer",
    "OFTInteger64": "integer",
    "OFTReal": "number",
    "OFTString": "string",
    "OFTDate": "date",
    "OFTDateTime": "datetime",
}


def _declared_crs(info: dict[str, Any]) -> str | None:
    wkt = info.get("crs")
    if not wkt:
        return None
    try:
        parsed = CRS.from_user_input(wkt)
    except CRSError as exc:
        raise ApiError(400, "UnknownCRS", f"the file's CRS cannot be read: {exc}") from exc
    code = parsed.to_epsg(min_confidence=70)
    candidates = [f"EPSG:{code}"] if code else []
    if parsed.equals(CRS.from_user_input("OGC:CRS84")):
        candidates.insert(0, "CRS84")
    for candidate in candidates:
        try:
            return geo_crs.resolve(candidate).id
        except ApiError:
            continue
    raise ApiError(
        400,
        "UnknownCRS",
        f"the file's CRS ({parsed.name}) is not one the service supports; reproject it or "
        "pass crs= to override",
        {"file_crs": parsed.name},
    )


def _field_types(info: dict[str, Any]) -> dict[str, str]:
    types: dict[str, str] = {}
    ogr_types = info.get("ogr_types") or []
    subtypes = info.get("ogr_subtypes") or []
    for i, name in enumerate(info["fields"]):
        kind = _OGR_TYPES.get(ogr_types[i] if i < len(ogr_types) else "", "string")
        if i < len(subtypes) and subtypes[i] == "OFSTBoolean":
            kind = "boolean"
        types[str(name)] = kind
    return types


def _python_values(column: Any) -> list[Any]:
    """numpy column to Python values, with GDAL's nulls (NaN, NaT, None) as None."""
    if column.dtype.kind == "M":
        return [None if np.isnat(v) else v.astype("datetime64[us]").item() for v in column]
    values = column.tolist()
    if column.dtype.kind == "f":
        return [None if (v is None or math.isnan(v)) else v for v in values]
    return list(values)


def ogr_reader(source: str, layer: str | None, format_: str, encoding: str | None = None) -> Reader:
    """``encoding``: of the file's text (shapefiles), None to let GDAL decide."""
    try:
        info = pyogrio.read_info(source, layer=layer, encoding=encoding)
    except (DataSourceError, DataLayerError) as exc:
        raise ApiError(400, "InvalidFile", f"GDAL cannot read the {format_} file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise _undecodable(encoding, exc) from exc
    total = int(info.get("features") or 0)

    def batches() -> Iterator[Batch]:
        for start in range(0, max(total, 1), BATCH):
            try:
                _, _, wkb, field_data = pyogrio.raw.read(
                    source, layer=layer, skip_features=start, max_features=BATCH, encoding=encoding
                )
            except (DataSourceError, DataLayerError) as exc:
                raise ApiError(400, "InvalidFile", f"GDAL failed reading features: {exc}") from exc
            except UnicodeDecodeError as exc:
                raise _undecodable(encoding, exc) from exc
            if wkb is None or not len(wkb):
                return
            geoms, errors = geometry.from_wkb(wkb)
            names = list(info["fields"])
            columns = [_python_values(col) for col in field_data]
            props = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
            if not names:
                props = [{} for _ in range(len(wkb))]
            yield Batch(start, geoms, props, errors)

    return Reader(format_, batches, _declared_crs(info), _field_types(info), encoding=encoding)


def _undecodable(encoding: str | None, exc: UnicodeDecodeError) -> ApiError:
    return ApiError(
        400,
        "InvalidEncoding",
        f"the file's text is not {encoding or 'in the encoding GDAL detected'} ({exc.reason}); "
        "fix or remove the shapefile's .cpg, or re-save it as UTF-8",
        {"encoding": encoding},
    )


def gpkg_reader(path: Path, layer: str | None) -> Reader:
    if layer is None:
        try:
            layers = pyogrio.list_layers(path)
        except DataSourceError as exc:
            raise ApiError(400, "InvalidFile", f"not a readable GeoPackage: {exc}") from exc
        spatial = [str(name) for name, kind in layers if kind]
        if len(spatial) > 1:
            raise ApiError(
                400,
                "AmbiguousLayer",
                f"the GeoPackage holds {len(spatial)} layers; pick one with layer=",
                {"layers": spatial},
            )
        layer = spatial[0] if spatial else None
    return ogr_reader(str(path), layer, "gpkg")


def shapefile_reader(path: Path, layer: str | None, limit: int) -> Reader:
    with check_zip(path, limit) as archive:
        names = [n for n in archive.namelist() if not n.startswith("__MACOSX/")]
    lowered = {n.lower(): n for n in names}
    shps = [n for n in names if n.lower().endswith(".shp")]
    if layer is not None:
        shps = [n for n in shps if Path(n).stem == layer]
    if not shps and "xl/workbook.xml" in names:
        raise ApiError(
            400,
            "InvalidFile",
            "this zip is an Excel workbook (XLSX), not a zipped shapefile: upload it with "
            "format=xlsx (or under a .xlsx name)",
            {"format": "xlsx"},
        )
    if not shps:
        raise ApiError(400, "InvalidFile", "the zip holds no .shp file", {"members": names[:50]})
    if len(shps) > 1:
        raise ApiError(
            400,
            "AmbiguousLayer",
            f"the zip holds {len(shps)} shapefiles; pick one with layer=",
            {"layers": [Path(n).stem for n in shps]},
        )
    shp = shps[0]
    stem = shp[: -len(".shp")]
    for part in (".dbf", ".shx"):
        if (stem + part).lower() not in lowered:
            raise ApiError(
                400,
                "IncompleteShapefile",
                f"{Path(shp).name} has no {Path(stem).name}{part} beside it in the zip; a "
                "shapefile needs its .shp, .shx and .dbf",
                {"missing": Path(stem).name + part},
            )
    encoding = shapefile_encoding(path, stem, lowered)
    return ogr_reader(f"/vsizip/{path}/{shp}", None, "shapefile", encoding)


# .cpg spellings (ArcGIS writes code page numbers, QGIS names) to Python codec names. GBK and
# GB2312 are read as GB18030, their superset.
_CPG_NAMES = {
    "UTF8": "UTF-8",
    "65001": "UTF-8",
    "936": "GB18030",
    "CP936": "GB18030",
    "GBK": "GB18030",
    "GB2312": "GB18030",
    "GB18030": "GB18030",
    "54936": "GB18030",
}


def _cpg_encoding(text: str) -> str | None:
    """A .cpg/.cst file's content as a codec name; None when Python does not know it (GDAL
    then interprets it as it can)."""
    name = text.strip().upper().removeprefix("ANSI").strip().replace("-", "").replace("_", "")
    if name in _CPG_NAMES:
        return _CPG_NAMES[name]
    for candidate in (name, f"CP{name}" if name.isdigit() else name):
        try:
            return codecs.lookup(candidate).name
        except LookupError:
            continue
    return None


def shapefile_encoding(path: Path, stem: str, members: dict[str, str]) -> str | None:
    """The encoding of a zipped shapefile's text: its .cpg (or .cst) when present; else UTF-8
    when every field name and text value decodes strictly as UTF-8, else GB18030.

    Without a .cpg GDAL reads the DBF as ISO-8859-1, and GBK names came out as Ãû³Æ with no
    warning. Shapefiles from Chinese desktop GIS without a .cpg are GBK far more often than
    Latin-1, and a GBK text is almost never valid UTF-8, so the strict UTF-8 test tells them
    apart."""
    with zipfile.ZipFile(path) as archive:
        for suffix in (".cpg", ".cst"):
            member = members.get((stem + suffix).lower())
            if member is not None:
                declared = archive.read(member)[:100].decode("ascii", "replace")
                return _cpg_encoding(declared)
        with archive.open(members[(stem + ".dbf").lower()]) as dbf:
            return "UTF-8" if _dbf_is_utf8(dbf) else "GB18030"


def _dbf_is_utf8(dbf: Any) -> bool:
    """Whether the DBF's field names and character fields decode strictly as UTF-8 (ASCII
    does). Records are read a slice at a time; the first bad byte ends the test."""
    head = dbf.read(32)
    if len(head) < 32:
        return True  # GDAL will say what is wrong with it
    header_size, record_size = struct.unpack("<HH", head[8:12])
    descriptors = dbf.read(max(header_size - 32, 0))
    names: list[bytes] = []
    columns: list[tuple[int, int]] = []  # (start, end) in a record of each character field
    offset = 1  # each record starts with its deletion flag
    for i in range(0, len(descriptors) - 31, 32):
        field = descriptors[i : i + 32]
        if field[0] == 0x0D:
            break
        size = field[16]
        names.append(field[:11].split(b"\0", 1)[0])
        if field[11:12] == b"C":
            columns.append((offset, offset + size))
        offset += size
    try:
        b"".join(names).decode("utf-8")
    except UnicodeDecodeError:
        return False
    if not columns or record_size < offset:
        return True
    per_read = max(1, (8 * 1024 * 1024) // record_size)
    while block := dbf.read(per_read * record_size):
        count = len(block) // record_size
        records = np.frombuffer(block, np.uint8, count * record_size).reshape(count, record_size)
        for start, end in columns:
            try:
                records[:, start:end].tobytes().decode("utf-8")
            except UnicodeDecodeError:
                return False
    return True


# -- CSV ------------------------------------------------------------------------------------------

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


# Signatures of files people upload as CSV that are not text: an Excel workbook (a zip), the
# legacy binary Excel format (an OLE compound file).
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _not_text(path: Path) -> None:
    """A 400 that names the fix for a spreadsheet sent as CSV, instead of decoding its bytes."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC) and _is_xlsx(path):
        raise ApiError(
            400,
            "InvalidFile",
            "this file is an Excel workbook (XLSX), not CSV: upload it with format=xlsx (or "
            "under a .xlsx name)",
            {"format": "xlsx"},
        )
    if head == _OLE_MAGIC:
        raise ApiError(
            400,
            "InvalidFile",
            "this file is a legacy Excel workbook (.xls), which the service does not read: save "
            "it as .xlsx (format=xlsx) or as CSV",
        )


def _is_xlsx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as f:
        try:
            while chunk := f.read(1024 * 1024):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), else GB18030 (GBK's superset, what Chinese Excel exports
    write), or UTF-16 when it starts with its byte order mark (Excel's "Unicode text"); each
    checked over the whole file, so that decoding cannot fail half way through the upload."""
    _not_text(path)
    with path.open("rb") as f:
        head = f.read(2)
    candidates = ["utf-16"] if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else []
    for encoding in [*candidates, "utf-8-sig", "gb18030"]:
        if _decodes(path, encoding):
            return encoding
    raise ApiError(
        400,
        "InvalidEncoding",
        "the CSV file is not text in UTF-8, GB18030/GBK or UTF-16; re-save it as UTF-8 CSV "
        "(or upload a spreadsheet as .xlsx with format=xlsx)",
    )


def csv_reader(
    path: Path,
    lon_column: str | None,
    lat_column: str | None,
    address_column: str | None,
    geocode: Callable[[], Geocode],
) -> Reader:
    encoding = _encoding(path)
    with path.open(encoding=encoding, newline="") as f:
        sample = f.read(64 * 1024)
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    header = next(csv.reader(sample.splitlines()[:1], dialect), [])
    if not header:
        raise ApiError(400, "InvalidFile", "the CSV file has no header row")

    def rows() -> Iterator[dict[Any, Any]]:
        with path.open(encoding=encoding, newline="") as f:
            try:
                yield from csv.DictReader(f, dialect=dialect)
            except csv.Error as exc:  # a field over the csv module's 128 KiB limit, for one
                raise ApiError(400, "InvalidFile", f"the CSV file: {exc}") from exc

    reader = _table_reader("csv", header, rows, lon_column, lat_column, address_column, geocode)
    reader.encoding = {"utf-8-sig": "UTF-8"}.get(encoding, encoding.upper())
    return reader


# What a damaged workbook raises from openpyxl: a broken zip, a missing part, malformed XML
# (ElementTree's ParseError is a SyntaxError), a cell value it cannot parse.
_XLSX_ERRORS = (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, SyntaxError)


def _cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV export would hold, so that both formats share one
    set of rules (types inferred from text, codes with leading zeros kept as text...)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def xlsx_reader(
    path: Path,
    sheet: str | None,
    lon_column: str | None,
    lat_column: str | None,
    address_column: str | None,
    geocode: Callable[[], Geocode],
) -> Reader:
    """An Excel workbook's sheet (the first, or ``layer=`` by name) read like a CSV file: the
    first non-empty row is the header, then lon/lat columns or an address column.

    openpyxl's read-only mode streams the sheet's XML row by row (a workbook opened normally is
    held whole in memory, several times its file size); formulas give their cached values."""
    if not _is_xlsx(path):
        raise ApiError(
            400, "InvalidFile", "not an Excel workbook (.xlsx): the zip holds no xl/workbook.xml"
        )

    def cells() -> Generator[list[str]]:
        # A file object, not the path: openpyxl refuses paths whose name does not end in .xlsx
        # (the spooled copy keeps the uploaded name's extension).
        with path.open("rb") as handle:
            try:
                book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
            except (*_XLSX_ERRORS, InvalidFileException) as exc:
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
                    row = [_cell_text(v) for v in values]
                    if any(row):
                        yield row
            except _XLSX_ERRORS as exc:
                raise ApiError(400, "InvalidFile", f"the workbook cannot be read: {exc}") from exc
            finally:
                book.close()

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

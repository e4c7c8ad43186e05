"""One reader per file format, each yielding batches of (geometries, properties, problems).

Readers stream: GeoJSON a batch of features at a time (layers.ingest.geojson_scan), NDJSON and
CSV line by line, GeoPackage and Shapefile through pyogrio in slices of features. Whatever the
format, the pipeline sees the same :class:`Batch`, so validation and COPY exist once.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyogrio
import shapely
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
FORMATS = ("geojson", "ndjson", "gpkg", "shapefile", "csv")
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


def ogr_reader(source: str, layer: str | None, format_: str) -> Reader:
    try:
        info = pyogrio.read_info(source, layer=layer)
    except (DataSourceError, DataLayerError) as exc:
        raise ApiError(400, "InvalidFile", f"GDAL cannot read the {format_} file: {exc}") from exc
    total = int(info.get("features") or 0)

    def batches() -> Iterator[Batch]:
        for start in range(0, max(total, 1), BATCH):
            try:
                _, _, wkb, field_data = pyogrio.raw.read(
                    source, layer=layer, skip_features=start, max_features=BATCH
                )
            except (DataSourceError, DataLayerError) as exc:
                raise ApiError(400, "InvalidFile", f"GDAL failed reading features: {exc}") from exc
            if wkb is None or not len(wkb):
                return
            geoms, errors = geometry.from_wkb(wkb)
            names = list(info["fields"])
            columns = [_python_values(col) for col in field_data]
            props = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
            if not names:
                props = [{} for _ in range(len(wkb))]
            yield Batch(start, geoms, props, errors)

    return Reader(format_, batches, _declared_crs(info), _field_types(info))


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
    return ogr_reader(f"/vsizip/{path}/{shp}", None, "shapefile")


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
                f"column {wanted!r} is not in the CSV header",
                {"header": header},
            )
        return wanted
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), else GB18030, which Chinese Excel exports use."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    with path.open("rb") as f:
        try:
            while chunk := f.read(1024 * 1024):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8-sig"
        except UnicodeDecodeError:
            return "gb18030"


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
    lon = _pick(header, lon_column, LON_NAMES)
    lat = _pick(header, lat_column, LAT_NAMES)
    address = None
    if not (lon and lat) or address_column:
        address = _pick(header, address_column, ADDRESS_NAMES)
    if not (lon and lat) and not address:
        raise ApiError(
            400,
            "NoGeometryColumns",
            "the CSV needs lon/lat columns (lon, lng, longitude, 经度 / lat, latitude, 纬度) or an "
            "address column (address, 地址); name them with lon_column=, lat_column= or "
            "address_column=",
            {"header": header},
        )
    use_address = address is not None and not (lon and lat and not address_column)
    skip = {address} if use_address else {lon, lat}
    locate = geocode() if use_address else None

    def batches() -> Iterator[Batch]:
        with path.open(encoding=encoding, newline="") as f:
            rows = csv.DictReader(f, dialect=dialect)
            start = 0
            chunk: list[dict[str, Any]] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) == BATCH:
                    yield _csv_batch(start, chunk)
                    start += len(chunk)
                    chunk = []
            if chunk:
                yield _csv_batch(start, chunk)

    def _csv_batch(start: int, rows: list[dict[str, Any]]) -> Batch:
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
        "csv", batches, from_text=True, fixed_crs=geo_crs.STORAGE_CRS if use_address else None
    )


def address_locator(session: Any) -> Geocode:
    """Geocode CSV addresses with the address library; only confident matches are kept.

    A batch goes to ``geocode_many`` (one lookup for the batch's exact matches) when the library
    has it, else address by address to ``geocode``.
    """
    try:
        from addressbook import geocoder
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

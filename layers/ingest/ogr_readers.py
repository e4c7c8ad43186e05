"""GeoPackage and zipped Shapefile uploads, read through GDAL (pyogrio) in slices, and the text
encoding of a shapefile that does not declare one, found from its bytes."""

from __future__ import annotations

import codecs
import math
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo import crs as geo_crs
from geo.errors import ApiError
from layers.ingest import geometry
from layers.ingest.limits import check_zip
from layers.ingest.readers import BATCH, Batch, Reader

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

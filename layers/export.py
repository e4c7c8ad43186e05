"""Whole-layer downloads in every format departments use: GeoJSON, GeoPackage, CSV, XLSX and
zipped Shapefile, in any supported CRS.

The layer is read with a server-side cursor in slices of 50,000 features and each slice is
written to a file on disk before the next is read, so exporting a five-million-feature layer
holds one slice in memory, never the layer (and never twice: the response streams the finished
file). The caller's source is already narrowed to its grant (area predicate in ``relation()``,
withheld attributes gone from ``properties``), so a grantee's file holds what its items would.

Files carry x/y (lon/lat, easting/northing) whatever the CRS's official axis order, as GIS
files do. GCJ-02 and BD-09 have no CRS definition a file could carry: their files hold the
offset coordinates and declare no CRS.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyogrio
import shapely
from openpyxl import Workbook
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import crs
from geo.errors import ApiError
from geo.sources import LayerSource
from geo.spreadsheets import xlsx_value
from layers.features import to_crs
from layers.schema import quote_ident

SLICE = 50_000
_NUMPY = {"integer": "int64", "number": "float64", "boolean": "bool"}
# Excel's limits: rows per sheet (one is the header) and characters per cell.
XLSX_MAX_ROWS = 1_048_575
XLSX_MAX_CELL = 32_767
# dBase field names are at most 10 bytes; GDAL cuts UTF-8 names inside a character.
SHP_NAME_BYTES = 10
# A Shapefile holds one geometry family; a layer's type maps onto it.
_SHP_TYPES = {
    "Point": "Point",
    "MultiPoint": "MultiPoint",
    "LineString": "LineString",
    "MultiLineString": "LineString",
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
}
# PostGIS GeometryType() names for the same families.
_POSTGIS = {k.upper(): v for k, v in _SHP_TYPES.items()}


@dataclass(frozen=True)
class Format:
    media_type: str
    suffix: str


FORMATS: dict[str, Format] = {
    "geojson": Format("application/geo+json", "geojson"),
    "gpkg": Format("application/geopackage+sqlite3", "gpkg"),
    "csv": Format("text/csv; charset=utf-8", "csv"),
    "xlsx": Format("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "shp": Format("application/zip", "zip"),
}


@dataclass
class Slice:
    ids: list[int]
    # One list per attribute, in source.properties order.
    columns: list[list[Any]]
    # Shapely geometries in the target CRS, x/y order.
    geometries: Any


def _slices(session: Session, source: LayerSource, target: str) -> Iterator[Slice]:
    names = list(source.properties)
    columns = "".join(f", t.{quote_ident(n)}" for n in names)
    result = session.execute(
        text(
            f"SELECT t.{quote_ident(source.id_column)}{columns}, "
            f"ST_AsBinary(t.{quote_ident(source.geometry_column)}) "
            f"FROM {source.relation()} t ORDER BY t.{quote_ident(source.id_column)}"
        ).execution_options(yield_per=SLICE)
    )
    while chunk := result.fetchmany(SLICE):
        yield Slice(
            ids=[r[0] for r in chunk],
            columns=[[r[i + 1] for r in chunk] for i in range(len(names))],
            geometries=to_crs(np.array([r[-1] for r in chunk], dtype=object), target, False),
        )


def count(session: Session, source: LayerSource) -> int:
    return int(session.execute(text(f"SELECT count(*) FROM {source.relation()} t")).scalar_one())


def check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"unknown export format {fmt[:50]!r}; one of {', '.join(FORMATS)}",
            {"f": fmt[:50], "formats": list(FORMATS)},
        )
    return FORMATS[fmt]


def write(session: Session, source: LayerSource, fmt: str, target_crs: str) -> Path:
    """Write the caller's view of the layer in ``fmt`` to a new temporary folder and return the
    file's path (the caller deletes ``path.parent``). Anything refused is refused before a file
    is begun; a failure while writing removes the folder."""
    info = crs.resolve(target_crs)
    suffix = check_format(fmt).suffix
    writer = {
        "geojson": _geojson,
        "gpkg": _geopackage,
        "csv": _csv,
        "xlsx": _xlsx,
        "shp": _shapefile,
    }[fmt]
    folder = Path(tempfile.mkdtemp(prefix="layer-export-"))
    path = folder / f"{source.id}.{suffix}"
    try:
        writer(session, source, info, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


# -- GIS files through GDAL -----------------------------------------------------------------------


def _column(values: list[Any], kind: str) -> np.ndarray:
    if kind in _NUMPY and all(v is not None for v in values):
        return np.asarray(values, dtype=_NUMPY[kind])
    if kind == "number":
        return np.asarray([np.nan if v is None else v for v in values], dtype="float64")
    if kind in ("date", "datetime"):
        return np.asarray([None if v is None else v.isoformat() for v in values], dtype=object)
    return np.asarray(values, dtype=object)


def _ogr(
    session: Session,
    source: LayerSource,
    info: crs.CrsInfo,
    path: Path,
    driver: str,
    fields: list[str],
    geometry_type: str,
) -> None:
    """Append slice after slice to a GDAL dataset (an empty layer still declares its fields)."""
    kinds = ["integer", *source.properties.values()]
    options: dict[str, Any] = {
        "driver": driver,
        "layer": path.stem,
        "crs": info.proj,
        "geometry_type": geometry_type,
        "encoding": "UTF-8",
        "fields": fields,
    }
    written = False
    with warnings.catch_warnings():
        # No CRS for GCJ-02/BD-09 is deliberate (see the module's docstring).
        warnings.filterwarnings("ignore", "'crs' was not provided")
        for part in _slices(session, source, info.id):
            data = [_column(v, k) for v, k in zip([part.ids, *part.columns], kinds, strict=True)]
            pyogrio.raw.write(
                str(path),
                geometry=shapely.to_wkb(part.geometries),
                field_data=data,
                append=written,
                **options,
            )
            written = True
        if not written:
            pyogrio.raw.write(
                str(path),
                geometry=np.array([], dtype=object),
                field_data=[_column([], k) for k in kinds],
                **options,
            )


def _geopackage(session: Session, source: LayerSource, info: crs.CrsInfo, path: Path) -> None:
    geometry_type = "Unknown" if source.geometry_type == "Geometry" else source.geometry_type
    fields = ["fid_source", *source.properties]
    _ogr(session, source, info, path, "GPKG", fields, geometry_type)


def shapefile_names(names: list[str]) -> list[str]:
    """dBase field names: at most 10 bytes of UTF-8 cut between characters, unique ignoring
    case (GDAL would cut "所属街道名称" inside its fourth character and read back garbage)."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate = _cut(name, SHP_NAME_BYTES)
        n = 1
        while candidate.lower() in taken:
            suffix = f"_{n}"
            candidate = _cut(name, SHP_NAME_BYTES - len(suffix)) + suffix
            n += 1
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def _cut(name: str, size: int) -> str:
    return name.encode()[:size].decode(errors="ignore")


def _shapefile_type(session: Session, source: LayerSource) -> str:
    if source.geometry_type != "Geometry":
        return _SHP_TYPES[source.geometry_type]
    found = session.scalars(
        text(
            f"SELECT DISTINCT GeometryType(t.{quote_ident(source.geometry_column)}) "
            f"FROM {source.relation()} t"
        )
    ).all()
    kinds = {_POSTGIS.get(k, k) for k in found}
    if kinds == {"Point", "MultiPoint"}:
        kinds = {"MultiPoint"}
    if len(kinds) > 1:
        raise ApiError(
            409,
            "MixedGeometryTypes",
            f"a Shapefile holds one geometry type; this layer has {', '.join(sorted(kinds))}: "
            "download GeoPackage or GeoJSON instead",
            {"f": "shp", "geometry_types": sorted(kinds)},
        )
    return kinds.pop() if kinds else "Point"


def _shapefile(session: Session, source: LayerSource, info: crs.CrsInfo, path: Path) -> None:
    """A zip of .shp, .shx, .dbf, .cpg (UTF-8, so Chinese attribute text reads back in any GIS)
    and .prj (none for GCJ-02/BD-09)."""
    geometry_type = _shapefile_type(session, source)
    parts = path.parent / "shp"
    parts.mkdir()
    fields = shapefile_names(["fid_source", *source.properties])
    _ogr(session, source, info, parts / f"{source.id}.shp", "ESRI Shapefile", fields, geometry_type)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(parts.iterdir()):
            archive.write(part, part.name)
    shutil.rmtree(parts)


# -- GeoJSON, CSV and XLSX, written here ----------------------------------------------------------


def _geojson(session: Session, source: LayerSource, info: crs.CrsInfo, path: Path) -> None:
    """RFC 7946 for WGS 84; another CRS is named in the (2008) ``crs`` member GDAL and QGIS read."""
    names = list(source.properties)
    head: dict[str, Any] = {"type": "FeatureCollection", "name": source.id}
    if info.proj is not None and info.id not in ("EPSG:4326", "CRS84"):
        code = info.id.split(":")[1]
        head["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{code}"}}
    with path.open("wb") as out:
        out.write(orjson.dumps(head)[:-1] + b',"features":[\n')
        first = True
        for part in _slices(session, source, info.id):
            shapes = shapely.to_geojson(part.geometries).tolist()
            for i, fid in enumerate(part.ids):
                props = {n: part.columns[j][i] for j, n in enumerate(names)}
                out.write(
                    (b"" if first else b",\n")
                    + b'{"type":"Feature","id":'
                    + orjson.dumps(fid)
                    + b',"geometry":'
                    + (shapes[i].encode() if shapes[i] is not None else b"null")
                    + b',"properties":'
                    + orjson.dumps(props)
                    + b"}"
                )
                first = False
        out.write(b"\n]}\n")


def _rows(session: Session, source: LayerSource, info: crs.CrsInfo) -> Iterator[list[Any]]:
    """id, the attributes, the geometry as WKT."""
    for part in _slices(session, source, info.id):
        wkt = shapely.to_wkt(part.geometries, rounding_precision=-1).tolist()
        for i, fid in enumerate(part.ids):
            yield [fid, *(column[i] for column in part.columns), wkt[i]]


def _csv(session: Session, source: LayerSource, info: crs.CrsInfo, path: Path) -> None:
    """UTF-8 with a BOM, so Excel opens Chinese text as such."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", *source.properties, "wkt"])
        writer.writerows(_rows(session, source, info))


def _xlsx(session: Session, source: LayerSource, info: crs.CrsInfo, path: Path) -> None:
    """One sheet in openpyxl's write-only mode (rows go to a temporary file as they come)."""
    total = count(session, source)
    if total > XLSX_MAX_ROWS:
        raise ApiError(
            409,
            "TooManyRows",
            f"the layer has {total} features; an XLSX sheet holds at most {XLSX_MAX_ROWS}: "
            "download CSV or GeoPackage instead",
            {"f": "xlsx", "features": total, "limit": XLSX_MAX_ROWS},
        )
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=source.id[:31])
    sheet.append(["id", *source.properties, "wkt"])
    for row in _rows(session, source, info):
        wkt = row[-1] or ""  # a feature without geometry (a community not yet drawn) has none
        if len(wkt) > XLSX_MAX_CELL:
            raise ApiError(
                409,
                "GeometryTooLarge",
                f"feature {row[0]}'s geometry is {len(wkt)} characters of WKT; an XLSX cell "
                f"holds at most {XLSX_MAX_CELL}: download GeoPackage or GeoJSON instead",
                {"f": "xlsx", "feature": row[0], "limit": XLSX_MAX_CELL},
            )
        sheet.append([xlsx_value(sheet, v) for v in row])
    book.save(path)

"""Whole-layer downloads: a GeoPackage written by GDAL (pyogrio) in slices, and CSV.

The layer is read with a server-side cursor in slices of 50,000 features and appended to the
GeoPackage slice by slice, so exporting a five-million-feature layer never holds it in memory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
from shapely import to_wkb
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import crs
from geo.sources import LayerSource
from layers.features import to_crs
from layers.schema import quote_ident

SLICE = 50_000
_NUMPY = {"integer": "int64", "number": "float64", "boolean": "bool"}


def _column(values: list[Any], kind: str) -> np.ndarray:
    if kind in _NUMPY and all(v is not None for v in values):
        return np.asarray(values, dtype=_NUMPY[kind])
    if kind == "number":
        return np.asarray([np.nan if v is None else v for v in values], dtype="float64")
    if kind in ("date", "datetime"):
        return np.asarray([None if v is None else v.isoformat() for v in values], dtype=object)
    return np.asarray(values, dtype=object)


def geopackage(session: Session, source: LayerSource, target_crs: str) -> Path:
    """Write the collection to a temporary GeoPackage and return its path (caller deletes it)."""
    info = crs.resolve(target_crs)
    if info.proj is None:
        # GeoPackage needs a CRS definition; GCJ-02/BD-09 have none. The data is then written in
        # the storage CRS, which every GIS reads.
        info = crs.resolve(crs.STORAGE_CRS)
    folder = Path(tempfile.mkdtemp(prefix="layer-export-"))
    path = folder / f"{source.id}.gpkg"
    names = list(source.properties)
    columns = "".join(f", t.{quote_ident(n)}" for n in names)
    result = session.execute(
        text(
            f"SELECT t.{quote_ident(source.id_column)}{columns}, "
            f"ST_AsBinary(t.{quote_ident(source.geometry_column)}) "
            f"FROM {source.relation()} t ORDER BY t.{quote_ident(source.id_column)}"
        ).execution_options(yield_per=SLICE)
    )
    written = False
    geometry_type = "Unknown" if source.geometry_type == "Geometry" else source.geometry_type
    while chunk := result.fetchmany(SLICE):
        geoms = to_crs(np.array([r[-1] for r in chunk], dtype=object), info.id, False)
        fields = ["fid_source", *names]
        data = [_column([r[0] for r in chunk], "integer")]
        data += [
            _column([r[i + 1] for r in chunk], source.properties[n]) for i, n in enumerate(names)
        ]
        pyogrio.raw.write(
            str(path),
            geometry=to_wkb(geoms),
            field_data=data,
            fields=fields,
            driver="GPKG",
            layer=source.id,
            crs=info.proj or info.id,
            geometry_type=geometry_type,
            append=written,
            encoding="UTF-8",
        )
        written = True
    if not written:
        # No feature (or none in the reader's grant area): the file still declares the fields.
        pyogrio.raw.write(
            str(path),
            geometry=np.array([], dtype=object),
            field_data=[
                np.array([], dtype="int64"),
                *(_column([], source.properties[n]) for n in names),
            ],
            fields=["fid_source", *names],
            driver="GPKG",
            layer=source.id,
            crs=info.proj or info.id,
            geometry_type=geometry_type,
        )
    return path

"""What every format's reader yields, and the format a file is read as.

Readers stream: GeoJSON a batch of features at a time (layers.ingest.geojson_scan), NDJSON and
CSV line by line, Excel sheets row by row (openpyxl's read-only mode), GeoPackage and Shapefile
through pyogrio in slices of features (layers.ingest.json_readers, ogr_readers, table_readers).
Whatever the format, the pipeline sees the same :class:`Batch`, so validation and COPY exist
once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.errors import ApiError
from layers.ingest import geometry

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

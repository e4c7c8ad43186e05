"""What a dry run shows of an upload: its first valid features, as the layer would then serve
them, and the bbox of all of them, in EPSG:4326.

The features are kept as they are checked (converted to EPSG:4490, values coerced to the
schema). An inferred schema may still widen after them (a later batch turns an integer column
into a number or text, a Polygon layer into a MultiPolygon one); the real upload then changes
the column with PostgreSQL's own cast, so the kept values are cast the same way at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import shapely

from geo import crs
from layers.features import DECIMALS
from layers.ingest import geometry
from layers.schema import PropertySpec

DEFAULT_FEATURES = 100
MAX_FEATURES = 1000
PREVIEW_CRS = "EPSG:4326"


def cast_widened(value: Any, kind: str) -> Any:
    """``value`` as PostgreSQL's ``::numeric``/``::text`` cast gives it after a widening
    (integer -> number, integer/number/boolean -> string), the only changes
    layers.ingest.values.wider makes."""
    if value is None or kind not in ("number", "string"):
        return value
    if kind == "number":
        return float(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


class Sample:
    """The first ``limit`` valid features of a file, and the bounds of every valid one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.geoms: list[Any] = []
        # Each kept feature's values with the schema they were coerced to.
        self.rows: list[tuple[list[PropertySpec], list[Any]]] = []
        self.bounds: list[float] | None = None

    def add(
        self,
        geoms: geometry.Geoms,
        rows: list[list[Any]],
        errors: geometry.Errors,
        specs: list[PropertySpec],
    ) -> None:
        valid = np.ones(len(geoms), dtype=bool)
        valid[list(errors)] = False
        if not valid.any():
            return
        box = shapely.total_bounds(geoms[valid]).tolist()
        if self.bounds is None:
            self.bounds = box
        else:
            self.bounds = [
                min(self.bounds[0], box[0]),
                min(self.bounds[1], box[1]),
                max(self.bounds[2], box[2]),
                max(self.bounds[3], box[3]),
            ]
        for i in np.flatnonzero(valid)[: self.limit - len(self.geoms)].tolist():
            self.geoms.append(geoms[i])
            self.rows.append((specs, rows[i]))

    def features(
        self, specs: list[PropertySpec], geometry_type: str
    ) -> tuple[list[dict[str, Any]], list[float] | None]:
        """The kept features as GeoJSON in EPSG:4326 under the final schema (coordinates to
        the items route's precision), and the bbox of all valid features."""
        if self.bounds is None:
            return [], None
        kinds = {s.name: s.type for s in specs}
        geoms, _ = geometry.conform(np.array(self.geoms, dtype=object), geometry_type)
        geoms = crs.transform(geoms, crs.STORAGE_CRS, PREVIEW_CRS)
        geoms = shapely.transform(geoms, lambda xy: np.round(xy, DECIMALS))
        texts = shapely.to_geojson(geoms).tolist()
        features = []
        for (kept, values), text in zip(self.rows, texts, strict=True):
            cast: dict[str, Any] = {}
            for spec, value in zip(kept, values, strict=True):
                kind = kinds[spec.name]
                cast[spec.name] = value if spec.type == kind else cast_widened(value, kind)
            # Columns added after a feature was kept are null for it, as in the table.
            properties = {s.name: cast.get(s.name) for s in specs}
            features.append(
                {"type": "Feature", "geometry": orjson.loads(text), "properties": properties}
            )
        box = crs.transform(shapely.box(*self.bounds), crs.STORAGE_CRS, PREVIEW_CRS).bounds
        return features, [round(v, DECIMALS) for v in box]

"""Geometry checks for incoming features, vectorised over a batch with shapely 2.

Order matters: parse, drop Z, convert to EPSG:4490, check the city extent (the usual symptom of
swapped axes or a wrong ``crs``), check validity (or repair with ``make_valid``), then match the
layer's geometry type, promoting single parts into multi-part layers. Every problem is reported
per feature (index, reason); nothing here raises for one bad feature.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import shapely
from numpy.typing import NDArray
from shapely import GeometryType

from geo import crs
from geo.errors import ApiError
from layers.schema import MULTI_OF, SINGLE_OF
from layers.storage import SAME_AS_STORAGE

Geoms = NDArray[np.object_]
Errors = dict[int, str]

TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}
FAMILY = {
    "Point": "Point",
    "MultiPoint": "Point",
    "LineString": "LineString",
    "LinearRing": "LineString",
    "MultiLineString": "LineString",
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
}


# -- GeoJSON geometry objects to shapely ---------------------------------------------------------


def _array(coords: list[Any]) -> NDArray[np.float64]:
    """Positions as an (n, 2) float array; anything but numbers goes to the per-feature path.

    The common case (every position two JSON numbers) is flattened with ``np.fromiter``, seven
    times faster than letting numpy discover the shape of a list of lists; the types are still
    checked, so a string coordinate is an error, never silently parsed.
    """
    flat = itertools.chain.from_iterable(coords)
    if sum(map(len, coords)) == 2 * len(coords) and set(map(type, flat)) <= {float, int}:
        values = np.fromiter(itertools.chain.from_iterable(coords), np.float64, 2 * len(coords))
        return values.reshape(-1, 2)
    arr = np.asarray(coords)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3) or arr.dtype.kind not in "if":
        raise ValueError("not an array of positions")
    return np.ascontiguousarray(arr[:, :2], dtype=np.float64)


def _points(items: list[Any]) -> Geoms:
    return shapely.points(_array(items))


def _ragged(kind: GeometryType, depth: int) -> Callable[[list[Any]], Geoms]:
    """Builder for types whose coordinates nest ``depth`` arrays above the positions.

    Level by level, C-level ``map(len, ...)`` gives the offsets and ``chain`` flattens: no Python
    loop per ring or per feature.
    """

    def build(items: list[Any]) -> Geoms:
        level: list[Any] = items
        offsets: list[NDArray[np.int64]] = []
        for _ in range(depth):
            lengths = np.fromiter(map(len, level), np.int64, len(level))
            offsets.append(np.concatenate(([0], np.cumsum(lengths))))
            level = list(itertools.chain.from_iterable(level))
        # shapely wants the innermost offsets first.
        return shapely.from_ragged_array(kind, _array(level), tuple(reversed(offsets)))

    return build


_BUILDERS: dict[str, Callable[[list[Any]], Geoms]] = {
    "Point": _points,
    "MultiPoint": _ragged(GeometryType.MULTIPOINT, 1),
    "LineString": _ragged(GeometryType.LINESTRING, 1),
    "MultiLineString": _ragged(GeometryType.MULTILINESTRING, 2),
    "Polygon": _ragged(GeometryType.POLYGON, 2),
    "MultiPolygon": _ragged(GeometryType.MULTIPOLYGON, 3),
}


def _one(value: Any) -> tuple[Any, str | None]:
    """One geometry through GEOS's own GeoJSON reader, for its error message."""
    if not isinstance(value, dict):
        return None, f"geometry must be a GeoJSON object, got {type(value).__name__}"
    try:
        return shapely.from_geojson(orjson.dumps(value)), None
    except (shapely.errors.GEOSException, ValueError, TypeError, orjson.JSONEncodeError) as exc:
        return None, f"invalid GeoJSON geometry: {exc}"


def from_geojson(items: list[Any]) -> tuple[Geoms, Errors]:
    """Shapely geometries for GeoJSON geometry objects (None stays None); errors by position.

    Each geometry type is built in one vectorised call from its coordinate arrays; only when a
    group fails (a ragged position, a string coordinate, an unclosed ring) does it fall back to
    one-by-one parsing, to name the features at fault.
    """
    out = np.empty(len(items), dtype=object)
    errors: Errors = {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, value in enumerate(items):
        if value is None:
            continue
        kind = value.get("type") if isinstance(value, dict) else None
        if kind in _BUILDERS and isinstance(value.get("coordinates"), list):
            groups[kind].append(i)
        else:
            out[i], problem = _one(value)
            if problem:
                errors[i] = problem
    for kind, index in groups.items():
        try:
            out[index] = _BUILDERS[kind]([items[i]["coordinates"] for i in index])
        except (ValueError, TypeError, IndexError, shapely.errors.GEOSException):
            for i in index:
                out[i], problem = _one(items[i])
                if problem:
                    errors[i] = problem
    return out, errors


def from_wkb(values: Any) -> tuple[Geoms, Errors]:
    """Geometries read by GDAL (WKB); a record GDAL could not decode is reported, not skipped."""
    geoms = np.empty(len(values), dtype=object)
    errors: Errors = {}
    try:
        geoms[:] = shapely.from_wkb(values)
    except shapely.errors.GEOSException:
        for i, value in enumerate(values):
            try:
                geoms[i] = shapely.from_wkb(value)
            except shapely.errors.GEOSException as exc:
                errors[i] = f"unreadable geometry: {exc}"
    return geoms, errors


# -- checks -------------------------------------------------------------------------------------


def prepare(
    geoms: Geoms,
    source_crs: str,
    extent: tuple[float, float, float, float],
    repair: bool,
) -> tuple[Geoms, Errors, int]:
    """Convert to EPSG:4490 and check extent and validity. Returns geometries (None where a
    problem was found), problems by position, and how many were repaired."""
    errors: Errors = {}
    present = ~shapely.is_missing(geoms)
    for i in np.flatnonzero(~present):
        errors[int(i)] = "feature has no geometry"
    empty = present & shapely.is_empty(geoms)
    for i in np.flatnonzero(empty):
        errors[int(i)] = "geometry is empty"
    ok = np.flatnonzero(present & ~empty)
    out = np.empty(len(geoms), dtype=object)
    if not len(ok):
        return out, errors, 0
    work = shapely.force_2d(geoms[ok])
    try:
        if crs.resolve(source_crs).id not in SAME_AS_STORAGE:
            work = crs.transform(work, source_crs, crs.STORAGE_CRS)
    except ApiError:
        errors.update(_transform_errors(work, source_crs))
        if not errors:
            raise
        return out, errors, 0
    errors.update(_outside(work, ok, extent, source_crs))
    valid = shapely.is_valid(work)
    repaired = 0
    for j in np.flatnonzero(~valid):
        index = int(ok[j])
        if index in errors:
            continue
        if repair:
            fixed = _repair(work[j])
            if fixed is None:
                errors[index] = f"invalid geometry that make_valid cannot keep: {_reason(work[j])}"
            else:
                work[j] = fixed
                repaired += 1
        else:
            errors[index] = f"invalid geometry: {_reason(work[j])} (make_valid=true repairs)"
    out[ok] = work
    for index in errors:
        out[index] = None
    return out, errors, repaired


def _reason(geom: Any) -> str:
    return str(shapely.is_valid_reason(geom))


def _transform_errors(geoms: Geoms, source_crs: str) -> Errors:
    errors: Errors = {}
    for i, geom in enumerate(geoms):
        try:
            crs.transform(geom, source_crs, crs.STORAGE_CRS)
        except ApiError as exc:
            errors[i] = exc.message
    return errors


def _outside(
    geoms: Geoms, index: NDArray[np.int64], extent: tuple[float, float, float, float], src: str
) -> Errors:
    minx, miny, maxx, maxy = extent
    bounds = shapely.bounds(geoms)
    inside = (
        (bounds[:, 0] >= minx)
        & (bounds[:, 2] <= maxx)
        & (bounds[:, 1] >= miny)
        & (bounds[:, 3] <= maxy)
    )
    errors: Errors = {}
    for j in np.flatnonzero(~inside):
        b = bounds[j]
        swapped = minx <= b[1] and b[3] <= maxx and miny <= b[0] and b[2] <= maxy
        hint = (
            "latitude and longitude look swapped"
            if swapped
            else f"wrong crs? the file was read as {src}"
        )
        errors[int(index[j])] = (
            f"coordinates outside the city extent ({minx},{miny},{maxx},{maxy}): bbox "
            f"[{b[0]:.6f}, {b[1]:.6f}, {b[2]:.6f}, {b[3]:.6f}] in EPSG:4490; {hint}"
        )
    return errors


def _repair(geom: Any) -> Any:
    """make_valid, keeping only parts of the original dimension (a bow-tie polygon becomes two
    triangles, not a collection with a stray point)."""
    family = FAMILY.get(geom.geom_type)
    fixed = shapely.make_valid(geom)
    if family is None or FAMILY.get(fixed.geom_type) == family:
        return fixed if not fixed.is_empty else None
    parts = [p for p in shapely.get_parts(fixed) if FAMILY.get(p.geom_type) == family]
    if not parts:
        return None
    multi = {"Point": shapely.MultiPoint, "LineString": shapely.MultiLineString}.get(family)
    if multi is not None:
        return multi(parts) if len(parts) > 1 else parts[0]
    merged = shapely.union_all(parts)
    return merged if not merged.is_empty else None


def types_of(geoms: Geoms) -> NDArray[np.object_]:
    """Type names per geometry (None for missing ones)."""
    ids = shapely.get_type_id(geoms)
    names = np.array([TYPE_NAMES.get(int(i)) for i in range(8)] + [None], dtype=object)
    return names[np.where(ids < 0, 8, ids)]


def infer_type(current: str | None, seen: set[str]) -> str | None:
    """The narrowest layer type holding ``current`` and the types ``seen``; None when the types
    belong to different families (mixed points and polygons)."""
    names = set(seen) | ({current} if current else set())
    families = {FAMILY.get(n) for n in names}
    if len(families) != 1 or None in families:
        return None
    if len(names) == 1:
        return names.pop()
    return MULTI_OF[families.pop() or ""]


def conform(geoms: Geoms, layer_type: str) -> tuple[Geoms, Errors]:
    """Match the layer's geometry type: promote single parts, report anything else."""
    errors: Errors = {}
    if layer_type == "Geometry":
        return geoms, errors
    types = types_of(geoms)
    single = SINGLE_OF.get(layer_type)
    promote = np.flatnonzero(types == single) if single else np.array([], dtype=np.int64)
    out = geoms.copy()
    if len(promote):
        factory = {
            "Point": shapely.multipoints,
            "LineString": shapely.multilinestrings,
            "Polygon": shapely.multipolygons,
        }[single or ""]
        out[promote] = factory(geoms[promote], indices=np.arange(len(promote)))
    wrong = (types != layer_type) & (types != single) & (types != None)  # noqa: E711
    for i in np.flatnonzero(wrong):
        errors[int(i)] = f"geometry type {types[i]} does not fit the layer's type {layer_type}"
        out[i] = None
    return out, errors


_SRID_LE = (4490).to_bytes(4, "little")


def ewkb_hex(geoms: Geoms) -> list[str | None]:
    """Hex EWKB with SRID 4490, PostGIS's text input form for COPY.

    shapely.set_srid costs more than the whole WKB encoding; splicing the SRID into each WKB
    header (type | 0x20000000, then the SRID) is the same bytes, faster.
    """
    out: list[str | None] = []
    for wkb in shapely.to_wkb(geoms, byte_order=1, output_dimension=2).tolist():
        if wkb is None:
            out.append(None)
            continue
        kind = int.from_bytes(wkb[1:5], "little") | 0x20000000
        out.append((wkb[:1] + kind.to_bytes(4, "little") + _SRID_LE + wkb[5:]).hex())
    return out

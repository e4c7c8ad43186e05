"""The shared coordinate system: which CRSs the service speaks, and the one way to convert.

Everything is stored in CGCS2000 geographic (EPSG:4490). Departments bring data in whatever their
surveyors or web maps used, clients ask for what their basemap needs; every conversion in the
service goes through :func:`transform` (or :func:`transform_xy` for bare coordinate arrays) so
that alias parsing, the GCJ-02/BD-09 detour and error reporting are the same everywhere.

Internally every coordinate is x = longitude/easting, y = latitude/northing, whatever the CRS's
official axis order (pyproj's ``always_xy``). Only the edges that speak OGC axis order (OGC API -
Features Part 2 responses) use :func:`is_yx_order` and :func:`swap_xy`.

PROJ does all the real geodesy. GCJ-02 and BD-09 are not datums PROJ knows; they are offsets on
top of WGS84, so they are reached through EPSG:4326 (which PROJ treats as identical to EPSG:4490:
the two realisations agree within centimetres).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from geo import gcj02
from geo.errors import ApiError

__all__ = [
    "DEFAULT_CRS",
    "STORAGE_CRS",
    "CrsInfo",
    "is_yx_order",
    "list_crs",
    "resolve",
    "swap_xy",
    "transform",
    "transform_geojson",
    "transform_xy",
]

STORAGE_CRS = "EPSG:4490"
DEFAULT_CRS = "CRS84"

Floats = NDArray[np.float64]
CoordFn = Callable[[Floats], Floats]

_EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
_CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# The web systems have no EPSG or OGC identifier; these URNs are the service's own.
_SERVICE_URN = "urn:tianjin-geo:crs:{}"


@dataclass(frozen=True)
class CrsInfo:
    """One supported CRS. ``proj`` is what PROJ is given; None for the web-map offsets."""

    id: str
    name: str
    uri: str
    axes: tuple[str, str]
    proj: str | None
    aliases: tuple[str, ...]

    @property
    def yx(self) -> bool:
        """True when the official first axis is latitude or northing."""
        return self.axes[0] in ("lat", "northing")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "uri": self.uri,
            "axisOrder": list(self.axes),
            "projBacked": self.proj is not None,
            "aliases": list(self.aliases),
        }


def _official_axes(crs: CRS) -> tuple[str, str]:
    """Axis order as PROJ's database defines it; Gauss-Kruger CRSs in China are northing first."""
    geographic = crs.is_geographic
    names = []
    for axis in crs.axis_info[:2]:
        north = axis.direction.lower() in ("north", "south")
        if geographic:
            names.append("lat" if north else "lon")
        else:
            names.append("northing" if north else "easting")
    return names[0], names[1]


def _epsg(code: int) -> CrsInfo:
    crs = CRS.from_epsg(code)
    uri = _EPSG_URI.format(code)
    return CrsInfo(
        id=f"EPSG:{code}",
        name=crs.name,
        uri=uri,
        axes=_official_axes(crs),
        proj=f"EPSG:{code}",
        aliases=(str(code), uri.replace("http://", "https://"), f"urn:ogc:def:crs:EPSG::{code}"),
    )


def _crs84() -> CrsInfo:
    return CrsInfo(
        id="CRS84",
        name=CRS.from_user_input("OGC:CRS84").name,
        uri=_CRS84_URI,
        axes=("lon", "lat"),
        proj="OGC:CRS84",
        aliases=(
            "OGC:CRS84",
            _CRS84_URI.replace("http://", "https://"),
            "urn:ogc:def:crs:OGC:1.3:CRS84",
            "urn:ogc:def:crs:OGC::CRS84",
        ),
    )


def _web(id_: str, name: str, aliases: tuple[str, ...]) -> CrsInfo:
    return CrsInfo(id_, name, _SERVICE_URN.format(id_), ("lon", "lat"), None, aliases)


_REGISTRY: tuple[CrsInfo, ...] = (
    _epsg(4490),
    _epsg(4326),
    _crs84(),
    _epsg(3857),
    _epsg(4548),
    _epsg(4527),
    _epsg(2436),
    _epsg(2384),
    _web("GCJ02", "GCJ-02 (Mars coordinates: Amap, Tencent)", ("GCJ-02", "GCJ_02")),
    _web("BD09", "BD-09 (Baidu)", ("BD-09", "BD_09")),
)

_BY_NAME: dict[str, CrsInfo] = {
    name.lower(): info for info in _REGISTRY for name in (info.id, info.uri, *info.aliases)
}

# The web offsets as (to WGS84, from WGS84); PROJ carries the rest of the way.
_WEB_OFFSETS: dict[str, tuple[Callable[..., tuple[Any, Any]], Callable[..., tuple[Any, Any]]]] = {
    "GCJ02": (gcj02.gcj02_to_wgs84, gcj02.wgs84_to_gcj02),
    "BD09": (gcj02.bd09_to_wgs84, gcj02.wgs84_to_bd09),
}
_WEB_BASE = "EPSG:4326"


def resolve(crs: str) -> CrsInfo:
    """Accept any spelling clients use (code, EPSG:code, OGC URI or URN), case-insensitively."""
    info = _BY_NAME.get(crs.strip().lower()) if isinstance(crs, str) else None
    if info is None:
        supported = [i.id for i in _REGISTRY]
        raise ApiError(
            400,
            "UnknownCRS",
            f"unknown CRS {crs!r}; supported: {', '.join(supported)}",
            {"crs": crs, "supported": supported},
        )
    return info


def list_crs() -> list[dict[str, Any]]:
    """The registry as the API shows it, in a stable order (storage CRS first)."""
    return [info.as_dict() for info in _REGISTRY]


def is_yx_order(crs: str) -> bool:
    """Whether the CRS's official axis order is lat/lon or northing/easting.

    EPSG:4490 and EPSG:4326 are lat/lon and the Chinese Gauss-Kruger CRSs are northing/easting
    by definition, although almost all data files are written lon/lat or easting/northing; OGC
    API - Features Part 2 wants the official order in responses for an explicit ``crs``.
    """
    return resolve(crs).yx


@lru_cache(maxsize=128)
def _transformer(src: str, dst: str) -> Transformer:
    """Creating a Transformer costs milliseconds (database lookups); using one costs nothing.

    pyproj Transformers are thread-safe since 3.1, so one cached instance serves every worker.
    """
    return Transformer.from_crs(src, dst, always_xy=True)


def transform_xy(x: ArrayLike, y: ArrayLike, src: str, dst: str) -> tuple[Floats, Floats]:
    """Convert coordinate arrays (x = lon/easting, y = lat/northing) between supported CRSs.

    Raises ``ApiError(400, "TransformFailed")`` for finite input that has no finite image
    (for instance a latitude beyond 90 in Web Mercator), rather than letting ``inf`` reach a client.
    """
    source, target = resolve(src), resolve(dst)
    xs, ys = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return _convert(xs, ys, source, target)


def _convert(x: Floats, y: Floats, source: CrsInfo, target: CrsInfo) -> tuple[Floats, Floats]:
    if source.id == target.id:
        return x.copy(), y.copy()  # callers own the result, never a view of their input
    src_proj, dst_proj = source.proj or _WEB_BASE, target.proj or _WEB_BASE
    nx, ny = x, y
    if source.id in _WEB_OFFSETS:
        nx, ny = _WEB_OFFSETS[source.id][0](nx, ny)
    if src_proj != dst_proj:
        nx, ny = _transformer(src_proj, dst_proj).transform(nx, ny)
    if target.id in _WEB_OFFSETS:
        nx, ny = _WEB_OFFSETS[target.id][1](nx, ny)
    nx, ny = np.asarray(nx, dtype=np.float64), np.asarray(ny, dtype=np.float64)
    _check_finite(x, y, nx, ny, source, target)
    return nx, ny


def _check_finite(
    x: Floats, y: Floats, nx: Floats, ny: Floats, source: CrsInfo, target: CrsInfo
) -> None:
    lost = np.isfinite(x) & np.isfinite(y) & ~(np.isfinite(nx) & np.isfinite(ny))
    if not lost.any():
        return
    index = int(np.flatnonzero(lost)[0])
    position = [float(x.flat[index]), float(y.flat[index])]
    raise ApiError(
        400,
        "TransformFailed",
        f"position {position} cannot be transformed from {source.id} to {target.id} "
        f"(outside the area where {target.id} is defined, or wrong source CRS / swapped axes?)",
        {"index": index, "position": position, "from": source.id, "to": target.id},
    )


def _transform_columns(source: CrsInfo, target: CrsInfo, coords: Floats) -> Floats:
    """Convert the x, y columns of an (N, 2+) array; z passes through untouched."""
    nx, ny = _convert(coords[:, 0], coords[:, 1], source, target)
    out = coords.copy()
    out[:, 0], out[:, 1] = nx, ny
    return out


def _swap_columns(coords: Floats) -> Floats:
    out = coords.copy()
    out[:, [0, 1]] = coords[:, [1, 0]]
    return out


def transform(obj: Any, src: str, dst: str) -> Any:
    """Convert anything spatial between two supported CRSs, keeping its kind and structure.

    - GeoJSON dict (Geometry, Feature, FeatureCollection): validated and copied; properties are
      the same objects; ``bbox`` and legacy ``crs`` members are dropped (they would be stale).
    - shapely geometry, or numpy array of geometries: converted in one vectorised pass.
    - coordinate array of shape (..., 2) or (..., 3): x, y converted, z kept.
    """
    return _map_coordinates(obj, partial(_transform_columns, resolve(src), resolve(dst)))


def swap_xy(obj: Any) -> Any:
    """Exchange the first two axes, for the edges that speak a CRS's official lat/lon order."""
    return _map_coordinates(obj, _swap_columns)


def transform_geojson(obj: Any, src: str, dst: str) -> dict[str, Any]:
    """Like :func:`transform` for a parsed JSON document of unknown shape (a request body).

    Anything that is not well-formed GeoJSON is an ``ApiError(400, "InvalidGeoJSON")`` whose
    message names the offending member, e.g. ``features[3].geometry.coordinates[0][2]``.
    Members the walk does not check (a feature's properties) are copied as they are: a body
    comes through geo.http.parse_json, whose depth limit keeps them writable (orjson writes
    only 255 levels).
    """
    fn = partial(_transform_columns, resolve(src), resolve(dst))
    return _map_geojson(obj, fn)


def _map_coordinates(obj: Any, fn: CoordFn) -> Any:
    if isinstance(obj, dict):
        return _map_geojson(obj, fn)
    if isinstance(obj, BaseGeometry) or (isinstance(obj, np.ndarray) and obj.dtype == object):
        return shapely.transform(obj, fn, include_z=None)
    return _map_array(obj, fn)


def _map_array(obj: ArrayLike, fn: CoordFn) -> NDArray[Any]:
    try:
        coords = np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "InvalidCoordinates", f"coordinates are not numbers: {exc}") from exc
    if coords.ndim == 0 or coords.shape[-1] not in (2, 3):
        raise ApiError(
            400,
            "InvalidCoordinates",
            f"coordinates must have 2 or 3 values per position, got shape {list(coords.shape)}",
        )
    return fn(coords.reshape(-1, coords.shape[-1])).reshape(coords.shape)


# --- GeoJSON ------------------------------------------------------------------------------------

# How many array levels sit above the positions in each geometry type's "coordinates".
_NESTING = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
_GEOMETRY_TYPES = (*_NESTING, "GeometryCollection")
_ROOT_TYPES = ("FeatureCollection", "Feature", *_GEOMETRY_TYPES)
# Collections inside collections are legal but never useful; the cap keeps recursion bounded.
_MAX_COLLECTION_DEPTH = 8
# Members that describe the coordinates and would be wrong after conversion.
_STALE_MEMBERS = ("bbox", "crs")
# Integers beyond this do not fit a double; the exact check rejects them.
_MAX_INT = 10**308


def _map_geojson(obj: Any, fn: CoordFn) -> dict[str, Any]:
    """Validate and copy in one walk, then convert every position in one vectorised call."""
    walker = _GeoJsonCopy()
    out = walker.root(obj)
    walker.apply(fn)
    return out


def _kind(value: Any) -> str:
    """JSON's name for a value's type: clients think in JSON, not Python."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _invalid(path: str, problem: str) -> ApiError:
    where = path or "(root)"
    return ApiError(
        400, "InvalidGeoJSON", f"{where}: {problem}", {"path": where, "problem": problem}
    )


def _member(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _excerpt(value: Any) -> str:
    """Echo bad input, but never a megabyte of it, back to the client."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _nesting_hint(kind: str) -> str:
    """Wrong bracket depth is the usual mistake; saying the expected depth shows the fix."""
    return f" ({kind} coordinates nest arrays {_NESTING[kind] + 1} deep)"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer literal too large for a double
        return False


class _GeoJsonCopy:
    """Copies a GeoJSON object while checking it, collecting its positions for one batch.

    Paths for error messages are built per ring or line, not per position: documents with
    millions of positions go through here.
    """

    def __init__(self) -> None:
        self.positions: list[list[Any]] = []

    def apply(self, fn: CoordFn) -> None:
        if not self.positions:
            return
        xy = np.array([(p[0], p[1]) for p in self.positions], dtype=np.float64)
        converted = fn(xy).tolist()
        for position, (x, y) in zip(self.positions, converted, strict=True):
            position[0], position[1] = x, y

    def root(self, obj: Any) -> dict[str, Any]:
        kind = self._type(obj, "", _ROOT_TYPES)
        if kind == "FeatureCollection":
            return self.feature_collection(obj)
        if kind == "Feature":
            return self.feature(obj, "")
        return self.geometry(obj, "", 0)

    def _type(self, obj: Any, path: str, allowed: tuple[str, ...]) -> str:
        if not isinstance(obj, dict):
            raise _invalid(path, f"expected a GeoJSON object, got {_kind(obj)}")
        if "type" not in obj:
            raise _invalid(_member(path, "type"), "missing")
        kind = obj["type"]
        if kind not in allowed:
            raise _invalid(
                _member(path, "type"),
                f"unknown or unexpected type {_excerpt(kind)} here; "
                f"expected one of {', '.join(allowed)}",
            )
        return str(kind)

    def _copy(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = dict(obj)
        for name in _STALE_MEMBERS:
            out.pop(name, None)
        return out

    def _array(self, obj: dict[str, Any], path: str, name: str) -> list[Any]:
        if name not in obj:
            raise _invalid(_member(path, name), "missing")
        value = obj[name]
        if not isinstance(value, list):
            raise _invalid(_member(path, name), f"expected an array, got {_kind(value)}")
        return value

    def feature_collection(self, obj: dict[str, Any]) -> dict[str, Any]:
        features = self._array(obj, "", "features")
        out = self._copy(obj)
        out["features"] = [
            self.feature(feature, f"features[{i}]", ("Feature",))
            for i, feature in enumerate(features)
        ]
        return out

    def feature(
        self, obj: dict[str, Any], path: str, allowed: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        if allowed:
            self._type(obj, path, allowed)
        if "geometry" not in obj:
            raise _invalid(_member(path, "geometry"), "missing (use null for no geometry)")
        out = self._copy(obj)
        if obj["geometry"] is not None:
            out["geometry"] = self.geometry(obj["geometry"], _member(path, "geometry"), 0)
        return out

    def geometry(self, obj: Any, path: str, depth: int) -> dict[str, Any]:
        kind = self._type(obj, path, _GEOMETRY_TYPES)
        out = self._copy(obj)
        if kind == "GeometryCollection":
            if depth >= _MAX_COLLECTION_DEPTH:
                raise _invalid(
                    path, f"GeometryCollections nested deeper than {_MAX_COLLECTION_DEPTH}"
                )
            members = self._array(obj, path, "geometries")
            out["geometries"] = [
                self.geometry(g, f"{_member(path, 'geometries')}[{i}]", depth + 1)
                for i, g in enumerate(members)
            ]
            return out
        if "coordinates" not in obj:
            raise _invalid(_member(path, "coordinates"), "missing")
        out["coordinates"] = self.nested(
            obj["coordinates"], _NESTING[kind], _member(path, "coordinates"), kind
        )
        return out

    def nested(self, value: Any, levels: int, path: str, kind: str) -> list[Any]:
        """Copy ``levels`` array levels of a geometry's coordinates down to the positions."""
        if levels == 0:
            return self.position(value, path, None, kind)
        if not isinstance(value, list):
            raise _invalid(path, f"expected an array, got {_kind(value)}{_nesting_hint(kind)}")
        if levels == 1:
            return [self.position(p, path, i, kind) for i, p in enumerate(value)]
        return [self.nested(v, levels - 1, f"{path}[{i}]", kind) for i, v in enumerate(value)]

    def position(self, value: Any, path: str, index: int | None, kind: str) -> list[Any]:
        if not isinstance(value, list) or not 2 <= len(value) <= 3:
            where = path if index is None else f"{path}[{index}]"
            if isinstance(value, list):
                got = f"an array of {len(value)}"
            else:
                got = _kind(value) + _nesting_hint(kind)
            raise _invalid(where, f"a position is an array of 2 or 3 numbers, got {got}")
        for number in value:
            # Fast path for what JSON parsers produce; anything else gets the exact check.
            if (type(number) is float and math.isfinite(number)) or (
                type(number) is int and -_MAX_INT < number < _MAX_INT
            ):
                continue
            self._check_numbers(value, path, index)
            break
        copy = list(value)
        self.positions.append(copy)
        return copy

    def _check_numbers(self, value: list[Any], path: str, index: int | None) -> None:
        for k, number in enumerate(value):
            if not _is_number(number) or not _is_finite(number):
                where = f"{path}[{k}]" if index is None else f"{path}[{index}][{k}]"
                problem = "not a finite number" if _is_number(number) else "not a number"
                raise _invalid(where, f"{problem} (got {_kind(number)} {_excerpt(number)})")

"""GCJ-02 ("Mars coordinates") and BD-09, the obfuscated systems of Chinese web maps.

PROJ does not know them: they are not datums but a deliberately non-linear, published offset
applied to WGS84 (GCJ-02: Amap, Tencent) and a further polar-coordinate twist (BD-09: Baidu).
Data digitised on those basemaps is 100-700 m off in Tianjin until it is brought back to
WGS84/CGCS2000, so the service converts both ways.

The forward formulas follow the widely published algorithm (Krasovsky constants, the
transformLat/transformLon polynomials, the China bounding-box test). No closed-form inverse
exists; the offsets change slowly (their Jacobians are within a few per cent of the identity),
so a fixed-point iteration converges to 1e-10 degree (about 0.01 mm) in a handful of steps.

Everything is vectorised with numpy: uploads convert millions of points, and one call over
arrays is orders of magnitude faster than a Python loop. Scalars are accepted too; they come
back as numpy float64 scalars (which are ``float``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

Floats = NDArray[np.float64]

# Krasovsky 1940 ellipsoid, as fixed by the published algorithm (not GRS80: the offsets must
# match what Amap and Baidu compute, bit for bit where possible).
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

# The box outside which GCJ-02 leaves coordinates unchanged (the published "out of China" test).
_LON_MIN, _LON_MAX = 72.004, 137.8347
_LAT_MIN, _LAT_MAX = 0.8293, 55.8271

_TOLERANCE_DEG = 1e-10
_MAX_ITERATIONS = 30


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return x, y


def _result(x: Floats, y: Floats) -> tuple[Any, Any]:
    """Give 0-d results back as scalars so that scalar callers get scalars."""
    return x[()], y[()]


def in_china(lon: ArrayLike, lat: ArrayLike) -> Any:
    """True where GCJ-02 applies an offset; elsewhere the published algorithm is the identity."""
    x, y = _arrays(lon, lat)
    return ((x >= _LON_MIN) & (x <= _LON_MAX) & (y >= _LAT_MIN) & (y <= _LAT_MAX))[()]


def _polynomials(x: Floats, y: Floats) -> tuple[Floats, Floats]:
    """The published transformLon/transformLat, sharing their common term (hot path)."""
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    lat += common
    lat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    lat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    lon += common
    lon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    lon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return lon, lat


def _gcj02_offset(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    """The GCJ-02 shift in degrees, without the box test (the inverse iterates on it)."""
    dlon, dlat = _polynomials(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(radlat) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """WGS84 (or CGCS2000) lon/lat to GCJ-02; points outside the China box are unchanged."""
    x, y = _arrays(lon, lat)
    dlon, dlat = _gcj02_offset(x, y)
    inside = in_china(x, y)
    return _result(np.where(inside, x + dlon, x), np.where(inside, y + dlat, y))


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """GCJ-02 to WGS84 by fixed-point iteration, so that a round trip is exact to < 1 mm.

    The box test is applied to the GCJ-02 input; within a few hundred metres of the box edge
    (open sea and deserts outside the country) the forward transform is discontinuous and no
    exact inverse exists there.
    """
    gx, gy = _arrays(lon, lat)
    x, y = gx.copy(), gy.copy()
    for _ in range(_MAX_ITERATIONS):
        dlon, dlat = _gcj02_offset(x, y)
        ex, ey = x + dlon - gx, y + dlat - gy
        x, y = x - ex, y - ey
        if _converged(ex, ey):
            break
    inside = in_china(gx, gy)
    return _result(np.where(inside, x, gx), np.where(inside, y, gy))


def _bd09_forward(x: Floats, y: Floats) -> tuple[Floats, Floats]:
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """GCJ-02 to BD-09 (Baidu). The published formula has no box test: it applies everywhere."""
    return _result(*_bd09_forward(*_arrays(lon, lat)))


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """BD-09 to GCJ-02, refined by fixed-point iteration.

    The commonly quoted closed-form "inverse" is only an approximation (errors of centimetres
    to decimetres); it serves here as the starting point.
    """
    bx, by = _arrays(lon, lat)
    sx, sy = bx - 0.0065, by - 0.006
    z = np.sqrt(sx * sx + sy * sy) - 0.00002 * np.sin(sy * _X_PI)
    theta = np.arctan2(sy, sx) - 0.000003 * np.cos(sx * _X_PI)
    x, y = z * np.cos(theta), z * np.sin(theta)
    for _ in range(_MAX_ITERATIONS):
        fx, fy = _bd09_forward(x, y)
        ex, ey = fx - bx, fy - by
        x, y = x - ex, y - ey
        if _converged(ex, ey):
            break
    return _result(x, y)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """WGS84 to BD-09: Baidu's offset is defined on top of GCJ-02."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """BD-09 to WGS84 through GCJ-02."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def _converged(ex: Floats, ey: Floats) -> bool:
    """NaN corrections count as converged: NaN input stays NaN and must not spin the loop."""
    return not (np.any(np.abs(ex) >= _TOLERANCE_DEG) or np.any(np.abs(ey) >= _TOLERANCE_DEG))

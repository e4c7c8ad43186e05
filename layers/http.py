"""Request and response plumbing the layer routes share: formats, bbox and crs parameters,
links. JSON bodies (geo.http) and preconditions (geo.preconditions) are the core's."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import Request
from numpy.typing import NDArray

from geo import crs
from geo.errors import ApiError

GEOJSON = "application/geo+json"
Floats = NDArray[np.float64]


def wants(request: Request, allowed: tuple[str, ...] = ("json", "html")) -> str:
    """The output format: ``f=`` when given, HTML for browsers, JSON for everything else
    (including ``Accept: */*``)."""
    fmt = request.query_params.get("f")
    if fmt:
        fmt = {"geojson": "json", "application/geo+json": "json"}.get(fmt, fmt)
        if fmt not in allowed:
            raise ApiError(
                400, "InvalidParameterValue", f"f must be one of {', '.join(allowed)}, not {fmt!r}"
            )
        return fmt
    accept = request.headers.get("accept", "")
    if "html" in allowed and "text/html" in accept.split(",")[0]:
        return "html"
    return "json"


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# Credentials a request may carry in its query string; links never repeat them (they would
# land in documents, caches, browser history and logs). A client that authenticates with
# `?key=` adds it to each link it follows, or better sends it as a header.
CREDENTIAL_PARAMETERS = ("key", "token")


def self_url(request: Request, **overrides: Any) -> str:
    """The request URL with some query parameters replaced (None removes one), and without
    the caller's credentials."""
    url = request.url.remove_query_params(CREDENTIAL_PARAMETERS)
    removed = [k for k, v in overrides.items() if v is None]
    if removed:
        url = url.remove_query_params(removed)
    added = {k: str(v) for k, v in overrides.items() if v is not None}
    if added:
        url = url.include_query_params(**added)
    return str(url)


def parse_bbox(value: str, bbox_crs: str | None) -> tuple[float, float, float, float]:
    """``bbox`` (4 numbers, or 6 with heights) in ``bbox-crs`` to a lon/lat box in EPSG:4490.

    Axis order follows the CRS's definition only when OGC says so: bbox-crs=EPSG:4490 by URI
    means lat/lon. The corners' images alone would cut off curved edges of a projected box, so
    the outline is densified before converting.
    """
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError as exc:
        raise ApiError(400, "InvalidParameterValue", f"bbox must be numbers: {value!r}") from exc
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(map(_finite, numbers)):
        raise ApiError(400, "InvalidParameterValue", "bbox needs 4 (or 6) finite numbers")
    info = crs.resolve(bbox_crs or crs.DEFAULT_CRS)
    x0, y0, x1, y1 = numbers
    if info.yx:
        x0, y0, x1, y1 = y0, x0, y1, x1
    if x0 > x1 or y0 > y1:
        raise ApiError(400, "InvalidParameterValue", "bbox minimum exceeds its maximum")
    if info.id in ("CRS84", "EPSG:4326", "EPSG:4490"):
        return x0, y0, x1, y1
    xs, ys = _outline(x0, y0, x1, y1)
    lon, lat = crs.transform_xy(xs, ys, info.id, crs.STORAGE_CRS)
    box = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    if not all(map(_finite, box)):
        raise ApiError(
            400,
            "TransformFailed",
            f"bbox {value!r} has no finite image in {crs.STORAGE_CRS}; wrong bbox-crs?",
        )
    return box


def _outline(x0: float, y0: float, x1: float, y1: float) -> tuple[Floats, Floats]:
    """Points along the box's four edges, 16 segments each.

    Written as a*(1-t) + b*t, which stays finite for any finite corners, where shapely's
    segmentize of a box from 0 to 1e308 failed (its segment length overflows) with a 500."""
    t = np.linspace(0.0, 1.0, 17)
    along_x, along_y = x0 * (1 - t) + x1 * t, y0 * (1 - t) + y1 * t
    xs = np.concatenate([along_x, np.full_like(t, x1), along_x[::-1], np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y0), along_y, np.full_like(t, y1), along_y[::-1]])
    return xs, ys


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


def content_crs(target: str) -> dict[str, str]:
    return {"Content-Crs": f"<{crs.resolve(target).uri}>"}

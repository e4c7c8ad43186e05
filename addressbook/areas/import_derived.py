"""Approximate polygons for subdistricts and communities, which the public data does not have.

Only the 16 districts come with real boundaries. So that every address can still be told its
subdistrict and community by location, each level is split among its children by the Voronoi
cells of their points: subdistrict cells clipped to the district polygon, community cells
clipped to their subdistrict's cell. The levels therefore nest exactly and tile the district.
Children without a usable point (no centroid in the table, or one outside the parent) get a
deterministic point spread over the parent by a Halton sequence, so reruns give the same cells.
Everything made here is flagged ``source = 'derived-voronoi'``, and ``placement`` says whether
the cell is drawn around a location on record or around a spread point (an estimate, which
answers name: addressbook.areas.coverage).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPoint, MultiPolygon

from addressbook.areas.area import Area

DERIVED = "derived-voronoi"


def halton(count: int, base: int, start: int = 1) -> np.ndarray:
    """Van der Corput radical inverses: evenly spread, no randomness to seed."""
    out = np.zeros(count)
    for i in range(count):
        n, f, value = start + i, 1.0, 0.0
        while n > 0:
            f /= base
            value += f * (n % base)
            n //= base
        out[i] = value
    return out


def spread_points(region: Any, count: int, salt: str) -> np.ndarray:
    """`count` points inside `region`, evenly spread, the same for the same salt."""
    if count == 0:
        return np.empty(0, dtype=object)
    minx, miny, maxx, maxy = region.bounds
    # Fill ratio of the bounding box decides how many candidates one needs; grow until enough.
    start = 1 + zlib.crc32(salt.encode()) % 997
    batch = max(64, count * 4)
    found: list[Any] = []
    shapely.prepare(region)
    while len(found) < count:
        x = minx + halton(batch, 2, start) * (maxx - minx)
        y = miny + halton(batch, 3, start) * (maxy - miny)
        inside = shapely.contains_xy(region, x, y)
        found.extend(shapely.points(x[inside], y[inside]))
        start += batch
        if start > 10_000_000:  # a sliver: fall back to a point that is surely inside
            found.extend([region.point_on_surface()] * (count - len(found)))
    return np.array(found[:count], dtype=object)


def _as_multipolygon(geom: Any) -> MultiPolygon | None:
    polygons = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]
    return MultiPolygon(polygons) if polygons else None


def split_region(region: Any, points: Sequence[Any]) -> list[MultiPolygon | None]:
    """The Voronoi cell of each point, clipped to `region`, in the order of the points."""
    if len(points) == 1:
        return [_as_multipolygon(region)]
    cells = shapely.voronoi_polygons(MultiPoint(list(points)), extend_to=region, ordered=True)
    parts = shapely.get_parts(cells)
    clipped = shapely.intersection(parts, region)
    return [_as_multipolygon(c) for c in clipped]


def _points_inside(children: list[Area], region: Any, salt: str) -> tuple[list[Any], list[bool]]:
    """Each child's own centroid when it lies inside the region, else a spread point; and
    whether the point is the child's own (on record)."""
    shapely.prepare(region)
    seen: set[tuple[float, float]] = set()
    usable: list[bool] = []
    for child in children:
        c = child.centroid
        key = (c.x, c.y) if c is not None else None
        ok = c is not None and key not in seen and region.contains(c)
        if ok and key is not None:
            seen.add(key)
        usable.append(ok)
    spread = iter(spread_points(region, usable.count(False), salt))
    points = [
        child.centroid if ok else next(spread) for child, ok in zip(children, usable, strict=True)
    ]
    return points, usable


def _split(parent_region: Any, children: list[Area], salt: str) -> None:
    points, recorded = _points_inside(children, parent_region, salt)
    for child, point, on_record, cell in zip(
        children, points, recorded, split_region(parent_region, points), strict=True
    ):
        child.centroid = point
        child.geom = cell
        child.source = DERIVED
        child.placement = "recorded" if on_record else "spread"


def derive_polygons(areas: list[Area]) -> None:
    """Give current subdistricts and communities nested Voronoi polygons (in place)."""
    current = [a for a in areas if a.current]
    children: dict[str, list[Area]] = defaultdict(list)
    for area in current:
        if area.parent_code:
            children[area.parent_code].append(area)
    for district in (a for a in current if a.level == "district" and a.geom is not None):
        subdistricts = sorted(children[district.code], key=lambda a: a.code)
        if not subdistricts:
            continue
        _split(district.geom, subdistricts, district.code)
        for subdistrict in subdistricts:
            communities = sorted(children[subdistrict.code], key=lambda a: a.code)
            if communities and subdistrict.geom is not None:
                _split(subdistrict.geom, communities, subdistrict.code)

"""Data the layers benchmarks generate (deterministic, inside Tianjin) and load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.common import BenchContext

CENTRE = (117.2, 39.13)
DEPARTMENT = "bench-layers"


def polygons_geojson(path: Path, n: int, seed: int = 7) -> None:
    """``n`` octagons ~200 m across spread over the city, with a string, an integer and a float
    attribute, written as one FeatureCollection."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(116.8, 118.0, n)
    y = rng.uniform(38.7, 40.1, n)
    angles = np.linspace(0, 2 * np.pi, 9)[:-1]
    dx, dy = 0.001 * np.cos(angles), 0.001 * np.sin(angles)
    with path.open("wb") as f:
        f.write(b'{"type":"FeatureCollection","features":[')
        for start in range(0, n, 10_000):
            chunk = []
            for i in range(start, min(n, start + 10_000)):
                ring = np.round(np.column_stack([x[i] + dx, y[i] + dy]), 6).tolist()
                ring.append(ring[0])
                chunk.append(
                    {
                        "type": "Feature",
                        "properties": {"name": f"p{i}", "pop": i % 1000, "area": i / 3},
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                )
            f.write((b"," if start else b"") + b",".join(orjson.dumps(c) for c in chunk))
        f.write(b"]}")


def points_csv(path: Path, n: int, seed: int = 11, spread: float = 0.05) -> tuple[Any, Any]:
    """``n`` points clustered around the centre; returns their coordinates too."""
    rng = np.random.default_rng(seed)
    lon = rng.normal(CENTRE[0], spread, n)
    lat = rng.normal(CENTRE[1], spread, n)
    kind = rng.integers(0, 12, n)
    with path.open("w") as f:
        f.write("name,kind,value,lon,lat\n")
        for i in range(0, n, 100_000):
            rows = zip(range(i, min(n, i + 100_000)), kind[i:], lon[i:], lat[i:], strict=False)
            f.write("".join(f"p{j},{k},{j % 100},{a:.7f},{b:.7f}\n" for j, k, a, b in rows))
    return lon, lat


def upload_file(ctx: BenchContext, layer: str, path: Path, **opts: Any) -> dict[str, Any]:
    """Load a file through our own pipeline (in-process), as a public layer of the bench
    department."""
    from sqlalchemy import select

    from geo.auth import Principal
    from geo.db import session_scope
    from geo.departments import create_department
    from geo.models import Department
    from layers.ingest.pipeline import UploadOptions, upload

    with session_scope() as session:
        if session.scalar(select(Department).where(Department.code == DEPARTMENT)) is None:
            create_department(session, "图层基准", DEPARTMENT)
    with session_scope() as session:
        who = Principal(DEPARTMENT, "editor", "bench")
        options = UploadOptions(mode="create", title=layer, access="public", **opts)
        return upload(session, who, layer, path, path.name, options)

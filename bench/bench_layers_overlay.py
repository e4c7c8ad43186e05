"""Overlay: counting 2,000,000 points into 10,000 grid cells, us (POST /overlay, aggregate,
GeoJSON out, over HTTP) against geopandas `sjoin` on the same data already in memory (the join
and the per-cell count only: no loading, no output). Target (issue 4): faster than geopandas.
"""

from __future__ import annotations

import statistics
import time

import geopandas as gpd
import httpx
import orjson
import shapely

from bench.common import BenchContext, console, running_server
from bench.layers_data import CENTRE, points_csv, upload_file

POINTS = 2_000_000
SIDE = 100  # 100 x 100 = 10,000 cells
SPAN = 0.5  # degrees covered by the grid, centred on the city centre
ROUNDS = 5


def grid_cells() -> list[shapely.Polygon]:
    x0, y0 = CENTRE[0] - SPAN / 2, CENTRE[1] - SPAN / 2
    step = SPAN / SIDE
    return [
        shapely.box(x0 + i * step, y0 + j * step, x0 + (i + 1) * step, y0 + (j + 1) * step)
        for j in range(SIDE)
        for i in range(SIDE)
    ]


def run(ctx: BenchContext) -> None:
    points_path = ctx.root / "overlay-points.csv"
    lon, lat = points_csv(points_path, POINTS, seed=5, spread=0.08)
    upload_file(
        ctx,
        "bench_overlay_points",
        points_path,
        lon_column="lon",
        lat_column="lat",
        geometry_type="Point",
        properties=[
            {"name": "name", "type": "string"},
            {"name": "kind", "type": "integer"},
            {"name": "value", "type": "number"},
        ],
    )
    cells = grid_cells()
    grid_path = ctx.root / "overlay-grid.geojson"
    grid_path.write_bytes(
        orjson.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": shapely.geometry.mapping(c),
                        "properties": {"cell": i},
                    }
                    for i, c in enumerate(cells)
                ],
            }
        )
    )
    upload_file(ctx, "bench_overlay_grid", grid_path)
    body = {
        "layer": "bench_overlay_points",
        "other": "bench_overlay_grid",
        "output": "aggregate",
        "limit": SIDE * SIDE,
    }
    ours: list[float] = []
    with running_server(ctx, workers=1) as base:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            r = httpx.post(f"{base}/overlay", json=body, timeout=600)
            ours.append(time.perf_counter() - started)
            r.raise_for_status()
    our_counts = {f["properties"]["cell"]: f["properties"]["count"] for f in r.json()["features"]}

    # The CSV carries 7 decimals: geopandas gets exactly the coordinates we loaded.
    xs = [float(f"{v:.7f}") for v in lon]
    ys = [float(f"{v:.7f}") for v in lat]
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xs, ys), crs="EPSG:4490")
    grid = gpd.GeoDataFrame({"cell": range(len(cells))}, geometry=cells, crs="EPSG:4490")
    peer: list[float] = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        joined = gpd.sjoin(points, grid, predicate="intersects", how="inner")
        counts = joined.groupby("cell").size()
        peer.append(time.perf_counter() - started)
    theirs = counts.to_dict()
    differ = [c for c in range(len(cells)) if our_counts.get(c, 0) != theirs.get(c, 0)]
    console.print(
        f"{sum(our_counts.values()):,} points counted in {len(cells):,} cells; "
        f"cells whose counts differ from geopandas: {len(differ)}"
    )
    best, other = statistics.median(ours), statistics.median(peer)
    console.print(f"ours {ours}, geopandas {peer}")
    assert not differ, differ[:10]
    ctx.report(
        "overlay: 2M points into 10k cells",
        f"{best:.2f} s (median of {ROUNDS}, HTTP + GeoJSON out)",
        "geopandas sjoin + groupby",
        f"{other:.2f} s (median of {ROUNDS}, in memory)",
        f"{other / best:.2f}x faster than geopandas"
        if best < other
        else f"{best / other:.2f}x SLOWER than geopandas",
    )

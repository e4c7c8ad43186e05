"""Items queries: bbox, limit=1000, 8 concurrent clients (wrk), us against tipg on the same
table. Target (issue 4): at least 1.5x tipg's throughput.

Data: 500,000 points clustered around the centre, uploaded through our pipeline. Both servers
run 2 workers and return the same properties (name, kind, value); both compute numberMatched.
Besides requests/s, bench_tiles.measure reports the CPU (servers + PostgreSQL) per request, the
figure that depends least on what else the shared machine runs. (wrk and the CPU accounting
are bench_tiles', shared rather than copied.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np

from bench import common
from bench.bench_tiles import Figures, measure
from bench.common import BenchContext, console, running_server
from bench.layers_data import CENTRE, points_csv, upload_file

N = 500_000
LAYER = "bench_items"
TABLE = f"layerdata.l_{LAYER}"
BOXES = 400
HALF = 0.004  # bbox half-size in degrees: ~1,500-2,500 points near the centre


def boxes() -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(3)
    cx = rng.normal(CENTRE[0], 0.02, BOXES)
    cy = rng.normal(CENTRE[1], 0.02, BOXES)
    return [(x - HALF, y - HALF, x + HALF, y + HALF) for x, y in zip(cx, cy, strict=True)]


def _bbox(b: tuple[float, float, float, float]) -> str:
    return ",".join(f"{v:.6f}" for v in b)


@contextmanager
def tipg_server(ctx: BenchContext) -> Iterator[str]:
    env = {
        "TIPG_DB_SCHEMAS": json.dumps(["layerdata"]),
        "TIPG_DB_TABLES": json.dumps([TABLE]),
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
        f"TIPG_TABLE_CONFIG__{TABLE.replace('.', '_')}__PROPERTIES": (
            '["id", "name", "kind", "value"]'
        ),
    }
    with common.tipg_server(ctx, env) as base:
        yield base


def run(ctx: BenchContext) -> None:
    path = ctx.root / "items-points.csv"
    points_csv(path, N)
    report = upload_file(ctx, LAYER, path, lon_column="lon", lat_column="lat")
    console.print(f"{LAYER}: {report['features']} points")
    ours_paths = [f"/collections/{LAYER}/items?bbox={_bbox(b)}&limit=1000" for b in boxes()]
    tipg_paths = [f"/collections/{TABLE}/items?bbox={_bbox(b)}&limit=1000" for b in boxes()]
    with tipg_server(ctx) as tipg:
        sample = httpx.get(tipg + tipg_paths[0], timeout=60).json()
        peer = measure(ctx, tipg, tipg_paths, "tipg items")
    with running_server(ctx, workers=2) as ours:
        mine = httpx.get(ours + ours_paths[0], timeout=60).json()
        assert mine["numberReturned"] == len(sample["features"]) == 1000, (
            mine["numberReturned"],
            len(sample["features"]),
        )
        assert mine["numberMatched"] == sample["numberMatched"], (
            mine["numberMatched"],
            sample["numberMatched"],
        )
        us = measure(ctx, ours, ours_paths, "us items")
    _report(ctx, us, peer)


def _report(ctx: BenchContext, us: Figures, peer: Figures) -> None:
    ratio = us.tiles_per_s / peer.tiles_per_s if peer.tiles_per_s else float("nan")
    ctx.report(
        "items bbox limit=1000 (8 conns)",
        us.line().replace("tiles/s", "req/s").replace("tile", "req"),
        "tipg",
        peer.line().replace("tiles/s", "req/s").replace("tile", "req"),
        f"{ratio:.2f}x tipg (target >= 1.5x)",
    )
    if us.errors or peer.errors:
        console.print(f"[red]non-2xx: us {us.errors}, tipg {peer.errors}[/red]")

"""`python -m bench tiles_aggregated`: clustered z10-z12 tiles of the 2,000,000-point layer,
uncached, beside tipg's truncated tiles (bench.tiles_aggregated does the measuring).

The layers are bench_tiles' (loaded by its loader unless an earlier module of the same run
loaded them). Target (issue 12): p95 < 150 ms, and every tile's counts sum to its points.
"""

from __future__ import annotations

import statistics

import psycopg

from bench.bench_tiles import TABLES, environment, load_layers, tipg_server
from bench.common import BenchContext, percentile, running_server
from bench.tiles_aggregated import LAYER, measure_aggregated, tipg_baseline

TARGET_P95_MS = 150.0


def _loaded(ctx: BenchContext) -> bool:
    with psycopg.connect(ctx.psycopg_url) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (TABLES[LAYER],)).fetchone()
    return bool(row and row[0])


def run(ctx: BenchContext) -> None:
    if not _loaded(ctx):
        load_layers(ctx)
    with (
        environment(GEO_TILE_CACHE_MB="0", GEO_TILE_DISK_CACHE=""),
        running_server(ctx) as ours,
    ):
        figures = measure_aggregated(ctx, ours)
    with tipg_server(ctx) as tipg:
        samples, most = tipg_baseline(tipg, figures.clustered_tiles)
    peer = (
        f"p50 {statistics.median(samples):.1f} ms, p95 {percentile(samples, 95):.1f} ms, "
        f"at most {most:,} points shown per tile"
    )
    met = figures.p95_ms < TARGET_P95_MS and not figures.mismatches
    ctx.report(
        "aggregated z10-12 tiles, 2,000,000 points, uncached",
        figures.line(),
        "tipg (truncates)",
        peer,
        f"target p95 < {TARGET_P95_MS:.0f} ms with exact counts: {'yes' if met else 'NO'}; "
        f"cluster build {figures.build_s:.1f} s once per version",
    )

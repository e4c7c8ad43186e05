"""Aggregated z10-z12 tiles of the 2,000,000-point layer (issue 12, part 3), uncached.

`measure_aggregated(ctx, base)` takes a running server whose tile cache is off
(GEO_TILE_CACHE_MB=0, no disk cache) on the bench database with bench_tiles' layers loaded, and:

- makes the layer version's cluster build with one request (timed apart: once per version);
- requests every tile with data at z10-z12 around the centre, one at a time, PASSES times
  (shuffled), and reports the median and p95 of those past the cap (the clustered ones);
- checks each clustered tile's sum of `count` against an exact COUNT in PostGIS of the points
  inside the tile (half-open, as the cells are cut).

`tipg_baseline(base, tiles)` times the same tiles from tipg, which truncates each to its first
10,000 points: the peer figure, and what the map showed before.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import httpx
import mapbox_vector_tile
import morecantile
import numpy as np
import psycopg

from bench.bench_tiles import CENTRE, TABLES
from bench.common import BenchContext, console, percentile

LAYER = "bench_points"
ZOOMS = (10, 11, 12)
# Around the centre, 6 standard deviations of the bench cluster (bench_tiles.SPREAD_DEG) each way.
REACH_DEG = 0.25
PASSES = 5

# Points of a table inside tile (z, x, y): Web Mercator, x half-open on the right, y on the
# bottom, as tiles.aggregate cuts its cells; the GiST test first so the index finds candidates.
EXACT_COUNT_SQL = (
    "SELECT count(*) FROM (SELECT ST_Transform(geom, 3857) AS p FROM {table} "
    "WHERE geom && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4490)) AS s, "
    "ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e "
    "WHERE ST_X(p) >= ST_XMin(e) AND ST_X(p) < ST_XMax(e) "
    "AND ST_Y(p) > ST_YMin(e) AND ST_Y(p) <= ST_YMax(e)"
)


@dataclass
class AggregatedFigures:
    tiles: int
    build_s: float
    clustered_tiles: list[morecantile.Tile] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)
    plain_ms: list[float] = field(default_factory=list)
    # (tile, sum of counts, exact count) for every clustered tile whose sums differ.
    mismatches: list[tuple[str, int, int]] = field(default_factory=list)
    points_checked: int = 0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95_ms(self) -> float:
        return percentile(self.samples_ms, 95)

    def line(self) -> str:
        check = "exact" if not self.mismatches else f"{len(self.mismatches)} MISMATCHED"
        return (
            f"{len(self.clustered_tiles)} clustered tiles: p50 {self.median_ms:.1f} ms, "
            f"p95 {self.p95_ms:.1f} ms; count sums {check} ({self.points_checked:,} points)"
        )


def candidate_tiles() -> list[morecantile.Tile]:
    tms = morecantile.tms.get("WebMercatorQuad")
    west, south = CENTRE[0] - REACH_DEG, CENTRE[1] - REACH_DEG
    east, north = CENTRE[0] + REACH_DEG, CENTRE[1] + REACH_DEG
    return list(tms.tiles(west, south, east, north, list(ZOOMS)))


def _path(tile: morecantile.Tile) -> str:
    return f"/tiles/{LAYER}/{tile.z}/{tile.x}/{tile.y}.mvt"


def _counts(data: bytes) -> tuple[int, bool]:
    """(sum of counts or features, clustered?) of one tile."""
    features = mapbox_vector_tile.decode(data).get(LAYER, {"features": []})["features"]
    clustered = bool(features) and "count" in features[0]["properties"]
    if clustered:
        return sum(f["properties"]["count"] for f in features), True
    return len(features), False


def measure_aggregated(ctx: BenchContext, base: str) -> AggregatedFigures:
    tiles = candidate_tiles()
    with httpx.Client(base_url=base, timeout=300) as client:
        started = time.perf_counter()
        first = client.get(_path(morecantile.tms.get("WebMercatorQuad").tile(*CENTRE, 10)))
        build_s = time.perf_counter() - started
        first.raise_for_status()
        sums: dict[morecantile.Tile, tuple[int, bool]] = {}
        for tile in tiles:
            response = client.get(_path(tile))
            if response.status_code == 200:
                sums[tile] = _counts(response.content)
        with_data = list(sums)
        clustered = [t for t, (_, c) in sums.items() if c]
        figures = AggregatedFigures(len(with_data), build_s, clustered)
        rng = np.random.default_rng(12)
        for _ in range(PASSES):
            for i in rng.permutation(len(with_data)):
                tile = with_data[i]
                t0 = time.perf_counter()
                client.get(_path(tile)).raise_for_status()
                elapsed = (time.perf_counter() - t0) * 1000
                (figures.samples_ms if sums[tile][1] else figures.plain_ms).append(elapsed)
    with psycopg.connect(ctx.psycopg_url, autocommit=True) as conn:
        query = EXACT_COUNT_SQL.format(table=TABLES[LAYER])
        for tile, (total, clustered) in sums.items():
            if not clustered:
                continue
            row = conn.execute(query, {"z": tile.z, "x": tile.x, "y": tile.y}).fetchone()
            exact = int(row[0]) if row else 0
            figures.points_checked += exact
            if exact != total:
                figures.mismatches.append((f"{tile.z}/{tile.x}/{tile.y}", total, exact))
    console.print(
        f"aggregated z10-12: {figures.tiles} tiles with data, first request (cluster build, "
        f"once per layer version) {figures.build_s:.1f} s; {figures.line()}"
        + (
            f"; {len(figures.plain_ms)} samples under the cap: "
            f"p50 {statistics.median(figures.plain_ms):.1f} ms"
            if figures.plain_ms
            else ""
        )
    )
    for name, total, exact in figures.mismatches:
        console.print(f"[red]  {name}: counts sum to {total}, PostGIS counts {exact}[/red]")
    return figures


def tipg_baseline(base: str, tiles: list[morecantile.Tile]) -> tuple[list[float], int]:
    """tipg's latency on the same tiles (PASSES times, one at a time), and the most features
    any of its tiles shows (its cap: the rest of the points are silently left out)."""
    samples: list[float] = []
    most = 0
    with httpx.Client(base_url=base, timeout=300) as client:
        for n in range(PASSES):
            for tile in tiles:
                path = (
                    f"/collections/{TABLES[LAYER]}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}"
                )
                t0 = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - t0) * 1000)
                if n == 0 and response.status_code == 200:
                    layers = mapbox_vector_tile.decode(response.content)
                    most = max([most, *(len(v["features"]) for v in layers.values())])
    return samples, most

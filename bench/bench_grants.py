"""What an area-scoped grant costs (issue 11): items pages and tiles read by a department
whose grant covers an irregular area, against the layer's owner, on the same server, the same
requests interleaved. Target: the grantee within 1.3x of the owner (medians).

Data: 500,000 points clustered around the centre (bench.layers_data), a private layer. The
grantee's area is a 720-vertex polygon (a wobbly disc of about 0.06 degrees around the centre,
as detailed as a district boundary); the boxes and tiles fall inside and across its edge. Tiles
are rendered, not cached (GEO_TILE_CACHE_MB=0), each asked once per caller.
"""

from __future__ import annotations

import math
import statistics
import time

import httpx
import numpy as np

from bench.bench_tiles import environment
from bench.common import BenchContext, console, running_server
from bench.layers_data import CENTRE, DEPARTMENT, points_csv, upload_file

N = 500_000
LAYER = "bench_grants"
GRANTEE = "bench-grantee"
REQUESTS = 300
HALF = 0.004  # items bbox half-size in degrees: ~1,000-2,500 points near the centre
ZOOM = 15
TARGET = 1.3


def area() -> dict[str, object]:
    """A polygon of 720 vertices around the centre, its radius wobbling between 0.05 and 0.07."""
    ring = []
    for i in range(720):
        angle = 2 * math.pi * i / 720
        radius = 0.06 + 0.01 * math.sin(7 * angle)
        ring.append([CENTRE[0] + radius * math.cos(angle), CENTRE[1] + radius * math.sin(angle)])
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def _places(n: int) -> list[tuple[float, float]]:
    rng = np.random.default_rng(5)
    return list(zip(rng.normal(CENTRE[0], 0.03, n), rng.normal(CENTRE[1], 0.03, n), strict=True))


def item_paths() -> list[str]:
    return [
        f"/collections/{LAYER}/items?limit=1000&bbox={x - HALF:.6f},{y - HALF:.6f},"
        f"{x + HALF:.6f},{y + HALF:.6f}"
        for x, y in _places(REQUESTS)
    ]


def tile_paths() -> list[str]:
    n = 2**ZOOM
    tiles = set()
    for lon, lat in _places(REQUESTS * 2):
        x = int((lon + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
        tiles.add((x, y))
    return [f"/tiles/{LAYER}/{ZOOM}/{x}/{y}.mvt" for x, y in sorted(tiles)[:REQUESTS]]


def _prepare(ctx: BenchContext, base: str) -> tuple[dict[str, str], dict[str, str]]:
    """Keys of the owner and of the grantee (through the API), and the grant."""
    admin = {"Authorization": f"Bearer {ctx.admin_key}"}
    with httpx.Client(base_url=base, headers=admin, timeout=60) as client:
        client.post("/departments", json={"name": "授权基准", "code": GRANTEE}).raise_for_status()
        keys = []
        for code in (DEPARTMENT, GRANTEE):
            r = client.post(f"/departments/{code}/keys", json={"role": "viewer"})
            r.raise_for_status()
            keys.append({"Authorization": f"Bearer {r.json()['key']}"})
        client.patch(f"/collections/{LAYER}", json={"access": "private"}).raise_for_status()
        body = {"grantee": GRANTEE, "level": "view", "area": area()}
        client.post(f"/collections/{LAYER}/grants", json=body).raise_for_status()
    return keys[0], keys[1]


def _timed(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    r = client.get(path, headers=headers)
    elapsed = time.perf_counter() - start
    assert r.status_code in (200, 204), (r.status_code, r.text[:200])
    return elapsed, len(r.content)


def _interleaved(
    base: str, paths: list[str], owner: dict[str, str], grantee: dict[str, str]
) -> tuple[list[float], list[float], int, int]:
    """Each path asked by both, alternating who goes first, so drift hits both alike."""
    times: dict[str, list[float]] = {"owner": [], "grantee": []}
    sizes = {"owner": 0, "grantee": 0}
    callers = {"owner": owner, "grantee": grantee}
    with httpx.Client(base_url=base, timeout=60) as client:
        for i, path in enumerate(paths):
            order = ("owner", "grantee") if i % 2 else ("grantee", "owner")
            for who in order:
                elapsed, size = _timed(client, path, callers[who])
                times[who].append(elapsed)
                sizes[who] += size
    return times["owner"], times["grantee"], sizes["owner"], sizes["grantee"]


def _figures(samples: list[float]) -> str:
    median = statistics.median(samples) * 1000
    p95 = float(np.percentile(samples, 95)) * 1000
    return f"median {median:.1f} ms, p95 {p95:.1f} ms"


def _report(ctx: BenchContext, what: str, owner: list[float], grantee: list[float]) -> None:
    ratio = statistics.median(grantee) / statistics.median(owner)
    p95_ratio = float(np.percentile(grantee, 95) / np.percentile(owner, 95))
    verdict = "ok" if ratio <= TARGET else "over"
    ctx.report(
        what,
        f"grantee {_figures(grantee)}",
        "owner",
        _figures(owner),
        f"median {ratio:.2f}x, p95 {p95_ratio:.2f}x owner (target <= {TARGET}x: {verdict})",
    )


def run(ctx: BenchContext) -> None:
    path = ctx.root / "grants-points.csv"
    points_csv(path, N)
    report = upload_file(ctx, LAYER, path, lon_column="lon", lat_column="lat")
    console.print(f"{LAYER}: {report['features']} points")
    with environment(GEO_TILE_CACHE_MB="0"), running_server(ctx, workers=1) as base:
        owner, grantee = _prepare(ctx, base)
        items, tiles = item_paths(), tile_paths()
        _interleaved(base, items[:20], owner, grantee)  # warm-up: connections, plans, pages
        o, g, osize, gsize = _interleaved(base, items, owner, grantee)
        console.print(f"items: owner {osize / 1e6:.1f} MB, grantee {gsize / 1e6:.1f} MB in total")
        _report(ctx, f"items bbox limit=1000, {len(items)} pages", o, g)
        o, g, osize, gsize = _interleaved(base, tiles, owner, grantee)
        console.print(f"tiles: owner {osize / 1e6:.1f} MB, grantee {gsize / 1e6:.1f} MB in total")
        _report(ctx, f"tiles z{ZOOM}, {len(tiles)} rendered (no cache)", o, g)

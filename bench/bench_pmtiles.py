"""Offline packages (issue 12 part 5): `geo tiles export` at z8-16 on the sample data `make run`
loads, beside the way to the same tiles without it: asking the running service for each one
over HTTP (4 connections to 2 workers), every tile of the archive's area.

Both start with cold tile caches (a fresh export process, a fresh server) and warm cluster
builds, render the same tiles with the same engine, and the bench checks that a sample of the
archive's tiles are the served bytes. The export's time includes its process start.
"""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mapbox_vector_tile
from pmtiles.reader import MmapSource, Reader, all_tiles

from bench.common import BenchContext, console, running_server
from tiles.pmtiles_export import zoom_tiles

ZOOMS = (8, 16)
CHECKED = 200
# (what, layers, bbox): the sample's thematic layer over its own extent; the inner districts
# with every sample layer on top.
EXPORTS = (
    ("emergency_shelters", "emergency_shelters", None),
    (
        "inner districts, 4 layers",
        "districts,grids,addresses,emergency_shelters",
        "117.10,39.05,117.28,39.19",
    ),
)


def _export(ctx: BenchContext, layers: str, bbox: str | None, out: Path) -> float:
    argv = [sys.executable, "-m", "geo.cli", "tiles", "export", layers, str(out)]
    argv += ["--zooms", f"{ZOOMS[0]}-{ZOOMS[1]}"] + (["--bbox", bbox] if bbox else [])
    started = time.perf_counter()
    subprocess.run(argv, env=ctx.env(), check=True, capture_output=True)
    return time.perf_counter() - started


def _fetch_all(base: str, layers: str, bounds: tuple[float, ...], headers: dict) -> float:
    tiles = [t for z in range(ZOOMS[0], ZOOMS[1] + 1) for _, t in zoom_tiles(bounds, z)]
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:

        def get(tile: object) -> None:
            r = client.get(f"/tiles/{layers}/{tile}.mvt")
            assert r.status_code in (200, 204), r.text

        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(get, tiles))
        return time.perf_counter() - started


def _features(data: bytes) -> dict[str, list[str]]:
    """A tile's features per layer, each as a canonical string, sorted: what a client sees."""
    layers = mapbox_vector_tile.decode(data)
    return {
        name: sorted(repr(sorted(f.items(), key=str)) for f in layer["features"])
        for name, layer in layers.items()
    }


def _compare(
    base: str, layers: str, headers: dict, stored: dict[tuple[int, ...], bytes]
) -> tuple[int, int]:
    """Of a sample of the archive's tiles: how many are the served bytes, and how many hold the
    served features in another order (the tile SQL has no ORDER BY: its row order follows the
    plan, which may change once the table is analysed). Anything else fails the bench."""
    same_bytes = same_features = 0
    with httpx.Client(base_url=base, headers=headers) as client:
        for z, x, y in random.Random(1).sample(sorted(stored), min(CHECKED, len(stored))):
            served = client.get(f"/tiles/{layers}/{z}/{x}/{y}.mvt").content
            archived = gzip.decompress(stored[(z, x, y)])
            if archived == served:
                same_bytes += 1
            else:
                assert _features(archived) == _features(served), (z, x, y)
                same_features += 1
    return same_bytes, same_features


def run(ctx: BenchContext) -> None:
    from geo.bootstrap import load_samples

    load_samples()
    headers = {"Authorization": f"Bearer {ctx.admin_key}"}
    for what, layers, bbox in EXPORTS:
        out = ctx.root / f"{layers.replace(',', '_')}.pmtiles"
        with running_server(ctx) as base:
            # The layers' cluster builds (tiles.aggregate, made once per layer version and kept
            # in the database) are made first, so neither side pays for them.
            httpx.get(f"{base}/tiles/{layers}/tilejson.json", timeout=600).raise_for_status()
            ours = _export(ctx, layers, bbox, out)
            with out.open("rb") as file:
                source = MmapSource(file)
                bounds = tuple(Reader(source).metadata()["bounds"])
                stored = {tuple(zxy): data for zxy, data in all_tiles(source)}
            addressed = sum(len(zoom_tiles(bounds, z)) for z in range(ZOOMS[0], ZOOMS[1] + 1))
            peer = _fetch_all(base, layers, bounds, headers)
            same_bytes, same_features = _compare(base, layers, headers, stored)
        size = out.stat().st_size
        console.print(
            f"{what}: {addressed} tiles at z{ZOOMS[0]}-{ZOOMS[1]}, {len(stored)} not empty, "
            f"archive {size / 1_048_576:.1f} MB; of {CHECKED} sampled tiles, {same_bytes} are "
            f"the served bytes and {same_features} the served features in another order"
        )
        ctx.report(
            f"pmtiles export z{ZOOMS[0]}-{ZOOMS[1]}, {what} ({addressed} tiles, "
            f"{size / 1_048_576:.1f} MB)",
            f"{ours:.1f} s ({addressed / ours:.0f} tiles/s)",
            "the same tiles over HTTP, 4 connections",
            f"{peer:.1f} s ({addressed / peer:.0f} tiles/s)",
            f"{peer / ours:.2f}x",
        )

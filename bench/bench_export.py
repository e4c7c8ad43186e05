"""Whole-layer exports (issue 13): each format of a 200,000-point layer written by our export
(layers.export.write, the function behind GET /collections/{id}/export) beside GDAL's ogr2ogr
reading the same table from PostGIS into the same format, in the same run.

Each writer runs in a process of its own. Wall seconds, median of BENCH_EXPORT_ROUNDS: ours
around the write inside its process (the imports are not the export's), ogr2ogr's whole run
(its start is milliseconds). Memory: ogr2ogr's peak resident set; ours, what the write added
to the process's peak (VmHWM after, reset through clear_refs before, minus VmRSS before), also
for a 1,000-point layer: what the layer's size costs is bounded by the 50,000-feature slice,
not by the layer. Both write the same columns in EPSG:4490 (ours with the Shapefile names cut
and XLSX text guarded).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable

from bench.common import BenchContext, console
from bench.layers_data import DEPARTMENT, points_csv, upload_file

N = int(os.environ.get("BENCH_EXPORT_POINTS", "200000"))
SMALL = 1_000
ROUNDS = int(os.environ.get("BENCH_EXPORT_ROUNDS", "3"))
# Our format -> GDAL's driver for ogr2ogr.
DRIVERS = {
    "geojson": "GeoJSON",
    "gpkg": "GPKG",
    "csv": "CSV",
    "xlsx": "XLSX",
    "shp": "ESRI Shapefile",
}
OURS = """
import shutil, sys, time
from geo.auth import Principal
from geo.db import session_scope
from layers import catalogue, export

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

layer, fmt, department = sys.argv[1:4]
with session_scope() as session:
    source = catalogue.readable_source(session, Principal(department, "viewer", "bench"), layer)
    with open("/proc/self/clear_refs", "w") as f:  # the peak restarts from here (Linux)
        f.write("5")
    before = status("VmRSS")
    started = time.perf_counter()
    path = export.write(session, source, fmt, "EPSG:4490")
    seconds = time.perf_counter() - started
print(seconds, status("VmHWM") - before, path.stat().st_size)
shutil.rmtree(path.parent)
"""


def ours(ctx: BenchContext, layer: str, fmt: str) -> tuple[float, float]:
    """(seconds, MB the write added to the process's peak), measured inside the process: its
    imports (several seconds on a loaded machine) are not the export's."""
    done = subprocess.run(
        [sys.executable, "-c", OURS, layer, fmt, DEPARTMENT],
        env=ctx.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, grown_kb, _ = done.stdout.split()
    return float(seconds), int(grown_kb) / 1024


# Runs a command and tells its seconds and its peak resident KiB (a small Python parent, so the
# child's figure carries only a few MB of the parent's pages from before its exec).
WRAP = (
    "import resource, subprocess, sys, time; t = time.perf_counter();"
    " subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
    " print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def ogr2ogr(ctx: BenchContext, layer: str, fmt: str) -> tuple[float, float]:
    """(seconds, peak MB) of the whole ogr2ogr process."""
    out = ctx.root / "ogr2ogr-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    sql = f"SELECT id, name, kind, value, geom FROM layerdata.l_{layer} ORDER BY id"
    argv = [sys.executable, "-c", WRAP, "ogr2ogr", "-f", DRIVERS[fmt]]
    argv += [str(out / f"{layer}.{fmt}"), f"PG:{ctx.psycopg_url}", "-sql", sql]
    if fmt == "shp":
        argv += ["-lco", "ENCODING=UTF-8"]
    if fmt == "csv":
        argv += ["-lco", "GEOMETRY=AS_WKT"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    seconds, peak_kb = done.stdout.split()
    return float(seconds), int(peak_kb) / 1024


def median_of(
    measure: Callable[[BenchContext, str, str], tuple[float, float]],
    ctx: BenchContext,
    layer: str,
    fmt: str,
) -> tuple[float, float]:
    """Median seconds and the highest memory figure of ROUNDS runs."""
    runs = [measure(ctx, layer, fmt) for _ in range(ROUNDS)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def run(ctx: BenchContext) -> None:
    big, small = "bench_export", "bench_export_small"
    for layer, n in ((big, N), (small, SMALL)):
        path = ctx.root / f"{layer}.csv"
        points_csv(path, n)
        upload_file(ctx, layer, path, lon_column="lon", lat_column="lat")
    console.print(f"{big}: {N} points; {small}: {SMALL}")
    for fmt in DRIVERS:
        seconds, memory = median_of(ours, ctx, big, fmt)
        _, small_memory = median_of(ours, ctx, small, fmt)
        peer_seconds, peer_memory = median_of(ogr2ogr, ctx, big, fmt)
        ctx.report(
            f"export {fmt}, {N} points",
            f"{seconds:.2f} s, +{memory:.0f} MB peak ({small_memory:.0f} MB for {SMALL})",
            "ogr2ogr from PostGIS",
            f"{peer_seconds:.2f} s, peak {peer_memory:.0f} MB",
            f"time x{seconds / peer_seconds:.2f}",
        )

"""Address import: 10,000,000 generated addresses (a whole city) through `geo addresses import`,
beside GDAL (BENCH_ADDRESS_COUNT sets the number).

Ours does everything an import means: names resolved to area codes, every row checked, grid
filled by location (the file has no grid column), standard forms, stable codes, history rows, the
library's indexes (GiST, btrees, the partial pg_trgm GIN) and the name dictionary. The peer,
`ogr2ogr -f PostgreSQL` with COPY, loads the same CSV as-is into a plain table with a GiST index:
the floor for "CSV into PostGIS" on this machine, not a like-for-like import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from psycopg.conninfo import conninfo_to_dict

from bench.common import BenchContext, console

COUNT = int(os.environ.get("BENCH_ADDRESS_COUNT", "10000000"))
SEED = 1
TARGET_S = 300.0


def _prepare(ctx: BenchContext) -> None:
    from addressbook.areas.import_areas import import_areas
    from addressbook.areas.import_grids import save_grids
    from addressbook.ingest import demo
    from geo.db import session_scope

    started = time.perf_counter()
    with session_scope() as session:
        import_areas(session)
    with session_scope() as session:
        save_grids(session, demo.generate_grids(demo.load_communities(session), SEED), "demo")
    console.print(
        f"areas, derived polygons and demo grids loaded in {time.perf_counter() - started:.1f} s"
    )


def _generate(ctx: BenchContext, count: int = COUNT) -> tuple[str, float]:
    from addressbook.ingest import demo
    from geo.db import session_scope

    path = ctx.root / "addresses.csv"
    with session_scope() as session:
        communities = demo.load_communities(session)
    started = time.perf_counter()
    demo.write_csv(path, communities, count, SEED)
    return str(path), time.perf_counter() - started


def _ours(ctx: BenchContext, path: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", "addresses", "import", path],
        env=ctx.env(),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"geo addresses import failed:\n{result.stderr[-3000:]}")
    summary = json.loads(result.stderr.split("addresses imported: ", 1)[1].splitlines()[0])
    steps = ", ".join(f"{name} {value:.1f}" for name, value in summary["steps"].items())
    console.print(f"our import, seconds per step: {steps}", soft_wrap=True)
    return seconds


def _peer(ctx: BenchContext, path: str) -> float:
    info = conninfo_to_dict(ctx.psycopg_url)
    pg = "PG:" + " ".join(
        f"{key}={info[name]}"
        for key, name in (
            ("host", "host"),
            ("port", "port"),
            ("dbname", "dbname"),
            ("user", "user"),
            ("password", "password"),
        )
    )
    started = time.perf_counter()
    subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "PostgreSQL",
            pg,
            path,
            "-nln",
            "peer_addresses",
            "-overwrite",
            "-oo",
            "X_POSSIBLE_NAMES=lon",
            "-oo",
            "Y_POSSIBLE_NAMES=lat",
            "-a_srs",
            "EPSG:4490",
            "--config",
            "PG_USE_COPY",
            "YES",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def run(ctx: BenchContext) -> None:
    _prepare(ctx)
    path, generation = _generate(ctx)
    ctx.report(
        f"demo generator, {COUNT:,} addresses to CSV",
        f"{generation:.1f} s",
        "-",
        "-",
        "well under a minute" if generation < 60 else "over a minute",
    )
    ours = _ours(ctx, path)
    peer = _peer(ctx, path)
    ctx.report(
        f"address import, {COUNT:,} rows",
        f"{ours:.1f} s ({COUNT / ours:,.0f} rows/s)",
        "ogr2ogr -f PostgreSQL (COPY)",
        f"{peer:.1f} s ({COUNT / peer:,.0f} rows/s)",
        f"target < {TARGET_S:.0f} s: {'met' if ours < TARGET_S else 'MISSED'}",
    )

"""Upload of a 200,000-polygon GeoJSON: us (HTTP upload, schema inferred, every geometry
validated, COPY, GiST index) against `ogr2ogr -f PostgreSQL` of the same file into the same
database (GDAL's COPY path, spatial index included). Target (issue 4): at most 1.5x GDAL's time.

Two alternating rounds each; the best time of each side is reported, and the CPU time each
side cost (our server process and PostgreSQL; ogr2ogr and PostgreSQL), which depends less on
what else the shared machine runs than wall time does.
"""

from __future__ import annotations

import resource
import subprocess
import time

import httpx
import psycopg

from bench.common import BenchContext, console, running_server
from bench.layers_data import DEPARTMENT, polygons_geojson
from bench.processes import cpu_seconds

N = 200_000
ROUNDS = 2


def _key(ctx: BenchContext) -> str:
    """An editor key of the bench department (created here if needed)."""
    from sqlalchemy import select

    from geo.auth import issue_key
    from geo.db import session_scope
    from geo.departments import create_department
    from geo.models import Department

    with session_scope() as session:
        department = session.scalar(select(Department).where(Department.code == DEPARTMENT))
        if department is None:
            department = create_department(session, "图层基准", DEPARTMENT)
        _, key = issue_key(session, department, "editor")
    return key


def run(ctx: BenchContext) -> None:
    path = ctx.root / "polygons-200k.geojson"
    started = time.perf_counter()
    polygons_geojson(path, N)
    console.print(
        f"{path.stat().st_size / 1e6:.0f} MB written in {time.perf_counter() - started:.0f} s"
    )
    key = _key(ctx)
    ours: list[float] = []
    gdal: list[float] = []
    our_cpu: list[float] = []
    gdal_cpu: list[float] = []
    with running_server(ctx, workers=1) as base:
        port = int(base.rsplit(":", 1)[1])
        for round_ in range(ROUNDS):
            layer = f"bench_upload_{round_}"
            with path.open("rb") as f:
                cpu = cpu_seconds(ctx, port)
                started = time.perf_counter()
                r = httpx.post(
                    f"{base}/collections/{layer}/upload",
                    params={"mode": "create", "access": "public"},
                    files={"file": (path.name, f, "application/geo+json")},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=600,
                )
                ours.append(time.perf_counter() - started)
                our_cpu.append(cpu_seconds(ctx, port) - cpu)
            r.raise_for_status()
            assert r.json()["features"] == N, r.text
            cpu = cpu_seconds(ctx, None) + _children_cpu()
            started = time.perf_counter()
            subprocess.run(
                [
                    "ogr2ogr",
                    "-f",
                    "PostgreSQL",
                    f"PG:{ctx.psycopg_url}",
                    str(path),
                    "-nln",
                    f"public.ogr_upload_{round_}",
                    "-lco",
                    "GEOMETRY_NAME=geom",
                    "-a_srs",
                    "EPSG:4490",
                    "-overwrite",
                ],
                check=True,
                capture_output=True,
            )
            gdal.append(time.perf_counter() - started)
            gdal_cpu.append(cpu_seconds(ctx, None) + _children_cpu() - cpu)
            console.print(
                f"round {round_}: ours {ours[-1]:.1f} s ({our_cpu[-1]:.1f} s CPU), "
                f"ogr2ogr {gdal[-1]:.1f} s ({gdal_cpu[-1]:.1f} s CPU)"
            )
    with psycopg.connect(ctx.psycopg_url) as conn:
        copied = conn.execute("SELECT count(*) FROM public.ogr_upload_0").fetchone()
    assert copied and copied[0] == N
    best, peer = min(ours), min(gdal)
    cpu_ours, cpu_peer = min(our_cpu), min(gdal_cpu)
    ctx.report(
        "upload 200k polygons (GeoJSON)",
        f"{best:.1f} s ({N / best:,.0f} features/s), {cpu_ours:.1f} s CPU",
        "ogr2ogr -f PostgreSQL",
        f"{peer:.1f} s ({N / peer:,.0f} features/s), {cpu_peer:.1f} s CPU",
        f"{best / peer:.2f}x GDAL's time, {cpu_ours / cpu_peer:.2f}x its CPU (target <= 1.5x)",
    )


def _children_cpu() -> float:
    """CPU of this process's finished children (ogr2ogr)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

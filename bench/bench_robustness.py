"""Sixteen writers on one layer (bench/write_load.py): throughput, and how fast the server keeps
answering `/health` and tiles meanwhile.

Peers, measured in the same run:
- writes: the floor, the same 16 writers calling the same write function (layers.editing.create,
  one transaction each) in-process with no HTTP, so the ratio is what the HTTP path costs;
- `/health`: the same prober against the same server with no writers, so the ratio is what the
  writers cost the readers.
The server runs one worker, rate limits off, as in the test that guards against the freeze (tests/
test_concurrent_writes.py).
"""

from __future__ import annotations

import statistics

import httpx

from bench.common import BenchContext, geo_server, ms_summary
from bench.write_load import in_process_writes_per_s, run_write_load

WRITERS = 16
SECONDS = 30.0
LAYER = "bench_writes"


def _create_layer(base: str, headers: dict[str, str]) -> None:
    body = {
        "id": LAYER,
        "geometry_type": "Point",
        "properties": [{"name": "name", "type": "string"}],
        "access": "private",
    }
    r = httpx.post(f"{base}/collections", json=body, headers=headers, timeout=60)
    r.raise_for_status()


def _floor(seconds: float) -> float:
    """Writes per second of 16 threads calling layers.editing.create directly."""
    from geo.auth import Principal

    who = Principal("platform", "admin", "bench")
    return in_process_writes_per_s(who, [LAYER], seconds, WRITERS)


def run(ctx: BenchContext) -> None:
    headers = {"Authorization": f"Bearer {ctx.admin_key}"}
    # One client writing at full speed is what the rate limiter is for; here it would measure the
    # limiter instead of the writes, so it is off (bench_ratelimit measures it).
    env = {**ctx.env(), "PYTHONUNBUFFERED": "1", "GEO_RATE_LIMITS": "off"}
    with geo_server(env, workers=1) as base:
        _create_layer(base, headers)
        idle = run_write_load(base, LAYER, headers, writers=0, seconds=10.0)
        loaded = run_write_load(base, LAYER, headers, writers=WRITERS, seconds=SECONDS)
    if loaded.failures:
        raise RuntimeError(f"writes failed: {loaded.failures[:3]}")
    floor = _floor(SECONDS)
    ctx.report(
        f"{WRITERS} writers on one layer, {SECONDS:.0f} s, writes/s (1 worker)",
        f"{loaded.writes_per_s:.0f}/s over HTTP",
        "same writes in-process (floor)",
        f"{floor:.0f}/s",
        f"{loaded.writes_per_s / floor:.2f}x the floor",
    )
    worst, idle_worst = max(loaded.health_s), max(idle.health_s)
    ctx.report(
        "/health while 16 writers run",
        f"worst {worst * 1000:.0f} ms; {ms_summary(loaded.health_s)}",
        "idle server",
        f"worst {idle_worst * 1000:.0f} ms; {ms_summary(idle.health_s)}",
        "target: worst < 1000 ms",
    )
    ctx.report(
        "layer tile while 16 writers run",
        f"worst {max(loaded.tile_s) * 1000:.0f} ms; median "
        f"{statistics.median(loaded.tile_s) * 1000:.1f} ms",
        "idle server",
        f"worst {max(idle.tile_s) * 1000:.0f} ms; median "
        f"{statistics.median(idle.tile_s) * 1000:.1f} ms",
        "target: worst < 1000 ms",
    )

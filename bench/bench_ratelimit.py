"""What the rate limiter costs on the cheapest request we serve: a tile from the memory cache.

Two `geo serve` processes (one worker each) on the same database and the same public point
layer: ours with the limiter on (in-process counters, limits far above what the run sends, so
no request is refused) and the peer with `GEO_RATE_LIMITS=off`. wrk (2 threads, 8 connections)
asks both for the same cached tile in alternating rounds, the order flipped every round, and the
figures are the medians over the rounds. Besides tiles/s and latency, each round measures the
CPU time the server spent per tile (/proc), the steadier figure on a shared machine; the
difference between the two servers is what the limiter adds to a request.

Two kinds of traffic:

- one client address: one counter, the limiter's floor;
- 20,000 client addresses (an `X-Forwarded-For` per request, which uvicorn trusts from
  127.0.0.1): one counter pair per address, as a busy public map would have; the same header
  goes to the peer, so both pay for resolving it.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time

import httpx
import morecantile

from bench.bench_tiles import Figures, _ms
from bench.common import BenchContext, console, geo_server
from bench.processes import cpu_seconds

LAYER = "bench_ratelimit_points"
POINTS = 5_000
CENTRE = (117.2, 39.13)
ZOOM = 15
CONNECTIONS = 8
WARMUP_S = 3
ROUND_S = 4
ROUNDS = 7
ADDRESSES = {"1 client address": 1, "20,000 client addresses": 20_000}
NEVER_REACHED = "1000000000/minute"

WRK_SCRIPT = """
local path = os.getenv("BENCH_PATH")
local addresses = tonumber(os.getenv("BENCH_ADDRESSES"))
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
function init(args)
  n = tonumber(wrk.thread:get("offset")) or 0
end
function request()
  n = n + 1
  local i = n % addresses
  local ip = "10." .. math.floor(i / 65536) .. "." .. (math.floor(i / 256) % 256)
  return wrk.format("GET", path, {["X-Forwarded-For"] = ip .. "." .. (i % 256)})
end
"""


def load_layer(ctx: BenchContext) -> None:
    """A public point layer uploaded as a department would (a CSV with lon/lat columns)."""
    import numpy as np

    from geo.auth import Principal
    from geo.db import session_scope
    from geo.departments import create_department
    from layers.ingest.pipeline import UploadOptions, upload

    rng = np.random.default_rng(20261123)
    path = ctx.root / "ratelimit-points.csv"
    lon = rng.normal(CENTRE[0], 0.01, POINTS)
    lat = rng.normal(CENTRE[1], 0.01, POINTS)
    rows = "".join(f"p{i},{x:.7f},{y:.7f}\n" for i, (x, y) in enumerate(zip(lon, lat, strict=True)))
    path.write_text("name,lon,lat\n" + rows)
    with session_scope() as session:
        create_department(session, "限流基准", "bench-ratelimit")
    with session_scope() as session:
        opts = UploadOptions(
            mode="create", title=LAYER, access="public", lon_column="lon", lat_column="lat"
        )
        upload(
            session, Principal("bench-ratelimit", "editor", "bench"), LAYER, path, path.name, opts
        )


def tile_path() -> str:
    tile = morecantile.tms.get("WebMercatorQuad").tile(*CENTRE, ZOOM)
    return f"/tiles/{LAYER}/{tile.z}/{tile.x}/{tile.y}.mvt"


def wrk(ctx: BenchContext, base: str, path: str, addresses: int, seconds: int) -> Figures:
    script = ctx.root / "bench-ratelimit.lua"
    script.write_text(WRK_SCRIPT)
    result = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), base],
        env={**os.environ, "BENCH_PATH": path, "BENCH_ADDRESSES": str(addresses)},
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    rate = float(_field(out, r"Requests/sec:\s+([\d.]+)"))
    p50 = _ms(_field(out, r"(?m)^\s+50%\s+(\S+)"))
    p99 = _ms(_field(out, r"(?m)^\s+99%\s+(\S+)"))
    bad = _field(out, r"Non-2xx or 3xx responses:\s+(\d+)", "0")
    return Figures(base, rate, p50, p99, int(bad))


def _field(text: str, pattern: str, default: str | None = None) -> str:
    found = re.search(pattern, text)
    if found is None:
        if default is None:
            raise ValueError(f"wrk printed no {pattern!r}:\n{text}")
        return default
    return found.group(1)


def check_servers(ours: str, peer: str, path: str) -> None:
    """Same tile from both, 200 and cached; only ours carries the RateLimit fields."""
    for base, limited in ((ours, True), (peer, False)):
        first = httpx.get(base + path, timeout=60)
        second = httpx.get(base + path, timeout=60)
        assert first.status_code == 200 and first.content == second.content, first.text
        assert ("RateLimit" in second.headers) == limited, dict(second.headers)
    console.print(f"tile {path}: {len(first.content):,} bytes")


def measure(ctx: BenchContext, base: str, path: str, addresses: int) -> Figures:
    """One round of wrk, with the CPU time the server spent per tile: unlike tiles/s, it
    hardly moves with whatever else the shared machine runs."""
    port = int(base.rsplit(":", 1)[1])
    before = cpu_seconds(ctx, port)
    figures = wrk(ctx, base, path, addresses, ROUND_S)
    served = figures.tiles_per_s * ROUND_S
    figures.cpu_ms_per_tile = 1000 * (cpu_seconds(ctx, port) - before) / served
    return figures


def median_figures(name: str, rounds: list[Figures]) -> Figures:
    return Figures(
        name,
        statistics.median(f.tiles_per_s for f in rounds),
        statistics.median(f.p50_ms for f in rounds),
        statistics.median(f.p99_ms for f in rounds),
        sum(f.errors for f in rounds),
        statistics.median(f.cpu_ms_per_tile or 0 for f in rounds),
    )


def run(ctx: BenchContext) -> None:
    started = time.perf_counter()
    load_layer(ctx)
    console.print(f"{POINTS:,} points uploaded in {time.perf_counter() - started:.0f} s")
    path = tile_path()
    common = {**ctx.env(), "PYTHONUNBUFFERED": "1", "GEO_TILE_DISK_CACHE": ""}
    limits = {f"GEO_RATE_LIMIT_{c}": NEVER_REACHED for c in ("TILES", "DEFAULT")}
    on_env = {**common, "GEO_RATE_LIMITS": "on", "GEO_REDIS_URL": "", **limits}
    off_env = {**common, "GEO_RATE_LIMITS": "off"}
    with geo_server(on_env, workers=1) as ours, geo_server(off_env, workers=1) as peer:
        check_servers(ours, peer, path)
        servers = {"on": ours, "off": peer}
        for label, addresses in ADDRESSES.items():
            for base in servers.values():
                wrk(ctx, base, path, addresses, WARMUP_S)
            samples: dict[str, list[Figures]] = {"on": [], "off": []}
            for n in range(ROUNDS):
                order = ("on", "off") if n % 2 == 0 else ("off", "on")
                for which in order:
                    samples[which].append(measure(ctx, servers[which], path, addresses))
            on = median_figures("limiter on", samples["on"])
            off = median_figures("limiter off", samples["off"])
            # What the limiter adds to each request, in CPU time (server and PostgreSQL, which
            # a cached tile does not reach).
            added_us = 1000 * ((on.cpu_ms_per_tile or 0) - (off.cpu_ms_per_tile or 0))
            console.print(
                f"{label}: on {[round(f.tiles_per_s) for f in samples['on']]}, "
                f"off {[round(f.tiles_per_s) for f in samples['off']]} tiles/s"
            )
            ctx.report(
                f"cached tile, {label} ({CONNECTIONS} conns, 1 worker)",
                f"limiter on: {on.line()}",
                "limiter off",
                off.line(),
                f"{100 * on.tiles_per_s / off.tiles_per_s:.0f}% of the tiles/s; "
                f"{added_us:+.0f} us CPU per request; {on.errors + off.errors} non-2xx",
            )

"""Shared benchmark plumbing: a throw-away database, a real server process, and the report.

Machines are shared and noisy, so every figure is printed beside its peer's figure from the same
run, as medians and percentiles of many samples, with the ratio.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from geo.db import libpq_url
from geo.embedded import EmbeddedCluster, free_port

console = Console()
REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchContext:
    """One database for the whole `make bench` run; modules load what they need into it."""

    url: str
    root: Path
    admin_key: str = "bench-admin-key-0123456789"
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    @property
    def psycopg_url(self) -> str:
        return libpq_url(self.url)

    def env(self) -> dict[str, str]:
        # Rate limits off: benchmarks send far more from one address than any limit allows
        # (bench_ratelimit turns them on for its own server). Set GEO_RATE_LIMITS to override.
        return {
            "GEO_RATE_LIMITS": "off",
            **os.environ,
            "DATABASE_URL": self.url,
            "GEO_ADMIN_KEY": self.admin_key,
        }

    def report(self, what: str, ours: str, peer_name: str, peer: str, verdict: str = "") -> None:
        self.rows.append((what, ours, peer_name, peer, verdict))
        console.print(f"[bold]{what}[/bold]: ours {ours} | {peer_name} {peer} {verdict}")


@contextmanager
def bench_database() -> Iterator[BenchContext]:
    from geo.db import ensure_extensions, reset_engines
    from geo.migrations import upgrade

    root = Path(tempfile.mkdtemp(prefix="geo-bench-"))
    root.chmod(0o755)
    cluster = EmbeddedCluster(root / "pg", durable=False)
    url = cluster.start()
    os.environ["DATABASE_URL"] = url
    reset_engines()
    ensure_extensions()
    upgrade(url)
    try:
        yield BenchContext(url=url, root=root)
    finally:
        reset_engines()
        cluster.destroy()


@contextmanager
def server_process(
    argv: list[str], env: Mapping[str, str], port: int, health: str, timeout: float = 60
) -> Iterator[str]:
    """A server started as ``argv`` on ``port``: its base URL once ``health`` answers; stopped
    when the block ends. Its output goes to a file, whose end is printed if the block fails: a
    worker that died says why."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + health, timeout=timeout)
            yield base
        except BaseException:
            log.seek(0)
            console.print(f"{argv[0]} {' '.join(argv[1:])}: the end of its output", markup=False)
            console.print("".join(log.readlines()[-40:]), markup=False)
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextmanager
def geo_server(env: Mapping[str, str], workers: int) -> Iterator[str]:
    """``geo serve`` in its own process(es) with ``env``: its base URL while the block runs."""
    port = free_port()
    argv = [sys.executable, "-m", "geo.cli", "serve"]
    argv += ["--port", str(port), "--workers", str(workers)]
    with server_process(argv, env, port, "/health") as base:
        yield base


@contextmanager
def running_server(ctx: BenchContext, workers: int = 2) -> Iterator[str]:
    """Our service as users run it: uvicorn in its own process(es)."""
    with geo_server({**ctx.env(), "PYTHONUNBUFFERED": "1"}, workers) as base:
        yield base


def tipg_python() -> Path:
    """The Python of a virtualenv holding tipg (it pins its own FastAPI and pydantic), under
    GEO_DATA_DIR/bench-venvs/tipg; created and installed on first use, reused afterwards."""
    from geo.settings import get_settings

    venv = get_settings().data_dir.resolve() / "bench-venvs" / "tipg"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "uvicorn").exists():
        console.print(f"installing tipg into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "tipg", "uvicorn[standard]"], check=True
        )
    return python


@contextmanager
def tipg_server(ctx: BenchContext, env: Mapping[str, str]) -> Iterator[str]:
    """tipg (2 workers) on the bench database, configured by the ``TIPG_*`` variables in ``env``."""
    python = tipg_python()
    port = free_port()
    argv = [str(python), "-m", "uvicorn", "tipg.main:app", "--port", str(port), "--workers", "2"]
    full_env = {**os.environ, "DATABASE_URL": ctx.psycopg_url, **env}
    with server_process(argv, full_env, port, "/healthz", timeout=120) as base:
        yield base


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def ops_per_s(step: Callable[[int, int], object], threads: int, seconds: float) -> float:
    """Operations per second of ``threads`` threads, each calling ``step(thread, i)`` (``i``:
    the operations that thread has done so far) until ``seconds`` have passed."""
    done = [0] * threads
    stop = threading.Event()

    def run(n: int) -> None:
        while not stop.is_set():
            step(n, done[n])
            done[n] += 1

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for t in workers:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in workers:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms_summary(samples_s: Sequence[float]) -> str:
    ms = [s * 1000 for s in samples_s]
    return (
        f"p50 {statistics.median(ms):.1f} ms, p95 {percentile(ms, 95):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms"
    )


def print_summary(ctx: BenchContext) -> None:
    table = Table(title="make bench: ours beside the peer, same run")
    for column in ("what", "ours", "peer", "peer's figure", "verdict"):
        table.add_column(column)
    for row in ctx.rows:
        table.add_row(*row)
    console.print(table)

"""Concurrent writers on one layer while others read: the workload that once froze the server.

Sixteen clients adding features to the same layer all bump that layer's data version, so they
queue on one row lock. When handlers ran the database on the event loop, a request waiting for
that lock stalled the loop, and with it the commit of the request holding the lock and every
other request of the worker (`/health` included). The robustness test
(tests/test_concurrent_writes.py) and the benchmark (bench/bench_robustness.py) both run this
load: writers for a fixed time, and a prober timing `/health` and a tile of the layer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import morecantile

from bench.common import ops_per_s

CENTRE = (117.2, 39.1)


@dataclass
class WriteLoad:
    acknowledged: set[int] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    health_s: list[float] = field(default_factory=list)
    tile_s: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def writes_per_s(self) -> float:
        return len(self.acknowledged) / self.seconds if self.seconds else 0.0


def centre_tile(zoom: int = 14) -> tuple[int, int, int]:
    tile = morecantile.tms.get("WebMercatorQuad").tile(*CENTRE, zoom)
    return tile.z, tile.x, tile.y


def _writer(
    base: str, layer: str, headers: dict[str, str], n: int, stop: threading.Event, out: WriteLoad
) -> None:
    i = 0
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        while not stop.is_set():
            feature = {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [CENTRE[0] + (n * 5000 + i) * 1e-7, CENTRE[1] + n * 1e-4],
                },
                "properties": {"name": f"w{n}-{i}"},
            }
            r = http.post(f"/collections/{layer}/items", json=feature)
            # set.add and list.append are atomic under the GIL: no lock needed between writers.
            if r.status_code == 201:
                out.acknowledged.add(int(r.json()["id"]))
            else:
                out.failures.append(f"write {r.status_code}: {r.text[:200]}")
            i += 1


def _prober(
    base: str, layer: str, headers: dict[str, str], stop: threading.Event, out: WriteLoad
) -> None:
    z, x, y = centre_tile()
    with httpx.Client(base_url=base, timeout=30) as http:
        while not stop.is_set():
            for path, samples, probe_headers in (
                ("/health", out.health_s, {}),
                (f"/tiles/{layer}/{z}/{x}/{y}.mvt", out.tile_s, headers),
            ):
                started = time.perf_counter()
                r = http.get(path, headers=probe_headers)
                samples.append(time.perf_counter() - started)
                if r.status_code not in (200, 204):
                    out.failures.append(f"{path} {r.status_code}: {r.text[:200]}")
            stop.wait(0.1)


def run_write_load(
    base: str, layer: str, headers: dict[str, str], writers: int = 16, seconds: float = 30.0
) -> WriteLoad:
    """``writers`` clients adding features to ``layer`` for ``seconds``, with one client timing
    `/health` and the layer's centre tile every 0.1 s meanwhile."""
    out = WriteLoad()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(base, layer, headers, n, stop, out))
        for n in range(writers)
    ]
    threads.append(threading.Thread(target=_prober, args=(base, layer, headers, stop, out)))
    started = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    out.seconds = time.perf_counter() - started
    return out


def in_process_writes_per_s(
    who: Any,
    layers: list[str],
    seconds: float,
    writers: int,
    in_transaction: Callable[[Any], object] | None = None,
) -> float:
    """Writes/s of ``writers`` threads calling layers.editing.create directly (no HTTP), writer
    n on ``layers[n % len(layers)]``, each transaction ending with ``in_transaction(session)``
    before its commit: the floor the HTTP figures are set beside."""
    from geo.db import session_scope
    from layers import catalogue, editing

    def write(n: int, i: int) -> None:
        feature = {
            "type": "Feature",
            "geometry": {
                "type": "Point",
                "coordinates": [CENTRE[0] + (n * 5000 + i) * 1e-7, CENTRE[1] - n * 1e-4],
            },
            "properties": {"name": f"w{n}-{i}"},
        }
        with session_scope() as session:
            layer = catalogue.writable_layer(session, who, layers[n % len(layers)])
            editing.create(session, who, layer, feature, "CRS84")
            if in_transaction is not None:
                in_transaction(session)

    return ops_per_s(write, writers, seconds)

"""What the audit hash chain costs writers, and what verifying it costs (geo.audit.chain).

Sixteen writers add features in-process (layers.editing.create, one transaction each, each
audited), as bench_robustness's floor does, first all on one layer, then each on its own layer.
Ours: entries are inserted unchained and the server's sealer (geo.audit.sealer's cadence) chains
them after commit. Peer, same run, same writers: the naive chain, each writer sealing inside its
own transaction (geo.audit.chain.seal_pending before COMMIT), which holds the chain head's lock
until the commit. Rounds alternate between the two; figures are medians of writes/s.

Also: per-minute tile-read entries (geo.audit.record_read, one row upserted per read) against
one INSERT per read (what tiles.access cost before), sixteen readers of one layer with one key,
the worst case for the upserted row; and how fast `geo audit verify` walks the chain.

The bench cluster runs with fsync off: a commit there costs no disk flush, so the naive chain's
lock, held across the flush in production, costs it less here than it would on a real disk.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bench.common import BenchContext, ops_per_s
from bench.write_load import in_process_writes_per_s

WRITERS = 16
SECONDS = 8.0
ROUNDS = 3
LAYERS = [f"bench_audit_{n}" for n in range(WRITERS)]

if TYPE_CHECKING:
    from geo.auth import Principal


def _who() -> Principal:
    from geo.auth import Principal

    return Principal("platform", "admin", "bench")


def _create_layers() -> None:
    from geo.db import session_scope
    from layers import catalogue
    from layers.schema import PropertySpec

    with session_scope() as session:
        for layer_id in LAYERS:
            catalogue.create_layer(
                session,
                _who(),
                layer_id,
                title=layer_id,
                geometry_type="Point",
                properties=[PropertySpec("name", "string")],
            )


def _writes_per_s(layers: list[str], in_transaction: Callable[[Session], object]) -> float:
    """Writes/s of WRITERS threads, writer n on layers[n % len(layers)], each transaction
    ending with `in_transaction(session)` before its commit."""
    return in_process_writes_per_s(_who(), layers, SECONDS, WRITERS, in_transaction)


def _with_sealer(run: Callable[[], float]) -> float:
    """`run` while a sealer thread works at the server's cadence (GEO_AUDIT_SEAL_SECONDS)."""
    from geo.audit.chain import seal
    from geo.audit.sealer import AuditSettings

    every_s = AuditSettings().seal_seconds or 5.0
    stop = threading.Event()

    def sealer() -> None:
        while not stop.wait(every_s):
            seal(wait=False)

    thread = threading.Thread(target=sealer)
    thread.start()
    try:
        return run()
    finally:
        stop.set()
        thread.join()
        seal()


def _compare_writes(ctx: BenchContext, label: str, layers: list[str]) -> None:
    from geo.audit.chain import seal_pending

    ours: list[float] = []
    naive: list[float] = []
    for _ in range(ROUNDS):
        ours.append(_with_sealer(lambda: _writes_per_s(layers, lambda s: None)))
        naive.append(_writes_per_s(layers, seal_pending))
    o, n = statistics.median(ours), statistics.median(naive)
    ctx.report(
        f"{WRITERS} audited writers, {label}, writes/s (median of {ROUNDS} x {SECONDS:.0f} s)",
        f"{o:.0f}/s sealed after commit",
        "chain extended in each writer's transaction",
        f"{n:.0f}/s",
        f"{o / n:.2f}x",
    )


def _reads_per_s(record: Callable[[Session, int], None]) -> float:
    from geo.db import session_scope

    def read(n: int, _: int) -> None:
        with session_scope() as session:
            record(session, n)

    return ops_per_s(read, WRITERS, SECONDS)


def _compare_tile_reads(ctx: BenchContext) -> None:
    from geo import audit

    who, layer = _who(), LAYERS[0]

    def per_minute(session: Session, n: int) -> None:
        audit.record_read(session, who, layer, "tile")

    def per_read(session: Session, n: int) -> None:
        audit.record(session, who, "layer.read", layer, {"via": "items"})

    ours: list[float] = []
    peer: list[float] = []
    for _ in range(ROUNDS):
        ours.append(_reads_per_s(per_minute))
        peer.append(_reads_per_s(per_read))
    o, p = statistics.median(ours), statistics.median(peer)
    ctx.report(
        f"{WRITERS} threads auditing tile reads of one layer, one key, reads/s",
        f"{o:.0f}/s, one entry a minute",
        "one entry per read",
        f"{p:.0f}/s, {p * 60:.0f} entries a minute",
        f"{o / p:.2f}x",
    )


def _verify_speed(ctx: BenchContext) -> None:
    from geo.audit.chain import seal, verify
    from geo.db import session_scope

    started = time.perf_counter()
    sealed = seal()
    seal_s = time.perf_counter() - started
    started = time.perf_counter()
    with session_scope() as session:
        report = verify(session)
    verify_s = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"the chain does not verify after the benchmark: {report}")
    ctx.report(
        "geo audit verify: entries checked per second",
        f"{report.sealed / verify_s:.0f}/s ({report.sealed} entries in {verify_s:.1f} s)",
        "sealing what was left",
        f"{sealed} entries in {seal_s:.2f} s",
    )


def run(ctx: BenchContext) -> None:
    _create_layers()
    _compare_writes(ctx, "one layer", LAYERS[:1])
    _compare_writes(ctx, "one layer each", LAYERS)
    _compare_tile_reads(ctx)
    _verify_speed(ctx)

"""Operations: failover time and acknowledged writes lost when the primary's machine is killed
(pg_auto_failover, `geo db ha`, three times); the multi-node layout under load (nginx, two API
processes, the pair and a read replica: tests/test_multinode.py itself, run by pytest, since
benchmarks import nothing from tests/), its write outage beside that failover time; back up and
restore a database holding 3,000,000 addresses with pgBackRest (geo backup / geo restore),
beside pg_dump / pg_restore (geo export / geo import); and a restore to a chosen second holding
the rows written before it and none after.

Ours writes a full backup into both repositories (local and off-site) and restores into a new
data directory, replaying the archived WAL; the peer dumps to one custom-format file and restores
it into a new database in one transaction (indexes rebuilt).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import bench_address_import
from bench.common import REPO, BenchContext, console
from geo.backup import backup as pg_dump_to
from geo.backup import restore as pg_restore_from
from geo.db import libpq_url
from geo.embedded import EmbeddedCluster
from geo.ha.cluster import HaFormation
from geo.pitr import Pitr, Repositories

FAILOVERS = 3
# The library backed up and restored: 3,000,000 addresses (the import bench loads 10,000,000).
ADDRESSES = 3_000_000


def _load(ctx: BenchContext) -> int:
    bench_address_import._prepare(ctx)
    path, _ = bench_address_import._generate(ctx, ADDRESSES)
    bench_address_import._ours(ctx, path)
    with psycopg.connect(ctx.psycopg_url) as conn:
        row = conn.execute("SELECT count(*) FROM addresses").fetchone()
    return int(row[0]) if row else 0


def _peer(ctx: BenchContext, dump: Path) -> tuple[float, float]:
    started = time.perf_counter()
    pg_dump_to(dump, ctx.url)
    backed_up = time.perf_counter() - started
    with psycopg.connect(ctx.psycopg_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE restore_peer")
    target = ctx.url.rsplit("/", 1)[0] + "/restore_peer"
    started = time.perf_counter()
    pg_restore_from(dump, target)
    restored = time.perf_counter() - started
    with psycopg.connect(ctx.psycopg_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE restore_peer")
    return backed_up, restored


def _chosen_second(ctx: BenchContext, pitr: Pitr, work: Path) -> tuple[int, int]:
    """Rows before the chosen second found, rows after it found, in the restored copy."""
    with psycopg.connect(ctx.psycopg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_pitr (n int, at timestamptz DEFAULT clock_timestamp())")
        for n in range(50):
            conn.execute("INSERT INTO bench_pitr (n) VALUES (%s)", (n,))
        time.sleep(1.1)
        chosen = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.1)
        for n in range(50, 100):
            conn.execute("INSERT INTO bench_pitr (n) VALUES (%s)", (n,))
        conn.execute("SELECT pg_switch_wal()")
    restored = pitr.restore(work / "at-second", chosen)
    try:
        with psycopg.connect(libpq_url(restored.url()), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE n < 50), count(*) FILTER (WHERE n >= 50)"
                " FROM bench_pitr"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        restored.destroy()


def _failover_once(ha: HaFormation, url: str, first: int) -> tuple[float, int, int]:
    """Kill the primary's keeper and PostgreSQL while a writer commits rows one by one; the
    seconds until a commit succeeds again, the commits acknowledged, and those lost."""
    acknowledged: list[int] = []
    n = first

    def commit() -> bool:
        nonlocal n
        n += 1
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
                conn.execute("INSERT INTO bench_failover VALUES (%s)", (n,))
        except psycopg.Error:
            return False
        acknowledged.append(n)
        return True

    for _ in range(50):
        commit()
    old = ha.primary()
    assert old is not None
    ha.kill_node(old)
    killed = time.perf_counter()
    while not commit():
        time.sleep(0.1)
    seconds = time.perf_counter() - killed
    for _ in range(50):
        commit()
    with psycopg.connect(url, autocommit=True) as conn:
        found = {r[0] for r in conn.execute("SELECT n FROM bench_failover").fetchall()}
    ha.rejoin(old)
    return seconds, len(acknowledged), len(set(acknowledged) - found)


def _failovers(ctx: BenchContext) -> float:
    ha = HaFormation(ctx.root / "ha")
    ha.create()
    url = libpq_url(ha.url())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_failover (n int PRIMARY KEY)")
    try:
        runs = [_failover_once(ha, url, i * 100_000) for i in range(FAILOVERS)]
    finally:
        ha.destroy()
    times = sorted(r[0] for r in runs)
    ctx.report(
        f"failover, primary's machine killed (median of {FAILOVERS})",
        f"{statistics.median(times):.1f} s to the next commit (runs: "
        + ", ".join(f"{t:.1f}" for t in times)
        + ")",
        "-",
        "-",
    )
    acked, lost = sum(r[1] for r in runs), sum(r[2] for r in runs)
    ctx.report(
        "acknowledged writes lost (synchronous replication)",
        f"{lost} of {acked}",
        "-",
        "-",
        "none lost" if lost == 0 else "LOST WRITES",
    )
    return statistics.median(times)


def _multinode(ctx: BenchContext, failover_s: float) -> None:
    """The layout test (its own database, formation, nginx and API processes), its figures
    beside the bare failover's."""
    work = Path(tempfile.mkdtemp(prefix="geo-bench-multinode-", dir=ctx.root))
    test = "tests/test_multinode.py::test_nginx_two_api_processes_pair_and_replica_under_load"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
         str(work), test],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    found = sorted(work.glob("*/multinode.json"))
    if not found:
        console.print(result.stdout[-3000:], result.stderr[-3000:])
        raise RuntimeError("the multi-node test wrote no figures")
    figures = json.loads(found[0].read_text())
    passed = result.returncode == 0
    api, primary = figures["api_process_killed"], figures["primary_killed"]
    failed = api["failed_reads"] + api["failed_writes"]
    ctx.report(
        "requests failed, one of two API processes SIGKILLed (through nginx)",
        f"{failed} of {api['requests_after_kill']} ({api['failed_writes']} writes)",
        "-",
        "-",
    )
    outage = primary["write_outage_s"]
    ctx.report(
        "write outage, primary killed under load (nginx, 2 API processes, read replica)",
        f"{outage} s" if outage is not None else "no write succeeded",
        "bare failover above (median)",
        f"{failover_s:.1f} s",
    )
    tiles = primary["during_outage"].get("tile", {})
    ctx.report(
        "reads served while there was no primary",
        f"tiles {tiles.get('ok', 0)} of {tiles.get('requests', 0)}",
        "-",
        "items and geocoding need the primary (503)",
    )
    ctx.report(
        "acknowledged writes lost (through nginx)",
        f"{figures['writes_lost']} of {figures['writes_acknowledged']}",
        "-",
        "-",
        "none lost" if not figures["writes_lost"] else "LOST WRITES",
    )
    if not passed:
        console.print(result.stdout[-3000:])
        raise RuntimeError("tests/test_multinode.py failed; its output is above")


def run(ctx: BenchContext) -> None:
    _multinode(ctx, _failovers(ctx))
    count = _load(ctx)
    work = Path(tempfile.mkdtemp(prefix="geo-bench-ops-", dir=ctx.root))
    os.chmod(work, 0o755)
    cluster = EmbeddedCluster(ctx.root / "pg")
    pitr = Pitr(cluster, Repositories(work / "repo-local", work / "repo-offsite", 2))
    pitr.setup()
    started = time.perf_counter()
    pitr.backup("full")
    ours_backup = time.perf_counter() - started
    started = time.perf_counter()
    restored = pitr.restore(work / "latest", None)
    ours_restore = time.perf_counter() - started
    restored.destroy()
    os.environ["DATABASE_URL"] = ctx.url
    peer_backup, peer_restore = _peer(ctx, work / "peer.dump")
    ctx.report(
        f"back up {count:,} addresses",
        f"{ours_backup:.1f} s (pgBackRest full, two repositories)",
        "pg_dump -Fc (geo export)",
        f"{peer_backup:.1f} s",
    )
    ctx.report(
        f"restore {count:,} addresses",
        f"{ours_restore:.1f} s (pgBackRest --latest, new directory, started)",
        "pg_restore, one transaction",
        f"{peer_restore:.1f} s",
    )
    before, after = _chosen_second(ctx, pitr, work)
    ctx.report(
        "restore to a chosen second",
        f"{before}/50 rows before it, {after}/50 after it",
        "pg_dump",
        "only the moment of the last dump",
        "exact" if (before, after) == (50, 0) else "WRONG",
    )
    console.print(f"repositories: {', '.join(map(str, pitr.repos.paths))}")

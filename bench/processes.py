"""What the servers under test cost, read from /proc: CPU seconds of a process tree, and the
resident memory of a server's workers.

Both are read from the kernel rather than timed: on a shared machine CPU time per request and
resident size do not depend on what else is running, unlike requests per second.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

from bench.common import BenchContext

_TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[int, float, list[str]]]:
    """pid -> (parent pid, CPU seconds of it and of the children it has waited for, argv)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        ticks = sum(int(v) for v in stat[11:15])  # utime, stime, cutime, cstime
        found[int(entry.name)] = (int(stat[1]), ticks / _TICK, argv)
    return found


def _listens_on(argv: list[str], port: int) -> bool:
    return any(a == "--port" and b == str(port) for a, b in itertools.pairwise(argv))


def cpu_seconds(ctx: BenchContext, port: int | None, extra_roots: Sequence[int] = ()) -> float:
    """CPU used so far by PostgreSQL (the postmaster's process tree), by the server started
    with `--port port` (its tree) and by the trees of `extra_roots` (nginx). Exited children
    count through their parent's cutime."""
    procs = processes()
    roots = {int((ctx.root / "pg" / "data" / "postmaster.pid").read_text().split()[0])}
    roots |= set(extra_roots)
    if port is not None:
        roots |= {pid for pid, (_, _, argv) in procs.items() if _listens_on(argv, port)}
    total = 0.0
    for pid, (_, seconds, _) in procs.items():
        ancestor = pid
        while ancestor not in roots and ancestor in procs and ancestor > 1:
            ancestor = procs[ancestor][0]
        if ancestor in roots:
            total += seconds
    return total


def resident_mb(pid: int) -> float:
    """The process's resident set (VmRSS): the memory it really holds, shared pages included."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def server_workers(port: int) -> list[int]:
    """The worker processes of the server started with `--port port`: uvicorn's supervisor
    starts one child per worker with multiprocessing's spawn (`spawn_main` in its argv; its
    resource tracker is a child too, and not a worker); with one worker the supervisor serves
    the requests itself."""
    procs = processes()
    roots = {pid for pid, (_, _, argv) in procs.items() if _listens_on(argv, port)}
    workers = [
        pid
        for pid, (parent, _, argv) in procs.items()
        if parent in roots and any("spawn_main" in a for a in argv)
    ]
    return sorted(workers) or sorted(roots)

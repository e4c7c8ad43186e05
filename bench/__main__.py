"""`python -m bench [NAME ...]`: run every benchmark module (bench/bench_*.py) or the named ones.

Each module exposes `run(ctx: BenchContext) -> None` and reports through `ctx.report`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from bench.common import bench_database, console, print_summary


def main(names: list[str]) -> None:
    available = sorted(
        p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py")
    )
    chosen = names or available
    unknown = set(chosen) - set(available)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; available: {available}")
    with bench_database() as ctx:
        for name in chosen:
            console.rule(name)
            importlib.import_module(f"bench.bench_{name}").run(ctx)
        print_summary(ctx)


if __name__ == "__main__":
    main(sys.argv[1:])

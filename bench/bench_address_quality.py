"""Quality-report throughput on 1,000,000 rows, beside the plain batch geocode of the same rows.

The library: the bench database's generated addresses (bench_addresses loads them when missing;
BENCH_ADDRESS_COUNT sets their number). The rows: a department's list as the issue pictures
it, made from library addresses (bench/address_variants.py): 70% in the library's standard
form, 20% messy variants (typos, missing levels, numerals, noise), 10% house numbers the roads
lack (not found), cycled up to BENCH_QUALITY_ROWS rows (default 1,000,000) with a row number
column beside the address.

Ours: POST /addresses/quality (the upload, the row count and checks in the request), then
GET status until done: upload to the finished report (annotated CSV, summary, not-found rows on
disk). The baseline: the same CSV to POST /addresses/geocode/batch, timed to the last byte of
its streamed answer: the geocoding alone, which the report does and then some. Both on one
`geo serve --workers 1` whose batch worker processes have built their dictionary (a warm-up
batch first), one after the other in the same run; then the summary and the XLSX download of
the report are timed on their own lines.
"""

from __future__ import annotations

import csv
import io
import os
import time
from itertools import cycle, islice

import httpx

from bench.address_variants import standard, variants
from bench.bench_addresses import _known, _library, _sources
from bench.common import BenchContext, console, running_server

ROWS = int(os.environ.get("BENCH_QUALITY_ROWS", "1000000"))
SOURCES = min(ROWS, 20_000)
SEED = 15


def _texts() -> list[str]:
    sources, _ = _sources(SOURCES, 37)
    plain = [v.text for v in standard(sources)]
    messy = [v.text for v in variants(sources, _known(), SEED)]
    missing = [f"{s.district}{s.road}{9000 + i % 999}号" for i, s in enumerate(sources) if s.road]
    mix: list[str] = []
    for i in range(len(sources)):
        share = i % 10
        if share < 7:
            mix.append(plain[i])
        elif share < 9:
            mix.append(messy[i])
        else:
            mix.append(missing[i % len(missing)])
    return list(islice(cycle(mix), ROWS))


def _csv(texts: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["编号", "地址"])
    writer.writerows([[str(i), t] for i, t in enumerate(texts, 1)])
    return out.getvalue().encode()


def _batch(client: httpx.Client, data: bytes) -> float:
    started = time.perf_counter()
    with client.stream(
        "POST", "/addresses/geocode/batch", files={"file": ("rows.csv", data, "text/csv")}
    ) as response:
        response.raise_for_status()
        for _ in response.iter_bytes():
            pass
    return time.perf_counter() - started


def _report(client: httpx.Client, data: bytes) -> tuple[float, float, dict[str, object]]:
    """Seconds to the finished report, of which the upload's answer (202), and its state."""
    started = time.perf_counter()
    made = client.post("/addresses/quality", files={"file": ("rows.csv", data, "text/csv")})
    made.raise_for_status()
    accepted = time.perf_counter() - started
    while True:
        state = client.get(made.headers["Location"]).json()
        if state["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    if state["status"] != "done":
        raise RuntimeError(f"the report failed: {state}")
    return time.perf_counter() - started, accepted, state


def run(ctx: BenchContext) -> None:
    _library(ctx)
    texts = _texts()
    data = _csv(texts)
    console.print(f"{len(texts):,} rows, {len(data) / 1e6:.1f} MB of CSV")
    headers = {"Authorization": f"Bearer {ctx.admin_key}"}
    with (
        running_server(ctx, workers=1) as base,
        httpx.Client(base_url=base, headers=headers, timeout=7200) as client,
    ):
        _batch(client, _csv(texts[:5000]))  # the batch worker processes build their dictionary
        plain = _batch(client, data)
        seconds, accepted, state = _report(client, data)
        links = state["links"]
        assert isinstance(links, dict)
        started = time.perf_counter()
        summary = client.get(links["summary"])
        summary.raise_for_status()
        summary_s = time.perf_counter() - started
        started = time.perf_counter()
        client.get(links["xlsx"]).raise_for_status()
        xlsx_s = time.perf_counter() - started
    console.print(f"counts: {state['counts']}")
    ctx.report(
        f"quality report, {len(texts):,} CSV rows (upload to finished report; of which the "
        f"checks and row count before the 202: {accepted:.1f} s)",
        f"{len(texts) / seconds:,.0f} rows/s ({seconds:.1f} s)",
        "batch geocode of the same rows",
        f"{len(texts) / plain:,.0f} rows/s ({plain:.1f} s)",
        f"{seconds / plain:.2f}x the batch's time",
    )
    ctx.report(
        f"quality report: summary JSON, then the first XLSX download ({len(texts):,} rows)",
        f"{summary_s * 1000:.0f} ms; {xlsx_s:.1f} s",
        "-",
        "-",
    )

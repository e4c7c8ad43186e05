"""Address queries on 10,000,000 generated addresses: geocode, suggest, reverse, batch, and
what a worker holds in memory.

The library: the bench database's 10,000,000 demo addresses (bench_address_import loads and times
them; run on its own, this module runs that import first).

Geocode: 2,000 messy variants of library addresses (bench/address_variants.py: typos, missing
levels, Chinese numerals, full-width digits, 楼-门-户 dashes, noise), each knowing the address it
came from. Ours: `addressbook.geocoding.geocoder.geocode` called in-process, one transaction per
text, with the endpoint's arguments (`check_text`, limit 5): the code path of GET
/addresses/geocode without HTTP (the same strings over HTTP against `geo serve --workers 2` are
reported on their own line).
The naive baseline: one pg_trgm query over the standard full form,
`WHERE full_address % q ORDER BY similarity(full_address, q) DESC LIMIT 1` on a GIN index over
every full form, through psycopg directly. Same strings, same run, side by side. The library
keeps no such index (its text similarity goes through the trigram-indexed road and compound
names), so the baseline's own index is built here as part of the peer's set-up, after and outside
our timed import; its build time is printed.

Accuracy (both): the share of texts whose top answer is the right address at least to the house
number or building, precisely: it has the source address's district, road and house number, and,
when the source has a building, its compound and building too (a unit- or room-level slip inside
the right building counts; a neighbour's building does not). The share matching the exact
address id is printed beside it.

Suggest: 1,000 as-you-type texts from library road and compound names (two-character Chinese
prefixes, pinyin prefixes, initials, a pinyin with two letters swapped), in-process; the hit rate
is the share whose suggestions include the name. Reverse: 2,000 points within ~200 m of library
addresses, in-process. Batch: 20,000 rows as a CSV upload to POST /addresses/geocode/batch on
`geo serve --workers 1` (after one warm-up batch, so that its batch worker processes have their
dictionary), timed to the last byte of the streamed answer: once as messy variants made like the
2,000 above, once as the same addresses in the library's standard form (what a department's
export of records keyed on the library looks like).

Memory: the dictionary's own size (the Python objects a second build leaves alive, counted by
tracemalloc), and the resident size (VmRSS) of each `geo serve` worker after the HTTP geocode
run, when each has built its dictionary and answered 2,000 texts.
"""

from __future__ import annotations

import csv
import gc
import io
import os
import random
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import psycopg
from sqlalchemy import text

from bench import bench_address_import
from bench.address_variants import Source, Variant, standard, variants
from bench.common import BenchContext, console, ms_summary, percentile, running_server
from bench.processes import resident_mb, server_workers

VARIANTS = int(os.environ.get("BENCH_GEOCODE_VARIANTS", "2000"))
# The pg_trgm baseline answers the first of them only: over 10,000,000 addresses one of its
# searches takes seconds (the `%` operator matches most of a district's rows, each rechecked),
# so all 2,000 would take well over an hour. Ours is reported on the same texts beside it.
BASELINE_TEXTS = int(os.environ.get("BENCH_BASELINE_TEXTS", "200"))
BATCH_ROWS = int(os.environ.get("BENCH_BATCH_ROWS", "20000"))
SEED = 7
ACCURACY_TARGET = 0.97
GEOCODE_P95_MS = 30.0
SUGGEST_P95_MS = 20.0
REVERSE_P95_MS = 10.0
BATCH_ROWS_PER_S = 3000.0

_SOURCES = """
SELECT a.id, d.name, s.name, a.road, a.house_number, a.compound, a.building, a.unit, a.room,
       a.district_code
FROM addresses a
JOIN current_admin_areas d ON d.code = a.district_code
LEFT JOIN current_admin_areas s ON s.code = a.subdistrict_code
WHERE a.status = 'active' AND a.id % 97 = :slice
ORDER BY md5(a.id::text) LIMIT :n
"""
_BASELINE = """
SELECT id, district_code, road, house_number, compound, building FROM addresses
WHERE full_address %% %(q)s ORDER BY similarity(full_address, %(q)s) DESC LIMIT 1
"""


@dataclass(frozen=True)
class Truth:
    """What a right answer must share with the source address."""

    id: int
    district_code: str
    road: str | None
    house_number: str | None
    compound: str | None
    building: str | None

    def met_by(self, found: dict[str, object] | None) -> bool:
        if found is None:
            return False
        keys = ("district_code", "road", "house_number")
        if self.building is not None:
            keys += ("compound", "building")
        return all(found.get(k) == getattr(self, k) for k in keys)


def _library(ctx: BenchContext) -> None:
    from geo.db import session_scope

    with session_scope() as session:
        have = session.execute(text("SELECT count(*) FROM addresses")).scalar_one()
    if have < bench_address_import.COUNT:
        console.print(f"{have:,} addresses in the bench database: loading the library first")
        bench_address_import.run(ctx)


def _baseline_index() -> None:
    """The naive baseline's GIN index over every full form (the peer's set-up, not ours). Over
    10,000,000 addresses it takes minutes: no statement timeout, and room to sort in memory."""
    from geo.db import session_scope

    started = time.perf_counter()
    with session_scope() as session:
        session.execute(text("SET LOCAL statement_timeout = 0"))
        session.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        session.execute(
            text(
                "CREATE INDEX IF NOT EXISTS bench_baseline_full_trgm ON addresses "
                "USING gin (full_address gin_trgm_ops)"
            )
        )
    seconds = time.perf_counter() - started
    console.print(f"the baseline's trigram index on full_address built in {seconds:.1f} s")


def _sources(n: int, slice_: int) -> tuple[list[Source], dict[int, Truth]]:
    from geo.db import session_scope

    with session_scope() as session:
        rows = session.execute(text(_SOURCES), {"n": n, "slice": slice_}).tuples().all()
    sources = [Source(*row[:9]) for row in rows]
    truth = {row[0]: Truth(row[0], row[9], row[3], row[4], row[5], row[6]) for row in rows}
    return sources, truth


def _known() -> Callable[[str, str], bool]:
    """known(district name, name): the name is a road or compound of that district."""
    from addressbook.geocoding import gazetteer
    from geo.db import session_scope

    with session_scope() as session:
        library = gazetteer.current(session)

    def known(district: str, name: str) -> bool:
        codes = library.area_codes("district", district)
        return any(
            s.district_code in codes
            for kind in ("road", "compound")
            for s in library.streets(kind, name)
        )

    return known


def _ours(texts: Sequence[Variant]) -> tuple[list[float], list[dict[str, object] | None], int]:
    from addressbook.geocoding.geocoder import check_text, geocode
    from geo.db import session_scope

    latencies, answers, confident = [], [], 0
    for variant in texts:
        started = time.perf_counter()
        with session_scope() as session:
            found = geocode(session, check_text(variant.text), limit=5)
        latencies.append(time.perf_counter() - started)
        best = found[0] if found else None
        answers.append({**best.elements, "id": best.address_id} if best else None)
        confident += bool(best and best.confident)
    return latencies, answers, confident


def _baseline(
    ctx: BenchContext, texts: Sequence[Variant]
) -> tuple[list[float], list[dict[str, object] | None]]:
    latencies, answers = [], []
    keys = ("id", "district_code", "road", "house_number", "compound", "building")
    with psycopg.connect(ctx.psycopg_url, autocommit=True) as conn:
        for variant in texts:
            started = time.perf_counter()
            row = conn.execute(_BASELINE, {"q": variant.text}, prepare=True).fetchone()
            latencies.append(time.perf_counter() - started)
            answers.append(dict(zip(keys, row, strict=True)) if row else None)
    return latencies, answers


def _scored(
    texts: Sequence[Variant], answers: Sequence[dict[str, object] | None], truth: dict[int, Truth]
) -> tuple[float, float]:
    right = sum(truth[v.source.id].met_by(a) for v, a in zip(texts, answers, strict=True))
    exact = sum(bool(a and a.get("id") == v.source.id) for v, a in zip(texts, answers, strict=True))
    return right / len(texts), exact / len(texts)


def _p95(samples: Sequence[float]) -> float:
    return percentile([s * 1000 for s in samples], 95)


def _geocode(ctx: BenchContext, texts: list[Variant], truth: dict[int, Truth]) -> None:
    ours, our_answers, confident = _ours(texts)
    shared = texts[:BASELINE_TEXTS]
    base, base_answers = _baseline(ctx, shared)
    accuracy, exact = _scored(texts, our_answers, truth)
    shared_accuracy, shared_exact = _scored(shared, our_answers[: len(shared)], truth)
    base_accuracy, base_exact = _scored(shared, base_answers, truth)
    misses: dict[str, int] = {}
    for v, a in zip(texts, our_answers, strict=True):
        if not truth[v.source.id].met_by(a):
            for kind in v.kinds:
                misses[kind] = misses.get(kind, 0) + 1
    console.print(f"our misses by variant kind: {misses}; confident answers: {confident}")
    beats = shared_accuracy > base_accuracy and _p95(ours[: len(shared)]) < _p95(base)
    ctx.report(
        f"geocode accuracy, {len(texts):,} variants (exact id in brackets); the baseline's "
        f"{len(shared):,} first",
        f"{accuracy:.1%} ({exact:.1%}); {shared_accuracy:.1%} ({shared_exact:.1%})",
        f"pg_trgm similarity on full_address, the {len(shared):,} first",
        f"{base_accuracy:.1%} ({base_exact:.1%})",
        f"target >= {ACCURACY_TARGET:.0%}: {'met' if accuracy >= ACCURACY_TARGET else 'MISSED'}",
    )
    ctx.report(
        f"geocode latency, in-process ({len(texts):,} texts; the baseline's {len(shared):,})",
        ms_summary(ours),
        "pg_trgm similarity on full_address",
        ms_summary(base),
        f"p95 target < {GEOCODE_P95_MS:.0f} ms: "
        f"{'met' if _p95(ours) < GEOCODE_P95_MS else 'MISSED'}; "
        f"beats the baseline on both: {'yes' if beats else 'NO'}",
    )


def _gazetteer_build() -> float:
    from addressbook.geocoding import gazetteer
    from geo.db import session_scope

    started = time.perf_counter()
    with session_scope() as session:
        library = gazetteer.build(session)
    seconds = time.perf_counter() - started
    console.print(f"dictionary: {len(library.gazetteer):,} spellings built in {seconds:.2f} s")
    return seconds


def _gazetteer_mb() -> float:
    """The dictionary's own size: what one build leaves allocated while it is held (the build's
    temporary objects freed), counted by tracemalloc so that the allocator's kept pages and the
    bench's own objects do not count."""
    from addressbook.geocoding import gazetteer
    from geo.db import session_scope

    gc.collect()
    tracemalloc.start()
    try:
        with session_scope() as session:
            library = gazetteer.build(session)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del library
    return held / 2**20


def _suggest_texts() -> list[tuple[str, str]]:
    """(typed text, the name it should suggest)."""
    from addressbook.geocoding.names import pinyin
    from geo.db import session_scope

    with session_scope() as session:
        names = (
            session.execute(
                text(
                    "SELECT DISTINCT name FROM address_names WHERE kind IN ('road', 'compound') "
                    "AND length(name) >= 4 ORDER BY name"
                )
            )
            .scalars()
            .all()
        )
    rng = random.Random(SEED)
    picked = rng.sample(list(names), 250)
    out = []
    for name in picked:
        full, initials = pinyin(name)
        swapped = full[:2] + full[3] + full[2] + full[4:9]
        out += [(name[:2], name), (full[:7], name), (initials, name), (swapped, name)]
    return out


def _suggest(ctx: BenchContext) -> None:
    from addressbook.geocoding.suggest import suggest
    from geo.db import session_scope

    typed = _suggest_texts()
    latencies, hits = [], 0
    for q, name in typed:
        started = time.perf_counter()
        with session_scope() as session:
            found = suggest(session, q, limit=10)
        latencies.append(time.perf_counter() - started)
        hits += any(s.name == name for s in found)
    ctx.report(
        f"suggest latency, {len(typed):,} texts (hit rate {hits / len(typed):.0%})",
        ms_summary(latencies),
        "-",
        "-",
        f"p95 target < {SUGGEST_P95_MS:.0f} ms: "
        f"{'met' if _p95(latencies) < SUGGEST_P95_MS else 'MISSED'}",
    )


def _reverse(ctx: BenchContext) -> None:
    from addressbook.geocoding.reverse import reverse
    from geo.db import session_scope

    with session_scope() as session:
        points = (
            session.execute(
                text(
                    "SELECT ST_X(geom), ST_Y(geom) FROM addresses WHERE id % 89 = 3 "
                    "ORDER BY md5(id::text) LIMIT 2000"
                )
            )
            .tuples()
            .all()
        )
    rng = random.Random(SEED)
    latencies, found = [], 0
    for x, y in points:
        px, py = x + rng.uniform(-0.002, 0.002), y + rng.uniform(-0.002, 0.002)
        started = time.perf_counter()
        with session_scope() as session:
            answer = reverse(session, px, py, radius=1000)
        latencies.append(time.perf_counter() - started)
        found += answer.address is not None
    ctx.report(
        f"reverse latency, {len(points):,} points ({found / len(points):.0%} with an address)",
        ms_summary(latencies),
        "-",
        "-",
        f"p95 target < {REVERSE_P95_MS:.0f} ms: "
        f"{'met' if _p95(latencies) < REVERSE_P95_MS else 'MISSED'}",
    )


def _http_geocode(base: str, texts: Sequence[Variant]) -> list[float]:
    latencies = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for variant in texts:
            started = time.perf_counter()
            response = client.get("/addresses/geocode", params={"q": variant.text})
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
    return latencies


def _elements(ids: Sequence[int]) -> dict[int, dict[str, object]]:
    """Stored elements of the batch's answers, to score them like the other answers."""
    from geo.db import session_scope

    keys = ("id", "district_code", "road", "house_number", "compound", "building")
    with session_scope() as session:
        rows = session.execute(
            text(f"SELECT {', '.join(keys)} FROM addresses WHERE id = ANY(:ids)"),
            {"ids": list(ids)},
        ).tuples()
        return {row[0]: dict(zip(keys, row, strict=True)) for row in rows}


def _post_batch(base: str, key: str, rows: Sequence[Variant]) -> tuple[float, str]:
    data = io.StringIO()
    writer = csv.writer(data)
    writer.writerow(["case", "地址"])
    writer.writerows([[str(i), v.text] for i, v in enumerate(rows)])
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=3600) as client:
        response = client.post(
            "/addresses/geocode/batch",
            files={"file": ("batch.csv", data.getvalue().encode(), "text/csv")},
            headers={"Authorization": f"Bearer {key}"},
        )
    seconds = time.perf_counter() - started
    response.raise_for_status()
    return seconds, response.text


def _batch(ctx: BenchContext, workloads: dict[str, list[Variant]], truth: dict[int, Truth]) -> None:
    """On a server of one worker, whose batch worker processes have already built their
    dictionary (one warm-up batch), as on a server that has been up for a while."""
    with running_server(ctx, workers=1) as base:
        _post_batch(base, ctx.admin_key, next(iter(workloads.values()))[:5000])
        for label, rows in workloads.items():
            seconds, answer = _post_batch(base, ctx.admin_key, rows)
            out = list(csv.DictReader(io.StringIO(answer)))
            answers = [int(r["address_id"]) if r["address_id"] else None for r in out]
            found = _elements([a for a in answers if a is not None])
            right = sum(
                truth[rows[int(r["case"])].source.id].met_by(found.get(a) if a else None)
                for r, a in zip(out, answers, strict=True)
            )
            rate = len(rows) / seconds
            ctx.report(
                f"batch geocode over HTTP, {len(rows):,} CSV rows, {label} "
                f"({right / len(out):.1%} right)",
                f"{rate:,.0f} rows/s ({seconds:.1f} s)",
                "-",
                "-",
                f"target >= {BATCH_ROWS_PER_S:,.0f} rows/s: "
                f"{'met' if rate >= BATCH_ROWS_PER_S else 'MISSED'}",
            )


def run(ctx: BenchContext) -> None:
    _library(ctx)
    build = _gazetteer_build()
    dictionary_mb = _gazetteer_mb()
    sources, truth = _sources(VARIANTS, 11)
    known = _known()
    texts = variants(sources, known, SEED)
    kinds: dict[str, int] = {}
    for v in texts:
        for kind in v.kinds:
            kinds[kind] = kinds.get(kind, 0) + 1
    console.print(f"{len(texts):,} variants: {kinds}; e.g. {[v.text for v in texts[:3]]}")
    _baseline_index()
    _ours(texts[:20])  # warm the caches and PostgreSQL's buffers for both contenders alike
    _baseline(ctx, texts[:20])
    _geocode(ctx, texts, truth)
    ctx.report("dictionary build (cold start of a worker)", f"{build:.2f} s", "-", "-")
    _suggest(ctx)
    _reverse(ctx)
    batch_sources, batch_truth = _sources(BATCH_ROWS, 29)
    workloads = {
        "messy variants as above": variants(batch_sources, known, SEED + 1),
        "in the library's standard form": standard(batch_sources),
    }
    with running_server(ctx, workers=2) as base:
        _http_geocode(base, texts[:100])  # both workers build their dictionary
        http = _http_geocode(base, texts)
        rss = [resident_mb(pid) for pid in server_workers(int(base.rsplit(":", 1)[1]))]
    ctx.report(
        "geocode latency over HTTP (geo serve --workers 2)",
        ms_summary(http),
        "-",
        "-",
        f"p95 target < {GEOCODE_P95_MS:.0f} ms: "
        f"{'met' if _p95(http) < GEOCODE_P95_MS else 'MISSED'}",
    )
    ctx.report(
        "resident memory per worker, after the HTTP geocode run",
        ", ".join(f"{mb:,.0f} MB" for mb in rss) + f" (dictionary {dictionary_mb:,.0f} MB)",
        "-",
        "-",
        "reported (no target)",
    )
    _batch(ctx, workloads, batch_truth)

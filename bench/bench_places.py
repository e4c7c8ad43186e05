"""Named-place search: 1,000 generated place queries, ours beside a plain pg_trgm search.

The library: what `make run` loads (addressbook.sample: the divisions, demo grids, generated
addresses, BENCH_PLACES_ADDRESSES of them, 200,000 by default, and the demo's named places), or
the library another module loaded into the bench database; the demo places are then imported
once more (replacing themselves), and that import is timed.

Queries, from places picked with a fixed seed, each knowing the place it names:
- alias: one of the place's aliases (南大 for 南开大学);
- typo: the name with one character replaced by another from the places' names (three
  characters or more, the first kept);
- no prefix: the name without its leading 天津市 or district (第一中心医院, for 天津市第一中心
  医院), when no other place shares the rest;
- district prefix: the district written before a name that lacks it (南开区南开大学);
- name: the name as it is.

Ours: `addressbook.geocoding.geocoder.geocode` in-process (limit 1), right when the top
candidate is the place (match level `place`). The baseline: one pg_trgm query over the place
names, `WHERE name % q ORDER BY similarity(name, q) DESC LIMIT 1` on ix_places_name_trgm, right
when it returns the place. Same queries, same run; accuracy by kind and latency for both.
"""

from __future__ import annotations

import io
import os
import random
import time
from collections import Counter
from dataclasses import dataclass

import psycopg
from sqlalchemy import text

from bench.common import BenchContext, console, ms_summary

QUERIES = int(os.environ.get("BENCH_PLACES_QUERIES", "1000"))
ADDRESSES = int(os.environ.get("BENCH_PLACES_ADDRESSES", "200000"))
SEED = 15
_BASELINE = """
SELECT id FROM places WHERE name %% %(q)s ORDER BY similarity(name, %(q)s) DESC LIMIT 1
"""


@dataclass(frozen=True)
class Stored:
    id: int
    name: str
    aliases: tuple[str, ...]
    district: str


@dataclass(frozen=True)
class Query:
    text: str
    place: int
    kind: str


def _library(ctx: BenchContext) -> None:
    """The library, then the demo places imported once more (replacing themselves), timed."""
    from addressbook.geocoding import gazetteer
    from addressbook.ingest import demo, demo_places
    from addressbook.places.read import read_places
    from addressbook.places.store import import_places
    from addressbook.sample import SAMPLE, SAMPLE_SEED, load_sample
    from geo.db import bulk_session_scope

    started = time.perf_counter()
    with bulk_session_scope() as session:
        if not session.execute(text("SELECT count(*) FROM admin_areas")).scalar_one():
            load_sample(session, ADDRESSES)
    console.print(f"library ready in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with bulk_session_scope() as session:
        data = demo_places.places_csv(demo.load_communities(session), SAMPLE_SEED)
        rows = read_places(io.BytesIO(data), "demo-places.csv")
        report = import_places(session, rows, demo_places.PLACE_SOURCE, SAMPLE)
    gazetteer.expire()
    ctx.report(
        f"place import ({report.imported:,} places, every row checked and placed)",
        f"{time.perf_counter() - started:.1f} s",
        "-",
        "-",
    )


def _places() -> list[Stored]:
    from geo.db import session_scope

    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT p.id, p.name, p.aliases, d.name FROM places p "
                "JOIN current_admin_areas d ON d.code = p.district_code ORDER BY p.id"
            )
        ).tuples()
        return [Stored(i, n, tuple(a or ()), d) for i, n, a, d in rows]


def _stripped(place: Stored) -> str | None:
    rest = place.name
    for prefix in ("天津市", place.district):
        if rest.startswith(prefix) and len(rest) - len(prefix) >= 3:
            rest = rest[len(prefix) :]
    return rest if rest != place.name else None


def queries(places: list[Stored], count: int, seed: int) -> list[Query]:
    """`count` queries in the five kinds, as evenly as the places allow."""
    rng = random.Random(seed)
    pool = sorted({c for p in places for c in p.name})
    rests = Counter(r for p in places if (r := _stripped(p)))
    rests.update(p.name for p in places)
    makers = {
        "alias": lambda p: rng.choice(p.aliases) if p.aliases else None,
        "typo": lambda p: _typo(rng, pool, p.name),
        "no prefix": lambda p: r if (r := _stripped(p)) and rests[r] == 1 else None,
        "district prefix": lambda p: None if _stripped(p) else p.district + p.name,
        "name": lambda p: p.name,
    }
    out: list[Query] = []
    kinds = list(makers)
    candidates = {kind: [p for p in places if makers[kind](p)] for kind in kinds}
    while len(out) < count:
        kind = kinds[len(out) % len(kinds)]
        place = rng.choice(candidates[kind] or places)
        made = makers[kind](place) or place.name
        out.append(Query(made, place.id, kind))
    return out


def _typo(rng: random.Random, pool: list[str], name: str) -> str | None:
    if len(name) < 3:
        return None
    at = rng.randrange(1, len(name))
    other = rng.choice([c for c in pool[:400] if c != name[at]] or pool)
    return name[:at] + other + name[at + 1 :]


def _ours(found: list[Query]) -> tuple[list[bool], list[float], list[str]]:
    """Whether each query found its place, the times, and what the misses found instead."""
    from addressbook.geocoding.geocoder import check_text, geocode
    from geo.db import session_scope

    right, times, misses = [], [], []
    for query in found:
        started = time.perf_counter()
        with session_scope() as session:
            top = geocode(session, check_text(query.text), limit=1)
        times.append(time.perf_counter() - started)
        place = top[0].place if top else None
        ok = bool(top) and top[0].level == "place" and place is not None and place.id == query.place
        right.append(ok)
        if not ok:
            got = f"{top[0].level} {top[0].standard}" if top else "nothing"
            misses.append(f"{query.kind}: {query.text} -> {got}")
    return right, times, misses


def _baseline(ctx: BenchContext, found: list[Query]) -> tuple[list[bool], list[float]]:
    right, times = [], []
    with psycopg.connect(ctx.psycopg_url, autocommit=True) as conn:
        for query in found:
            started = time.perf_counter()
            row = conn.execute(_BASELINE, {"q": query.text}).fetchone()
            times.append(time.perf_counter() - started)
            right.append(row is not None and row[0] == query.place)
    return right, times


def _by_kind(found: list[Query], right: list[bool]) -> str:
    kinds: dict[str, list[bool]] = {}
    for query, ok in zip(found, right, strict=True):
        kinds.setdefault(query.kind, []).append(ok)
    return ", ".join(f"{k} {sum(v) / len(v):.0%}" for k, v in kinds.items())


def run(ctx: BenchContext) -> None:
    _library(ctx)
    places = _places()
    found = queries(places, QUERIES, SEED)
    console.print(f"{len(places):,} places; e.g. {[q.text for q in found[:5]]}")
    _ours(found[:20])  # the dictionary, built once per worker, is not part of a query's time
    ours, our_times, misses = _ours(found)
    console.print(f"misses, e.g.: {misses[:: max(1, len(misses) // 12)][:12]}")
    base, base_times = _baseline(ctx, found)
    ctx.report(
        f"place search accuracy, {len(found):,} queries",
        f"{sum(ours) / len(ours):.1%}",
        "pg_trgm similarity over place names",
        f"{sum(base) / len(base):.1%}",
    )
    ctx.report("  by kind", _by_kind(found, ours), "pg_trgm by kind", _by_kind(found, base))
    ctx.report(
        "place search latency (geocode in-process)",
        ms_summary(our_times),
        "pg_trgm query",
        ms_summary(base_times),
    )

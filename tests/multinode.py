"""The multi-node layout on one machine (issue 14 part 5): the scenario tests/test_multinode.py
asserts on (and `python -m bench operations` runs that test to print its figures).

nginx with the shipped config (deploy/nginx/geo.conf, via bench/nginx_proxy.py) in front of two
`geo serve` processes; behind them a pg_auto_failover pair, its monitor and a read replica
(geo.ha.cluster.HaFormation with read_replica=True). A bounded mixed load (tiles, items,
geocoding, single-feature writes, a few uploads) runs through nginx while (a) one API process is
SIGKILLed and then (b) the primary's keeper and PostgreSQL are. Every request is recorded with
its start and end, so each phase's failures are counted from the record.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.nginx_proxy import nginx_proxy
from geo.ha.cluster import HaFormation
from tests.layers_helpers import CENTER, collection, point_features
from tests.live_server import live_server

# Everything is bounded: the load stops after LOAD_SECONDS whatever happens; the wait for writes
# to succeed again gives up after OUTAGE_MAX_S.
BASELINE_S = 4.0
AFTER_API_KILL_S = 6.0
OUTAGE_MAX_S = 100.0
AFTER_RECOVERY_S = 5.0
LOAD_SECONDS = BASELINE_S + AFTER_API_KILL_S + OUTAGE_MAX_S + AFTER_RECOVERY_S + 10
LAYER = "multinode"
TILES = [(14, 13525 + dx, 6255 + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
# One client's round: reads outnumber writes, as in the city's traffic; an upload now and then.
ROUND = ("tile", "items", "write", "geocode", "tile", "items", "write")
UPLOAD_EVERY = 20  # rounds
UPLOADED = 3  # features per upload


@dataclass(frozen=True)
class Outcome:
    kind: str  # tile, items, geocode, write, upload
    start: float
    end: float
    status: int  # 0: no HTTP answer at all
    retry_after: str | None = None
    tag: str | None = None  # what a write put in the database (its `name`)
    cache: str | None = None  # nginx's X-Cache-Status

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def write(self) -> bool:
        return self.kind in ("write", "upload")


Request = Callable[[httpx.Client, str, str], httpx.Response]


@dataclass
class Load:
    """Client threads sending ROUNDs through `base` until stopped, past the deadline, or after
    `max_requests` each; every request recorded. A client told to come back later (503) waits
    `backoff_s` (not the whole Retry-After: writes' return is measured to within that pause)."""

    base: str
    request: Request
    deadline: float
    threads: int = 4
    max_requests: int = 1500
    pause_s: float = 0.03
    backoff_s: float = 0.5
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for t in range(self.threads):
            worker = threading.Thread(target=self._run, args=(t,), daemon=True)
            self._workers.append(worker)
            worker.start()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _run(self, thread: int) -> None:
        with httpx.Client(base_url=self.base, timeout=httpx.Timeout(20, connect=3)) as http:
            for n in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > self.deadline:
                    return
                kind = ROUND[n % len(ROUND)]
                if n % (len(ROUND) * UPLOAD_EVERY) == len(ROUND) * UPLOAD_EVERY - 1:
                    kind = "upload"
                tag = f"{kind[0]}-{thread}-{n}" if kind in ("write", "upload") else None
                started = time.monotonic()
                try:
                    r = self.request(http, kind, tag or f"{thread}-{n}")
                    status, retry, cache = (
                        r.status_code,
                        r.headers.get("retry-after"),
                        r.headers.get("x-cache-status"),
                    )
                except httpx.HTTPError:
                    status, retry, cache = 0, None, None
                with self._lock:
                    self.outcomes.append(
                        Outcome(kind, started, time.monotonic(), status, retry, tag, cache)
                    )
                time.sleep(self.backoff_s if status == 503 else self.pause_s)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def first_write_ok_after(self, moment: float) -> float | None:
        ends = [o.end for o in self.snapshot() if o.write and o.ok and o.start >= moment]
        return min(ends) if ends else None


def _setup(base: str) -> dict[str, str]:
    """A department, its editor key (as headers) and a public points layer, made through nginx."""
    admin = {"Authorization": f"Bearer {os.environ['GEO_ADMIN_KEY']}"}
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/departments", json={"name": "多节点部门", "code": "multi"}, headers=admin)
        assert r.status_code == 201, r.text
        r = http.post("/departments/multi/keys", json={"role": "editor"}, headers=admin)
        assert r.status_code == 201, r.text
        editor = {"Authorization": f"Bearer {r.json()['key']}"}
        r = http.post(
            f"/collections/{LAYER}/upload",
            params={"access": "public"},
            files={"file": ("points.geojson", collection(point_features(200)))},
            headers=editor,
        )
        assert r.status_code == 201, r.text
    return editor


def _requester(editor: dict[str, str]) -> Request:
    def request(http: httpx.Client, kind: str, tag: str) -> httpx.Response:
        n = int(tag.rsplit("-", 1)[1])
        if kind == "tile":
            z, x, y = TILES[n % len(TILES)]
            return http.get(f"/tiles/{LAYER}/{z}/{x}/{y}.mvt")
        if kind == "items":
            return http.get(f"/collections/{LAYER}/items", params={"limit": 10, "offset": n % 50})
        if kind == "geocode":
            return http.get("/addresses/geocode", params={"q": "天津市和平区南京路1号"})
        if kind == "write":
            feature = {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [CENTER[0] + n % 100 * 5e-4, 39.1]},
                "properties": {"name": tag, "pop": n % 7, "score": 1.0},
            }
            return http.post(f"/collections/{LAYER}/items", json=feature, headers=editor)
        features = point_features(UPLOADED, start=n % 100)
        for i, f in enumerate(features):
            f["properties"]["name"] = f"{tag}-{i}"
        return http.post(
            f"/collections/{LAYER}/upload",
            params={"mode": "append"},
            files={"file": ("more.geojson", collection(features))},
            headers=editor,
        )

    return request


def stored_names(ha: HaFormation) -> set[str]:
    """The layer's feature names on the primary (the new one after the failover)."""
    engine = create_engine(ha.url())
    try:
        with engine.connect() as conn:
            table = conn.execute(
                text("SELECT table_name FROM layers WHERE id = :id"), {"id": LAYER}
            ).scalar_one()
            return set(conn.execute(text(f'SELECT name FROM layerdata."{table}"')).scalars())
    finally:
        engine.dispose()


def acknowledged(outcomes: list[Outcome]) -> set[str]:
    """The names of every feature a 2xx answer acknowledged."""
    names: set[str] = set()
    for o in outcomes:
        if o.write and o.ok and o.tag:
            names |= {o.tag} if o.kind == "write" else {f"{o.tag}-{i}" for i in range(UPLOADED)}
    return names


def tally(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """Per kind: requests, 2xx, and each failed status (0: no answer)."""
    table: dict[str, Counter[str]] = {}
    for o in outcomes:
        counts = table.setdefault(o.kind, Counter())
        counts["requests"] += 1
        counts["ok" if o.ok else f"status {o.status}"] += 1
    return {kind: dict(c) for kind, c in sorted(table.items())}


@dataclass
class Run:
    """What happened: every request, the moments of the kills and the figures."""

    outcomes: list[Outcome]
    api_killed: float
    db_killed: float
    recovered: float | None
    old_primary: str
    new_primary: str | None
    survivor_alive: bool
    lost: list[str]
    figures: dict[str, Any]

    def window(self, name: str) -> list[Outcome]:
        """baseline: ended before the API kill; api: ended between the kills; outage: ended
        after the primary's kill and started before writes succeeded again; after: the rest."""
        end = self.recovered or self.db_killed + OUTAGE_MAX_S
        return [
            o
            for o in self.outcomes
            if {
                "baseline": o.end < self.api_killed,
                "api": self.api_killed <= o.end < self.db_killed,
                "outage": o.end >= self.db_killed and o.start < end,
                "after": o.start >= end,
            }[name]
        ]


def run(ha: HaFormation) -> Run:
    """The scenario against a created, migrated formation (read replica included); every
    process it starts is stopped when it returns or raises."""
    # Unversioned tile URLs uncacheable (max-age=0), so tile reads reach the API and the replica
    # rather than nginx's cache: the figures say what the database layout serves.
    env = {
        "DATABASE_URL": ha.url(),
        "GEO_READ_URLS": ha.url(read=True),
        "GEO_RATE_LIMITS": "off",
        "GEO_TILE_MAX_AGE": "0",
    }
    with ExitStack() as stack:
        api = [stack.enter_context(live_server(env=env, timeout=90)) for _ in range(2)]
        proxy = stack.enter_context(nginx_proxy(*(s.base.removeprefix("http://") for s in api)))
        load = Load(proxy.base, _requester(_setup(proxy.base)), time.monotonic() + LOAD_SECONDS)
        load.start()
        stack.callback(load.stop)  # the threads end whatever happens below
        time.sleep(BASELINE_S)
        api_killed = time.monotonic()
        api[0].kill9()
        time.sleep(AFTER_API_KILL_S)
        old = ha.primary()
        assert old is not None, ha.states()
        ha.kill_node(old)
        db_killed = time.monotonic()
        recovered = None
        while recovered is None and time.monotonic() - db_killed < OUTAGE_MAX_S:
            time.sleep(0.5)
            recovered = load.first_write_ok_after(db_killed)
        time.sleep(AFTER_RECOVERY_S)
        load.stop()
        dead = api[0].base.removeprefix("http://")
        # nginx logs each attempt on the killed process (refused, or cut off mid-answer)
        attempts = sum(1 for line in proxy.error_log().splitlines() if f"//{dead}/" in line)
        result = Run(
            load.snapshot(), api_killed, db_killed, recovered, old, ha.primary(),
            api[1].alive(), [], {},
        )  # fmt: skip
    result.lost = sorted(acknowledged(result.outcomes) - stored_names(ha))
    failed_api = [o for o in result.window("api") if not o.ok]
    outage = result.window("outage")
    result.figures = {
        "requests": len(result.outcomes),
        "per_kind": tally(result.outcomes),
        "api_process_killed": {
            "requests_after_kill": len(result.window("api")),
            "failed_reads": sum(1 for o in failed_api if not o.write),
            "failed_writes": sum(1 for o in failed_api if o.write),
            "failed_statuses": dict(Counter(o.status for o in failed_api)),
            "attempts_on_the_killed_process_in_nginx_log": attempts,
        },
        "primary_killed": {
            "write_outage_s": round(recovered - db_killed, 1) if recovered else None,
            "during_outage": tally(outage),
            "reads_served_during_outage": sum(1 for o in outage if not o.write and o.ok),
            "tile_reads_from_nginx_cache": sum(1 for o in outage if o.cache == "HIT"),
            "old_primary": old,
            "new_primary": result.new_primary,
        },
        "after_recovery": tally(result.window("after")),
        "writes_acknowledged": len(acknowledged(result.outcomes)),
        "writes_lost": len(result.lost),
    }
    return result

"""Prometheus metrics (prometheus-client), served at the admin-only `/metrics` (geo.routers.health).

What an operator of a city platform watches, each in one place:

- every request's latency, by method, route template (never the raw path: one series per route,
  not per feature id) and status: `geo_http_request_duration_seconds` (its `_count` is the
  request count);
- the tile cache: `geo_tile_cache_lookups_total{result="hit"|"miss"}` (tiles.engine);
- the database pools: connections in use and idle (`geo_db_pool_connections{pool,state}`) and
  requests waiting for one (`geo_db_sessions_waiting`); the tile pools' in
  `geo_tile_pool_connections` (tiles.pool);
- each read replica's replay lag (`geo_replica_lag_seconds`), read when scraped;
- the geocoder's latency (`geo_geocode_duration_seconds`, per call of geocode_many);
- uploaded bytes and rows (`geo_upload_bytes_total`, `geo_upload_rows_total`, by kind).

Numbers are per process: behind nginx each API process is scraped on its own (docs/operations.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from starlette.types import Message, Receive, Scope, Send

from geo.asgi import HttpMiddleware

REQUEST_SECONDS = Histogram(
    "geo_http_request_duration_seconds",
    "Time to answer a request, by method, route template and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TILE_CACHE = Counter(
    "geo_tile_cache_lookups", "Tile cache lookups per layer part, by result", ["result"]
)
GEOCODE_SECONDS = Histogram(
    "geo_geocode_duration_seconds",
    "Time the geocoder took for one call (one text, or one batch of texts)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
UPLOAD_BYTES = Counter("geo_upload_bytes", "Bytes of uploaded files, by kind", ["kind"])
UPLOAD_ROWS = Counter("geo_upload_rows", "Rows (features, addresses) loaded, by kind", ["kind"])
SESSIONS_WAITING = Gauge(
    "geo_db_sessions_waiting", "Requests waiting for a connection from the SQLAlchemy pool"
)
# Requests no route matched keep one series rather than one per path a scanner tried.
UNMATCHED = "unmatched"


def record_upload(kind: str, size: int, rows: int) -> None:
    """Count one loaded file: its bytes and the rows it added."""
    UPLOAD_BYTES.labels(kind).inc(size)
    UPLOAD_ROWS.labels(kind).inc(rows)


@contextmanager
def waiting_for_connection() -> Iterator[None]:
    SESSIONS_WAITING.inc()
    try:
        yield
    finally:
        SESSIONS_WAITING.dec()


class MetricsMiddleware(HttpMiddleware):
    """Times every request (pure ASGI: bodies stream untouched). Inside the request log's
    middleware, so its route template is the one the log names."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )


# Replay lag: zero when the replica has replayed all it received (an idle primary sends nothing,
# and the last replayed transaction's age would grow for no reason).
LAG_SQL = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


def replica_lag(engine: Engine) -> float:
    """Seconds the replica behind `engine` is behind its primary (0 for a primary)."""
    with engine.connect() as conn:
        return float(conn.execute(LAG_SQL).scalar_one())


def engine_label(engine: Engine) -> str:
    """host:port (every host of a multi-host URL), never the password."""
    url = engine.url
    hosts = url.query.get("host")
    if hosts:
        return ",".join(hosts) if isinstance(hosts, tuple) else str(hosts)
    return f"{url.host}:{url.port}"


class DatabaseCollector(Collector):
    """The SQLAlchemy pools and the replicas' lag, read when Prometheus scrapes."""

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not query the replicas (collect() would be called)

    def collect(self) -> Iterable[Metric]:
        from geo.db import made_engines, replica_engines

        pools = GaugeMetricFamily(
            "geo_db_pool_connections",
            "Connections of the database pools, by pool and state",
            labels=["pool", "state"],
        )
        for name, engine in made_engines():
            pool = engine.pool
            pools.add_metric([name, "in_use"], getattr(pool, "checkedout", lambda: 0)())
            pools.add_metric([name, "idle"], getattr(pool, "checkedin", lambda: 0)())
        yield pools
        lag = GaugeMetricFamily(
            "geo_replica_lag_seconds",
            "How far each read replica's replay is behind (NaN: unreachable)",
            labels=["replica"],
        )
        for engine in replica_engines():
            try:
                seconds = replica_lag(engine)
            except Exception:  # a scrape reports; an unreachable replica is NaN, not an error
                seconds = float("nan")
            lag.add_metric([engine_label(engine)], seconds)
        yield lag


REGISTRY.register(DatabaseCollector())

"""Connections for the tile hot path: async psycopg pools, one per event loop and database.

Tiles skip SQLAlchemy: a tile is one prepared statement returning one bytea, and the ORM's
per-request work (about 0.6 ms against 0.2 ms for a prepared psycopg query) showed at thousands
of tiles per second. Async pools keep the hot path on the event loop, with no thread hop per
request. Pools follow the core's read routing (geo.db.read_engine), so tiles come from replicas
when GEO_READ_URLS names some, every pool a request asks for from the replica chosen for it.
Connections are autocommit: a tile is a single read, and BEGIN/COMMIT would be two more round
trips; and they never plan parallel workers (see below).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

from geo.db import libpq_url, read_engine, timeout_options
from geo.logs import TimedAsyncCursor
from geo.settings import get_settings
from tiles.settings import tile_settings

CONNECTION_KWARGS = {
    "autocommit": True,
    "application_name": "geo-tiles",
    # Parallel workers are new processes: each pays PROJ's set-up on its first ST_Transform
    # (about 100 ms), several times a typical tile's whole cost.
    "options": "-c max_parallel_workers_per_gather=0",
    # Slow statements are logged like SQLAlchemy's (GEO_SLOW_QUERY_MS); the pool has no events.
    "cursor_factory": TimedAsyncCursor,
}
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncConnectionPool]]
_pools = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
_locks = weakref.WeakKeyDictionary()


POOL_WAIT_SECONDS = 10.0


def _connection_kwargs() -> dict[str, object]:
    """CONNECTION_KWARGS plus the API's statement_timeout (GEO_STATEMENT_TIMEOUT_MS): a tile
    is a read like any other, and a runaway one must not hold a pool connection forever."""
    options = timeout_options(
        get_settings().statement_timeout_ms, str(CONNECTION_KWARGS["options"])
    )
    return {**CONNECTION_KWARGS, "options": options}


def _conninfo() -> str:
    return libpq_url(read_engine().url)


async def tile_pool() -> AsyncConnectionPool:
    """The pool for the request's read database (geo.db.read_engine: one replica per request,
    so a tile's version and its bytes come from the same one)."""
    loop = asyncio.get_running_loop()
    conninfo = _conninfo()
    pool = _pools.get(loop, {}).get(conninfo)
    if pool is not None:
        return pool
    async with _locks.setdefault(loop, asyncio.Lock()):
        pools = _pools.setdefault(loop, {})
        pool = pools.get(conninfo)
        if pool is None:
            pool = AsyncConnectionPool(
                conninfo,
                min_size=1,
                max_size=tile_settings().pool_size,
                kwargs=_connection_kwargs(),
                open=False,
                name="tiles",
                # Waiting for a connection (all busy, or no server during a failover) ends in
                # PoolTimeout, a 503 with Retry-After (geo.errors), not a request left hanging.
                timeout=POOL_WAIT_SECONDS,
            )
            await pool.open()
            pools[conninfo] = pool
    return pool


async def close_pools() -> None:
    """Close this loop's pools (app shutdown, tests)."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    for pool in pools.values():
        await pool.close()


class TilePoolCollector(Collector):
    """The tile pools' connections in use and idle, and tile requests waiting for one."""

    def describe(self) -> Iterable[Metric]:
        return []  # names need no check at registration; collect() is cheap but needs pools

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "geo_tile_pool_connections",
            "Connections of the tile pools (every event loop and database), by state",
            labels=["state"],
        )
        totals = {"in_use": 0, "idle": 0, "waiting": 0}
        for pools in list(_pools.values()):
            for pool in list(pools.values()):
                stats = pool.get_stats()
                size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
                totals["in_use"] += size - available
                totals["idle"] += available
                totals["waiting"] += stats.get("requests_waiting", 0)
        for state, value in totals.items():
            family.add_metric([state], value)
        yield family


REGISTRY.register(TilePoolCollector())

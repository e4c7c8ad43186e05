"""Every statement the API runs has a time limit, and running out of it is a 503, not a 500.

The API's connections (SQLAlchemy engines and the tiles' psycopg pool) carry
``statement_timeout = GEO_STATEMENT_TIMEOUT_MS``; bulk work (uploads, address imports, sample
loads, migrations) raises it to ``GEO_BULK_STATEMENT_TIMEOUT_MS`` for its own transaction. A
real server with a one-second limit shows both: requests stuck behind a lock come back as 503
``StatementTimeout`` with ``Retry-After`` while /health keeps answering, and an upload stuck
behind the same lock for longer still completes.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from geo.auth import Principal
from geo.db import bulk_statement_timeout, get_engine, libpq_url, session_scope
from geo.errors import RETRY_AFTER_SECONDS
from geo.settings import get_settings
from layers import catalogue
from tests.layers_helpers import collection, make_points_layer, point_features, square
from tests.live_server import live_server

TIMEOUT_MS = 1000
ADMIN = Principal("platform", "admin", "test")
_TIMEOUT_SQL = "SELECT extract(epoch FROM current_setting('statement_timeout')::interval) * 1000"


def _timeout_ms(conn: Connection | Session) -> int:
    return int(conn.execute(text(_TIMEOUT_SQL)).scalar_one())


def test_api_connections_are_bounded(database_url: str) -> None:
    settings = get_settings()
    with get_engine().connect() as conn:
        assert _timeout_ms(conn) == settings.statement_timeout_ms == 30_000

    async def tile_connection_timeout() -> int:
        from tiles.pool import close_pools, tile_pool

        try:
            async with (await tile_pool()).connection() as conn:
                row = await (await conn.execute(_TIMEOUT_SQL)).fetchone()
                assert row is not None
                return int(row[0])
        finally:
            await close_pools()

    assert asyncio.run(tile_connection_timeout()) == settings.statement_timeout_ms


def test_bulk_transactions_get_their_own_bound(database_url: str) -> None:
    settings = get_settings()
    with session_scope() as session:
        bulk_statement_timeout(session)
        assert _timeout_ms(session) == settings.bulk_statement_timeout_ms == 3_600_000
    with session_scope() as session:  # SET LOCAL: the pooled connection is bounded again
        assert _timeout_ms(session) == settings.statement_timeout_ms


def _tile(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def test_a_cancelled_statement_is_a_503_and_bulk_work_outlasts_the_bound(
    client: TestClient, make_department, database_url: str
) -> None:
    dept = make_department()
    lid = make_points_layer(client, dept.editor, n=20)
    with session_scope() as session:
        relation = catalogue.readable_source(session, ADMIN, lid).relation()
    area = square(117.19, 39.09, 0.05)
    z, x, y = _tile(117.205, 39.105, 14)
    with (
        live_server(env={"GEO_STATEMENT_TIMEOUT_MS": str(TIMEOUT_MS)}) as srv,
        psycopg.connect(libpq_url(database_url)) as locker,
        ThreadPoolExecutor(2) as pool,
    ):
        base = srv.base
        locker.execute(f"LOCK TABLE {relation} IN ACCESS EXCLUSIVE MODE")
        stuck = {
            "identify": lambda: httpx.post(
                f"{base}/identify", json={"geometry": area, "layers": [lid]}, timeout=30
            ),
            "overlay": lambda: httpx.post(
                f"{base}/overlay", json={"layer": lid, "other": "districts"}, timeout=30
            ),
            "items": lambda: httpx.get(f"{base}/collections/{lid}/items", timeout=30),
            "tile": lambda: httpx.get(f"{base}/tiles/{lid}/{z}/{x}/{y}.mvt", timeout=30),
        }
        for name, call in stuck.items():
            started = time.monotonic()
            waiting = pool.submit(call)
            time.sleep(0.2)
            health = httpx.get(f"{base}/health", timeout=5)  # answers while the request waits
            assert health.status_code == 200 and not waiting.done(), name
            response = waiting.result()
            elapsed = time.monotonic() - started
            assert response.status_code == 503, (name, response.status_code, response.text[:300])
            assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS), name
            body = response.json()
            assert (
                body["code"] == "StatementTimeout" and "GEO_STATEMENT_TIMEOUT_MS" in body["message"]
            ), (name, body)
            assert TIMEOUT_MS / 1000 <= elapsed < 10, (name, elapsed)

        # An upload waits on the same lock three times the API's bound, then completes: its
        # transaction runs under the bulk bound.
        release = threading.Timer(3 * TIMEOUT_MS / 1000, locker.rollback)
        started = time.monotonic()
        release.start()
        upload = httpx.post(
            f"{base}/collections/{lid}/upload",
            params={"mode": "append"},
            files={"file": ("more.geojson", collection(point_features(5, start=20)))},
            headers=dept.editor,
            timeout=60,
        )
        release.join()
        assert upload.status_code == 200, upload.text
        assert upload.json()["features"] == 5
        assert time.monotonic() - started >= 3 * TIMEOUT_MS / 1000

        found = httpx.post(f"{base}/identify", json={"geometry": area, "layers": [lid]}, timeout=30)
        assert found.status_code == 200 and found.json()["numberReturned"] == 25, found.text
        assert srv.alive() and httpx.get(f"{base}/health", timeout=5).status_code == 200

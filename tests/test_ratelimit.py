"""Rate limits (geo.ratelimit): per address, per key, per route class, shared through Redis.

Each test builds its own app (or `geo serve` process) with low limits; the session's app keeps
the suite's never-reached limits. Limits that must be counted exactly use a one-day window: the
sliding window counter lets a little through when a window rolls over, and a day boundary does
not fall inside a test.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from limits.aio.storage import MemoryStorage
from pydantic import ValidationError

from geo.auth import hash_key
from geo.embedded import free_port
from geo.ratelimit import (
    CLASS_SETTINGS,
    SweepingMemoryStorage,
    caller,
    client_address,
    presented_key,
    route_class,
)
from geo.settings import Settings, get_settings
from tests.conftest import Dept, bearer
from tests.live_server import LiveServer, live_server

POLICY = re.compile(r'^"(?P<name>[a-z]+)";q=(?P<q>\d+);w=(?P<w>\d+)$')
STATE = re.compile(r'^"(?P<name>[a-z]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


@contextmanager
def limited_client(database_url: str, **env: str | None) -> Iterator[TestClient]:
    """A TestClient on a new app created with ``env`` (None: unset) on top of the test
    environment.

    The limiter reads its settings when the app is made, so the environment is restored (and
    the settings cache cleared) right after."""
    from geo.app import create_app

    saved = {name: os.environ.get(name) for name in env}
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    get_settings.cache_clear()
    try:
        app = create_app()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
    with TestClient(app) as client:
        yield client


def policy(response: httpx.Response) -> dict[str, Any]:
    found = POLICY.match(response.headers["RateLimit-Policy"])
    assert found, response.headers["RateLimit-Policy"]
    return {"name": found["name"], "q": int(found["q"]), "w": int(found["w"])}


def state(response: httpx.Response) -> dict[str, Any]:
    found = STATE.match(response.headers["RateLimit"])
    assert found, response.headers["RateLimit"]
    return {"name": found["name"], "r": int(found["r"]), "t": int(found["t"])}


def assert_refused(response: httpx.Response, name: str, partition: str, limit: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == "TooManyRequests"
    assert f"the {name} limit is {limit} per" in body["message"]
    assert body["details"]["class"] == name
    assert body["details"]["partition"] == partition
    assert body["details"]["limit"] == limit
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= body["details"]["window_seconds"]
    assert body["details"]["retry_after_seconds"] == retry
    assert state(response) == {"name": name, "r": 0, "t": retry}
    assert policy(response)["q"] == limit


def test_anonymous_address_limit(database_url: str) -> None:
    with limited_client(database_url, GEO_RATE_LIMIT_DEFAULT="3/day,10/day") as client:
        for remaining in (2, 1, 0):
            r = client.get("/crs")
            assert r.status_code == 200, r.text
            assert policy(r) == {"name": "default", "q": 3, "w": 86400}
            assert state(r)["r"] == remaining
            assert 0 <= state(r)["t"] <= 86400
        refused = client.get("/crs")
        assert_refused(refused, "default", "ip", 3)
        assert "per client address" in refused.json()["message"]
        # Refusals are not counted against the caller again, and stay refusals.
        assert_refused(client.get("/conformance"), "default", "ip", 3)
        # /health is never limited: monitors poll it.
        health = client.get("/health")
        assert health.status_code == 200
        assert "RateLimit" not in health.headers


def test_key_counted_apart_from_address(
    database_url: str, make_department: Callable[..., Dept]
) -> None:
    dept = make_department()
    other = make_department()
    with limited_client(database_url, GEO_RATE_LIMIT_DEFAULT="3/day,5/day") as client:
        for _ in range(3):
            assert client.get("/crs").status_code == 200
        assert_refused(client.get("/crs"), "default", "ip", 3)
        # The key's first request: not yet seen valid, counted per address but apart from the
        # anonymous traffic that exhausted it; geo.auth then finds it valid.
        first = client.get("/collections", headers=dept.viewer)
        assert first.status_code == 200, first.text
        assert policy(first)["q"] == 3
        # From now on the key has its own, higher limit.
        for remaining in (4, 3, 2, 1, 0):
            r = client.get("/collections", headers=dept.viewer)
            assert r.status_code == 200, r.text
            assert policy(r) == {"name": "default", "q": 5, "w": 86400}
            assert state(r)["r"] == remaining
        refused = client.get("/collections", headers=dept.viewer)
        assert_refused(refused, "default", "key", 5)
        assert "per API key" in refused.json()["message"]
        # Another department's key is another counter.
        assert client.get("/collections", headers=other.viewer).status_code == 200
        r = client.get("/collections", headers=other.viewer)
        assert r.status_code == 200
        assert state(r)["r"] == 4
        # ... and the address is still refused when anonymous.
        assert_refused(client.get("/crs"), "default", "ip", 3)


def test_made_up_keys_buy_no_fresh_limits(
    database_url: str, client: TestClient, make_department: Callable[..., Dept]
) -> None:
    dept = make_department()
    assert client.get("/collections", headers=dept.viewer).status_code == 200  # seen valid
    with limited_client(database_url, GEO_RATE_LIMIT_DEFAULT="3/day,5/day") as limited:
        for _ in range(3):
            r = limited.get("/crs", headers=bearer("tjg_" + secrets.token_urlsafe(32)))
            assert r.status_code != 429, r.text
        refused = limited.get("/crs", headers=bearer("tjg_" + secrets.token_urlsafe(32)))
        assert_refused(refused, "default", "unverified-key", 3)
        # Neither anonymous callers at that address nor valid keys pay for them.
        assert limited.get("/crs").status_code == 200
        assert limited.get("/crs", headers=dept.viewer).status_code == 200


def test_classes_have_their_own_limits(database_url: str) -> None:
    with limited_client(
        database_url,
        GEO_RATE_LIMIT_TILES="40/day",
        GEO_RATE_LIMIT_HEAVY="2/day",
        GEO_RATE_LIMIT_DEFAULT="5/day",
    ) as client:
        export = client.get("/collections/no_such_layer/export")
        assert export.status_code == 404
        assert policy(export) == {"name": "heavy", "q": 2, "w": 86400}
        upload = client.post(
            "/collections/no_such_layer/upload", files={"file": ("a.geojson", b"{}")}
        )
        assert upload.status_code in (401, 404), upload.text
        assert state(upload)["r"] == 0  # uploads and exports share one counter
        assert_refused(client.get("/collections/no_such_layer/export"), "heavy", "ip", 2)
        # Tiles and the map viewer are counted apart, far more generously.
        for _ in range(40):
            r = client.get("/map")
            assert r.status_code == 200
            assert policy(r)["name"] == "tiles"
        assert_refused(client.get("/map"), "tiles", "ip", 40)
        assert client.get("/crs").status_code == 200


def test_default_limits_favour_tiles_over_uploads(database_url: str) -> None:
    """The shipped defaults (no GEO_RATE_LIMIT_* set): tiles allowed hundreds of times more
    than uploads and exports, geocoding in between."""
    with limited_client(database_url, **dict.fromkeys(CLASS_SETTINGS.values())) as client:
        quota = {
            name: policy(client.request(method, path))
            for name, method, path in (
                ("tiles", "GET", "/map"),
                ("geocode", "GET", "/addresses/suggest?q=yyl"),
                ("heavy", "GET", "/collections/no_such_layer/export"),
                ("default", "GET", "/crs"),
            )
        }
    assert {name: q["name"] for name, q in quota.items()} == {n: n for n in quota}
    assert quota["tiles"]["q"] >= 100 * quota["heavy"]["q"]
    assert quota["heavy"]["q"] < quota["geocode"]["q"] < quota["default"]["q"]


def test_window_resets(database_url: str) -> None:
    with limited_client(database_url, GEO_RATE_LIMIT_DEFAULT="2/second") as client:
        assert client.get("/crs").status_code == 200
        assert client.get("/crs").status_code == 200
        refused = client.get("/crs")
        assert_refused(refused, "default", "ip", 2)
        assert int(refused.headers["Retry-After"]) == 1
        # Two windows later the sliding window has forgotten both requests.
        time.sleep(2.1)
        again = client.get("/crs")
        assert again.status_code == 200
        assert state(again)["r"] == 1


def test_off_switch(database_url: str) -> None:
    with limited_client(
        database_url, GEO_RATE_LIMITS="off", GEO_RATE_LIMIT_DEFAULT="1/day"
    ) as client:
        for _ in range(5):
            r = client.get("/crs")
            assert r.status_code == 200
            assert "RateLimit" not in r.headers
            assert "RateLimit-Policy" not in r.headers


def test_unreachable_store_lets_requests_through(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    with limited_client(
        database_url, GEO_REDIS_URL=nothing_there, GEO_RATE_LIMIT_DEFAULT="1/day"
    ) as client:
        for _ in range(3):
            r = client.get("/crs")
            assert r.status_code == 200
            assert "RateLimit" not in r.headers
    warnings = [m for m in caplog.messages if "rate limit store unreachable" in m]
    assert len(warnings) == 1, caplog.messages  # once a minute, not once a request


def test_limit_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="GEO_RATE_LIMIT_TILES"):
        Settings.model_validate({"GEO_RATE_LIMIT_TILES": "lots"})
    with pytest.raises(ValidationError, match="GEO_RATE_LIMIT_HEAVY"):
        Settings.model_validate({"GEO_RATE_LIMIT_HEAVY": "1/minute,2/minute,3/minute"})
    fine = Settings.model_validate({"GEO_RATE_LIMIT_GEOCODE": "20 per 5 seconds"})
    assert fine.rate_limit_geocode == "20 per 5 seconds"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/tiles/districts,grids/12/3381/1563.mvt", "tiles"),
        ("/tiles/districts/tilejson.json", "tiles"),
        ("/collections/shelters/tiles/WebMercatorQuad/12/3381/1563", "tiles"),
        ("/styles/districts.json", "tiles"),
        ("/map", "tiles"),
        ("/map/assets/maplibre-gl.js", "tiles"),
        ("/addresses/geocode", "geocode"),
        ("/addresses/geocode/batch", "geocode"),
        ("/addresses/suggest", "geocode"),
        ("/addresses/reverse", "geocode"),
        ("/collections/shelters/upload", "heavy"),
        ("/collections/shelters/export", "heavy"),
        ("/addresses/import", "heavy"),
        ("/overlay", "heavy"),
        ("/collections/shelters/items", "default"),
        ("/addresses/12/history", "default"),
        ("/mapping", "default"),
        ("/identify", "default"),
        ("/health", None),
    ],
)
def test_route_classes(path: str, expected: str | None) -> None:
    assert route_class(path) == expected


def _scope(client: str, headers: dict[str, str] | None = None, query: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "client": (client, 50000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "query_string": query.encode(),
    }


def test_callers_are_told_apart() -> None:
    # IPv6 hosts hold a /64: one counter for it; IPv4-mapped addresses count as IPv4.
    assert client_address(_scope("2001:db8:1:2::5")) == client_address(_scope("2001:db8:1:2::9"))
    assert client_address(_scope("2001:db8:1:3::5")) != client_address(_scope("2001:db8:1:2::5"))
    assert client_address(_scope("::ffff:10.1.2.3")) == "10.1.2.3"
    # The key geo.auth would check: the Bearer token first, else the last ?key=.
    assert presented_key(_scope("h", {"Authorization": "Bearer  abc "}, "key=def")) == "abc"
    assert presented_key(_scope("h", query="x=1&key=a&key=b")) == "b"
    assert presented_key(_scope("h", {"Authorization": "Basic abc"})) is None
    assert presented_key(_scope("h", query="key=")) is None
    # A verified key is counted by half its digest, never by its value.
    from geo.auth import verified_key_hashes

    key = "tjg_" + secrets.token_urlsafe(32)
    assert caller(_scope("10.0.0.1", {"Authorization": f"Bearer {key}"})) == (
        "unverified-key",
        "10.0.0.1",
    )
    verified_key_hashes.add(hash_key(key))
    try:
        assert caller(_scope("10.0.0.1", query=f"key={key}")) == ("key", hash_key(key)[:32])
    finally:
        verified_key_hashes.discard(hash_key(key))


def test_memory_store_sweeps_at_most_once_a_second() -> None:
    """The parent store sweeps every counter after each increment (O(callers) per request);
    ours at most once a second. The parent's behaviour is checked too: if `limits` renamed the
    hook we override, both would behave alike and this test would fail."""

    async def scenario(storage: MemoryStorage) -> tuple[bool, bool]:
        await storage.incr("gone", 0.01)  # schedules a sweep, which runs at once
        await asyncio.sleep(0.05)
        await storage.incr("other", 60)
        await asyncio.sleep(0.05)
        kept_for_now = "gone" in storage.expirations
        await asyncio.sleep(1.0)
        await storage.incr("other", 60)
        await asyncio.sleep(0.05)
        return kept_for_now, "gone" in storage.expirations

    assert asyncio.run(scenario(MemoryStorage())) == (False, False)
    assert asyncio.run(scenario(SweepingMemoryStorage())) == (True, False)


# -- shared store: Redis behind a two-worker server -------------------------------------------


@contextmanager
def redis_server() -> Iterator[int]:
    """A throw-away redis-server on a free loopback port (no persistence)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: scripts/ensure-test-deps.sh installs it"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis(port=port, socket_timeout=1).ping():
                    break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def serving_worker(server: LiveServer, response: httpx.Response) -> int:
    """The pid of the worker process holding the server end of ``response``'s connection,
    found through /proc: the connection's socket inode, then the worker with that inode open."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    server_port = int(server.base.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(f.split(":")[1], 16) for f in fields[1:3])
        if local == server_port and remote == client_port:
            inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != server.proc.pid:
                continue
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError(f"no worker of {server.proc.pid} holds the connection {client_port}")


def test_redis_store_is_shared_by_workers(make_department: Callable[..., Dept]) -> None:
    dept = make_department()
    key = dept.viewer["Authorization"].removeprefix("Bearer ")
    with redis_server() as port:
        env = {
            "GEO_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "GEO_RATE_LIMITS": "on",
            "GEO_RATE_LIMIT_DEFAULT": "8/day,50/day",
        }
        with live_server(workers=2, env=env) as server:
            # One kept-alive connection to each worker (the kernel picks the worker per
            # connection, so open connections until both have one).
            by_worker: dict[int, httpx.Client] = {}
            opened = []
            for _ in range(60):
                conn = httpx.Client(base_url=server.base, timeout=10)
                opened.append(conn)
                pid = serving_worker(server, conn.get("/health"))
                by_worker.setdefault(pid, conn)
                if len(by_worker) == 2:
                    break
            assert len(by_worker) == 2, "every connection went to the same worker"
            try:
                (pid_a, a), (pid_b, b) = by_worker.items()
                served: list[tuple[int, int, int]] = []
                for i in range(12):
                    pid, conn = (pid_a, a) if i % 2 == 0 else (pid_b, b)
                    r = conn.get("/crs")
                    assert serving_worker(server, r) == pid
                    served.append((pid, r.status_code, state(r)["r"]))
                    if r.status_code == 429:
                        assert_refused(r, "default", "ip", 8)
                ok = [s for s in served if s[1] == 200]
                # One count for both workers: 8 in all (not 8 each), both served some, and the
                # remaining quota went down across them.
                assert [s[1] for s in served] == [200] * 8 + [429] * 4, served
                assert {s[0] for s in ok} == {pid_a, pid_b}
                assert [s[2] for s in ok] == list(range(7, -1, -1))
                # Behind a proxy it trusts (uvicorn: 127.0.0.1), each forwarded client is its
                # own caller.
                forwarded = b.get("/crs", headers={"X-Forwarded-For": "10.9.9.9"})
                assert forwarded.status_code == 200, forwarded.text
                assert state(forwarded)["r"] == 7
                # A key: its first request on a worker makes the worker trust it.
                for _ in range(3):
                    assert a.get("/collections", headers=dept.viewer).status_code == 200
            finally:
                for conn in opened:
                    conn.close()
        stored = [k.decode() for k in cast(list[bytes], redis.Redis(port=port).keys("*"))]
        assert any(hash_key(key)[:32] in k for k in stored), stored
        assert not any(key in k or hash_key(key) in k for k in stored), stored

"""The server's log (geo.logs), read from real `geo serve` processes: one line per request with
its request id and route template and no credential, JSON lines that parse, X-Request-ID
echoed, an unexpected error as a JSON 500 naming the request id with the traceback logged, and
slow statement warnings (SQLAlchemy's and the tile pool's) that carry the request id."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from geo.auth import hash_key
from tests.fault_server import UNEXPECTED_ERROR_ROUTE
from tests.live_server import LiveServer, live_server

FAULT_SERVER = Path(__file__).with_name("fault_server.py")
ITEMS = "/collections/districts/items"


@pytest.fixture(scope="module")
def admin_key(database_url: str) -> str:
    """The session's admin key (tests/conftest.py), as the servers read it from the
    environment."""
    return os.environ["GEO_ADMIN_KEY"]


@pytest.fixture(scope="module")
def json_server(database_url: str) -> Iterator[LiveServer]:
    with live_server(env={"GEO_LOG_FORMAT": "json"}) as server:
        yield server


@pytest.fixture(scope="module")
def text_server(database_url: str) -> Iterator[LiveServer]:
    """Human-readable lines, the failing test route, and every statement logged as slow."""
    env = {"GEO_LOG_FORMAT": "text", "GEO_SLOW_QUERY_MS": "0"}
    with live_server(env=env, launcher=FAULT_SERVER) as server:
        yield server


def wait_for(server: LiveServer, text: str, count: int = 1, timeout: float = 10) -> str:
    """The server's log once `text` is in it `count` times (lines are written as responses
    finish, a moment after the client has its answer)."""
    deadline = time.monotonic() + timeout
    while (log := server.log()).count(text) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


def json_records(server: LiveServer, request_id: str) -> list[dict[str, Any]]:
    log = wait_for(server, request_id)
    return [r for r in map(json.loads, log.splitlines()) if r.get("request_id") == request_id]


def test_one_json_line_per_request_with_route_caller_and_no_key(
    json_server: LiveServer, admin_key: str
) -> None:
    answer = httpx.get(
        f"{json_server.base}{ITEMS}?limit=3&key={admin_key}",
        headers={"X-Request-ID": "log-test-items-1"},
    )
    assert answer.status_code == 200, (answer.text, json_server.log())
    assert answer.headers["x-request-id"] == "log-test-items-1"
    (line,) = json_records(json_server, "log-test-items-1")
    assert line["logger"] == "geo.request" and line["level"] == "INFO"
    assert line["method"] == "GET" and line["status"] == 200
    assert line["route"] == "/collections/{collection_id}/items"
    assert line["department"] == "platform" and line["key_prefix"] == admin_key[:8]
    assert isinstance(line["duration_ms"], float) and line["time"].startswith("20")
    assert line["path"] == f"{ITEMS}?limit=3&key=[redacted]"
    log = json_server.log()
    assert admin_key not in log and admin_key[8:] not in log
    assert "HTTP/1.1" not in log  # uvicorn's access log is off: one line per request, ours


def test_every_line_of_the_json_log_parses(json_server: LiveServer) -> None:
    httpx.get(json_server.base + "/health", headers={"X-Request-ID": "log-test-health"})
    wait_for(json_server, "log-test-health")
    records = [json.loads(line) for line in json_server.log().splitlines()]
    assert any(r["logger"].startswith("uvicorn") for r in records)  # its start-up lines too
    assert all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)


def test_request_ids_are_made_up_when_absent_or_unfit(json_server: LiveServer) -> None:
    made = httpx.get(json_server.base + "/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    (line,) = json_records(json_server, made)
    assert line["route"] == "/health" and line["department"] is None
    for unfit in ("x" * 65, "two words", "tab\there"):
        echoed = httpx.get(json_server.base + "/health", headers={"X-Request-ID": unfit})
        assert re.fullmatch(r"[0-9a-f]{32}", echoed.headers["x-request-id"])


def test_refused_and_unrouted_requests_are_logged_too(json_server: LiveServer) -> None:
    missing = httpx.get(json_server.base + "/no/such/path", headers={"X-Request-ID": "log-404"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "log-404"
    (line,) = json_records(json_server, "log-404")
    assert line["status"] == 404 and line["route"] is None and line["path"] == "/no/such/path"
    wrong = httpx.get(
        json_server.base + ITEMS,
        headers={"Authorization": "Bearer tjg_not_a_key", "X-Request-ID": "log-401"},
    )
    assert wrong.status_code == 401
    (line,) = json_records(json_server, "log-401")
    assert line["status"] == 401 and line["key_prefix"] is None
    assert "tjg_not_a_key" not in json_server.log()


def test_an_unexpected_error_is_a_json_500_with_its_traceback_logged(
    text_server: LiveServer,
) -> None:
    answer = httpx.get(
        text_server.base + UNEXPECTED_ERROR_ROUTE, headers={"X-Request-ID": "log-test-boom"}
    )
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "log-test-boom"
    body = answer.json()
    assert body["code"] == "InternalError"
    assert body["details"] == {"request_id": "log-test-boom"}
    assert "planted" not in body["message"]  # the exception's text stays in the log
    log = wait_for(text_server, "a bug the log test planted")
    line = next(x for x in log.splitlines() if "geo.request [log-test-boom]" in x)
    assert re.search(r" ERROR geo.request \[log-test-boom\] GET /test/unexpected-error 500 ", line)
    after = log[log.index(line) :]
    assert "Traceback (most recent call last)" in after
    assert "RuntimeError: a bug the log test planted" in after
    assert "Exception in ASGI application" not in log  # logged once, by us
    assert httpx.get(text_server.base + "/health").status_code == 200


def test_text_lines_are_human_readable(text_server: LiveServer) -> None:
    httpx.get(
        f"{text_server.base}{ITEMS}?token=tjt1.secret-token-value",
        headers={"X-Request-ID": "log-test-text"},
    )
    log = wait_for(text_server, "geo.request [log-test-text]")
    (line,) = [x for x in log.splitlines() if "geo.request [log-test-text]" in x]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING) geo\.request \[log-test-text\] "
        r"GET /collections/\{collection_id\}/items \d{3} [\d.]+ms dept=- key=- "
        r"client=127\.0\.0\.1 path=/collections/districts/items\?token=\[redacted\]",
        line,
    )
    assert "secret-token-value" not in log


def test_slow_statements_are_warnings_with_the_request_id_and_no_values(
    text_server: LiveServer, admin_key: str
) -> None:
    """GEO_SLOW_QUERY_MS=0: every statement counts as slow. The API key's lookup binds the
    key's hash: its text is logged, the hash is not."""
    httpx.get(
        text_server.base + ITEMS,
        headers={"Authorization": f"Bearer {admin_key}", "X-Request-ID": "log-test-slow"},
    )
    log = wait_for(text_server, "geo.request [log-test-slow]")
    slow = [x for x in log.splitlines() if "WARNING geo.slow_query [log-test-slow]" in x]
    assert any("slow query: " in x and "SELECT api_keys.id" in x for x in slow), slow
    assert hash_key(admin_key) not in log


def test_slow_tile_statements_are_logged_from_the_tile_pool(text_server: LiveServer) -> None:
    tile = httpx.get(
        text_server.base + "/tiles/districts/10/843/388.mvt",
        headers={"X-Request-ID": "log-test-tile"},
    )
    assert tile.status_code in (200, 204)
    log = wait_for(text_server, "geo.request [log-test-tile]")
    slow = [x for x in log.splitlines() if "WARNING geo.slow_query [log-test-tile]" in x]
    # The tile statement (tiles.sql): its cap + 1 rows encoded and counted in one pass.
    assert any("ms: SELECT ST_AsMVT(t, 'districts', 4096" in x for x in slow), slow

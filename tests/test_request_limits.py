"""Bodies are bounded before they are read (geo.http): a 413 naming the limit, nothing written."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from geo.settings import get_settings
from tests.live_server import live_server


@pytest.fixture()
def small_body_limit() -> Iterator[int]:
    settings = get_settings()
    before = settings.max_body_bytes
    settings.max_body_bytes = 10_000
    yield settings.max_body_bytes
    settings.max_body_bytes = before


def _big_json(size: int) -> bytes:
    return b'{"layers":["' + b"x" * size + b'"]}'


def test_declared_length_over_the_limit_is_413(client: TestClient, small_body_limit: int) -> None:
    r = client.post(
        "/identify",
        content=_big_json(small_body_limit),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "PayloadTooLarge"
    assert "GEO_MAX_BODY_BYTES" in r.json()["message"]


def test_chunked_body_over_the_limit_is_413(client: TestClient, small_body_limit: int) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"layers":["'
        for _ in range(50):
            yield b"x" * 1000
        yield b'"]}'

    r = client.post("/identify", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "PayloadTooLarge"


def test_pydantic_bodies_are_bounded_too_and_nothing_is_written(
    client: TestClient, admin_headers: dict[str, str], small_body_limit: int
) -> None:
    r = client.post(
        "/departments",
        json={"name": "大" * small_body_limit, "code": "too-large-dept"},
        headers=admin_headers,
    )
    assert r.status_code == 413, r.text
    assert client.get("/departments/too-large-dept", headers=admin_headers).status_code == 404


def test_files_get_the_upload_limit_not_the_json_one(
    client: TestClient, make_department, small_body_limit: int
) -> None:
    from tests.layers_helpers import collection, layer_id, point_features

    content = collection(point_features(400))
    assert len(content) > small_body_limit
    dept = make_department()
    r = client.post(
        f"/collections/{layer_id()}/upload",
        files={"file": ("big.geojson", content)},
        headers=dept.editor,
    )
    assert r.status_code == 201, r.text


def test_a_50_mb_body_does_not_hold_the_server(database_url: str) -> None:
    """Over a real socket: the 413 comes from the Content-Length, before the body is read, and
    /health answers meanwhile."""
    with live_server() as server:
        body = b" " * (50 * 1024 * 1024)
        started = time.perf_counter()
        with httpx.Client(base_url=server.base, timeout=60) as http:
            try:
                r = http.post(
                    "/identify", content=body, headers={"Content-Type": "application/json"}
                )
                assert r.status_code == 413, r.text
            except httpx.WriteError:
                pass  # the server answered 413 and closed before taking the rest: also fine
            assert time.perf_counter() - started < 5
            t0 = time.perf_counter()
            assert http.get("/health").status_code == 200
            assert time.perf_counter() - t0 < 1
        assert server.alive()

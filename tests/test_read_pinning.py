"""One read replica per request: a tile's data version and its bytes come from the same one."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.concurrency import run_in_threadpool

from geo.db import PinnedReadsMiddleware, read_engine, reset_engines


@pytest.fixture
def two_replicas(database_url: str) -> Iterator[None]:
    """Two read URLs (the test database under two application names: two engines)."""
    sep = "&" if "?" in database_url else "?"
    urls = [f"{database_url}{sep}application_name=replica-{n}" for n in (1, 2)]
    os.environ["GEO_READ_URLS"] = ",".join(urls)
    reset_engines()
    try:
        yield
    finally:
        del os.environ["GEO_READ_URLS"]
        reset_engines()


def _probe_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(PinnedReadsMiddleware)

    @app.get("/reads")
    async def reads() -> list[str]:
        # the event loop (tile versions, tile bytes) and a worker thread (catalogue) alike
        picks = [read_engine(), read_engine(), await run_in_threadpool(read_engine)]
        picks.append(read_engine())
        return [str(e.url.query.get("application_name")) for e in picks]

    return app


def test_each_request_reads_from_one_replica_and_requests_rotate(two_replicas: None) -> None:
    with TestClient(_probe_app()) as client:
        answers = [client.get("/reads").json() for _ in range(4)]
    for names in answers:
        assert len(set(names)) == 1, names
    assert {names[0] for names in answers} == {"replica-1", "replica-2"}


def test_outside_a_request_reads_rotate(two_replicas: None) -> None:
    names = {str(read_engine().url.query.get("application_name")) for _ in range(2)}
    assert names == {"replica-1", "replica-2"}


def test_the_service_pins_reads_per_request(app: FastAPI) -> None:
    assert any(m.cls is PinnedReadsMiddleware for m in app.user_middleware)

"""Liveness and readiness (geo.health), and the 503 with Retry-After while no database answers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.db import get_engine, reset_engines
from geo.embedded import free_port
from geo.health import code_heads, readiness


def test_live_and_ready_on_a_healthy_service(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"] == {"ok": True, "writable": True}
    assert checks["migrations"]["ok"] and checks["migrations"]["missing"] == []
    assert client.get("/health").json()["status"] == "ok"  # unchanged for existing clients


def test_code_heads_are_every_branch_head() -> None:
    assert len(code_heads()) >= 1
    with get_engine().connect() as conn:
        at = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    assert at == set(code_heads())


def test_migrations_behind_the_code_are_not_ready(client: TestClient) -> None:
    with get_engine().begin() as conn:
        conn.execute(text("CREATE TEMP TABLE saved AS SELECT * FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('0123456789ab')"))
    try:
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.json()["details"]["migrations"]["unknown"] == ["0123456789ab"]
    finally:
        with get_engine().begin() as conn:
            conn.execute(text("DELETE FROM alembic_version WHERE version_num = '0123456789ab'"))


def test_a_lagging_or_lost_replica_is_not_ready(database_url: str) -> None:
    os.environ["GEO_READ_URLS"] = database_url.replace(
        database_url.rsplit("@", 1)[1].split("/")[0], f"127.0.0.1:{free_port()}"
    )
    reset_engines()
    try:
        result = readiness()
        (name,) = [n for n in result.checks if n.startswith("replica")]
        assert not result.ready and result.checks[name]["ok"] is False
    finally:
        del os.environ["GEO_READ_URLS"]
        reset_engines()


@pytest.fixture
def no_database(client: TestClient, database_url: str) -> Iterator[TestClient]:
    """The service pointed at a port where no server listens (the primary is gone)."""
    os.environ["DATABASE_URL"] = database_url.replace(
        database_url.rsplit("@", 1)[1].split("/")[0], f"127.0.0.1:{free_port()}"
    )
    reset_engines()
    try:
        yield client
    finally:
        os.environ["DATABASE_URL"] = database_url
        reset_engines()


def test_without_a_primary_readiness_is_red_and_writes_are_503(
    no_database: TestClient, admin_headers: dict[str, str]
) -> None:
    assert no_database.get("/health/live").status_code == 200
    ready = no_database.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["code"] == "NotReady"
    assert ready.json()["details"]["database"]["ok"] is False
    write = no_database.post(
        "/departments", json={"name": "无主库", "code": "no-primary"}, headers=admin_headers
    )
    assert write.status_code == 503, write.text
    assert write.json()["code"] == "DatabaseUnavailable"
    assert int(write.headers["Retry-After"]) > 0

"""Test set-up: a real PostgreSQL + PostGIS cluster in a temporary directory, started with the
same embedded-cluster code the service uses, migrated with the project's Alembic migrations."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

# One key per test process, even when this module is imported twice (as pytest's conftest and
# as tests.conftest): two random keys would leave the servers a test starts with the other one.
ADMIN_KEY = os.environ.setdefault(
    "GEO_TEST_ADMIN_KEY", "tjg_test_admin_" + secrets.token_urlsafe(16)
)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from geo.db import ensure_extensions, reset_engines
    from geo.embedded import EmbeddedCluster
    from geo.migrations import upgrade
    from geo.ratelimit import CLASS_SETTINGS

    root = Path(tempfile.mkdtemp(prefix="geo-test-"))
    root.chmod(0o755)  # the `postgres` user (when we are root) must reach the cluster folder
    cluster = EmbeddedCluster(root / "pg", durable=False)
    url = cluster.start()
    os.environ.update(DATABASE_URL=url, GEO_DATA_DIR=str(root), GEO_ADMIN_KEY=ADMIN_KEY)
    # The suite sends thousands of requests from one client: limits on, but never reached.
    os.environ.update(dict.fromkeys(CLASS_SETTINGS.values(), "1000000/minute"))
    reset_engines()
    ensure_extensions()
    upgrade(url)
    yield url
    reset_engines()
    cluster.destroy()


@contextmanager
def new_database(database_url: str) -> Iterator[str]:
    """A new, empty database on the test cluster (its URL), dropped when the block ends."""
    from sqlalchemy import create_engine, make_url, text

    name = "geo_scratch_" + secrets.token_hex(4)
    root = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with root.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with root.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        root.dispose()


@pytest.fixture
def scratch_database(database_url: str) -> Iterator[str]:
    """A database of the test's own: for migrations and first starts."""
    with new_database(database_url) as url:
        yield url


@pytest.fixture(scope="module")
def generated_library(database_url: str) -> Iterator[None]:
    """The tests' generated address library (tests.address_library.load) for a module, its
    names read fresh on every call (fresh_names), so a test sees its own imports at once."""
    from tests.address_library import fresh_names, load

    load()
    with fresh_names():
        yield


@pytest.fixture(scope="session")
def app(database_url: str) -> FastAPI:
    from geo.app import create_app

    return create_app()


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:  # runs the lifespan: installs ADMIN_KEY
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def admin_headers(client: TestClient) -> dict[str, str]:
    return bearer(ADMIN_KEY)


@dataclass(frozen=True)
class Dept:
    code: str
    editor: dict[str, str]
    viewer: dict[str, str]


@pytest.fixture(scope="session")
def make_department(client: TestClient, admin_headers: dict[str, str]) -> Callable[..., Dept]:
    """Create a department through the API, with an editor and a viewer key (as headers);
    `address_authority=True` lets it write the standard address library."""

    def make(
        code: str | None = None, name: str | None = None, address_authority: bool = False
    ) -> Dept:
        code = code or "dept-" + secrets.token_hex(4)
        response = client.post(
            "/departments",
            json={"name": name or f"部门 {code}", "code": code},
            headers=admin_headers,
        )
        assert response.status_code == 201, response.text
        if address_authority:
            r = client.patch(
                f"/departments/{code}", json={"address_authority": True}, headers=admin_headers
            )
            assert r.status_code == 200, r.text
        keys = {}
        for role in ("editor", "viewer"):
            r = client.post(f"/departments/{code}/keys", json={"role": role}, headers=admin_headers)
            assert r.status_code == 201, r.text
            keys[role] = bearer(r.json()["key"])
        return Dept(code, keys["editor"], keys["viewer"])

    return make

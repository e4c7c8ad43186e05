"""Automatic failover (pg_auto_failover, `geo db ha`): a real API process writes through the
multi-host URL while the primary's machine is killed (SIGKILL to its keeper and PostgreSQL).

Writes during the gap are 503 with Retry-After (never a 500), writes succeed again without
restarting the API process, and every write that got a 2xx is in the new primary."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from geo.db import ensure_extensions, reset_engines
from geo.ha.cluster import HaFormation
from geo.migrations import upgrade
from tests.conftest import bearer
from tests.live_server import live_server

# Bounded: writes stop after this long whatever happens.
MAX_SECONDS = 120.0


@pytest.fixture(scope="module")
def formation() -> Iterator[HaFormation]:
    root = Path(tempfile.mkdtemp(prefix="geo-ha-"))
    root.chmod(0o755)
    ha = HaFormation(root / "ha")
    ha.create()
    url = ha.url()
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    reset_engines()
    try:
        ensure_extensions()
        upgrade(url)
        yield ha
    finally:
        if saved is not None:
            os.environ["DATABASE_URL"] = saved
        reset_engines()
        ha.destroy()


def test_writes_survive_the_primary_and_resume_by_themselves(
    database_url: str, formation: HaFormation
) -> None:
    env = {"DATABASE_URL": formation.url(), "GEO_RATE_LIMITS": "off"}
    acknowledged: list[str] = []
    statuses: dict[int, int] = {}
    with live_server(env=env) as server, httpx.Client(timeout=30) as http:
        headers = bearer(os.environ["GEO_ADMIN_KEY"])

        def write(n: int) -> int:
            code = f"ha-{n}"
            try:
                r = http.post(
                    server.base + "/departments",
                    json={"name": f"部门{n}", "code": code},
                    headers=headers,
                )
            except httpx.HTTPError:
                return 0
            if r.status_code == 201:
                acknowledged.append(code)
            if r.status_code == 503:
                assert int(r.headers["Retry-After"]) > 0
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            return r.status_code

        for n in range(20):
            assert write(n) == 201
        old = formation.primary()
        assert old is not None
        formation.kill_node(old)
        killed = time.monotonic()
        n, recovered = 20, None
        while time.monotonic() - killed < MAX_SECONDS:
            if write(n) == 201 and acknowledged[-1] == f"ha-{n}":
                recovered = time.monotonic() - killed
                break
            n += 1
            time.sleep(0.2)
        for m in range(n + 1, n + 11):  # a few more on the new primary
            assert write(m) == 201
        ready = http.get(server.base + "/health/ready")
        assert server.alive()
    print(f"writes again {recovered:.1f} s after the primary was killed; statuses {statuses}")
    assert recovered is not None, f"no write succeeded within {MAX_SECONDS} s: {statuses}"
    assert 500 not in statuses, statuses
    body = ready.json()  # the primary check: migrations are test_health's concern
    assert (body.get("checks") or body["details"])["database"]["ok"], ready.text
    assert formation.primary() not in (None, old)
    engine = create_engine(formation.url())
    with engine.connect() as conn:
        found = set(
            conn.execute(text("SELECT code FROM departments WHERE code LIKE 'ha-%'")).scalars()
        )
    engine.dispose()
    assert set(acknowledged) <= found, sorted(set(acknowledged) - found)


def test_geo_db_ha_refuses_ports_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-c", "from geo.cli import main; main()", "db", "ha",
             "--monitor-port", str(port)],
            capture_output=True,
            text=True,
            env={**os.environ, "GEO_DATA_DIR": str(tmp_path)},
            timeout=120,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"port(s) {port} already in use" in result.stderr
    assert not (tmp_path / "ha").exists()  # nothing made

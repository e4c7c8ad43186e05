"""The `geo` command, run as a user would (a subprocess with the test database's environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import bearer


def geo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


def test_db_url_prints_database_url(database_url: str) -> None:
    result = geo("db", "url")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == database_url


def test_department_create_prints_a_working_key(client: TestClient) -> None:
    result = geo("department", "create", "城市管理委员会", "--code", "urban", "--role", "editor")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("tjg_")
    # An editor key authenticates but is not an admin key.
    r = client.get("/departments", headers=bearer(key))
    assert r.status_code == 403
    assert "editor" in r.json()["message"]


def test_department_create_duplicate_fails_cleanly(client: TestClient) -> None:
    geo("department", "create", "卫生健康委员会", "--code", "health")
    result = geo("department", "create", "卫生健康委员会", "--code", "health")
    assert result.returncode == 2
    assert "exists already" in result.stderr
    assert "Traceback" not in result.stderr


def test_key_create_and_revoke(client: TestClient, admin_headers: dict[str, str]) -> None:
    geo("department", "create", "交通运输委员会", "--code", "transport", "--role", "viewer")
    created = geo("key", "create", "transport", "--role", "admin")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert client.get("/departments/transport", headers=bearer(key)).status_code == 200
    keys = client.get("/departments/transport/keys", headers=admin_headers).json()["keys"]
    key_id = next(k["id"] for k in keys if key.startswith(k["prefix"]) and k["role"] == "admin")
    assert geo("key", "revoke", "transport", str(key_id)).returncode == 0
    assert client.get("/departments/transport", headers=bearer(key)).status_code == 401


def test_export_and_import_round_trip(
    client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    client.post(
        "/departments", json={"name": "备份前", "code": "before-backup"}, headers=admin_headers
    )
    dump = tmp_path / "geo.dump"
    result = geo("export", str(dump))
    assert result.returncode == 0, result.stderr
    assert dump.stat().st_size > 0
    # Changes after the backup: one department added, one removed.
    client.post(
        "/departments", json={"name": "备份后", "code": "after-backup"}, headers=admin_headers
    )
    from sqlalchemy import text

    from geo.db import get_engine

    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM departments WHERE code = 'before-backup'"))
    get_engine().dispose()  # pg_restore needs the tables free of our pooled connections' locks
    result = geo("import", str(dump))
    assert result.returncode == 0, result.stderr
    codes = {
        d["code"] for d in client.get("/departments", headers=admin_headers).json()["departments"]
    }
    assert "before-backup" in codes
    assert "after-backup" not in codes


def test_import_of_a_bad_file_changes_nothing(
    client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    before = client.get("/departments", headers=admin_headers).json()
    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"not a backup")
    result = geo("import", str(bad))
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr
    assert client.get("/departments", headers=admin_headers).json() == before

"""Graded keys (issue 11, part 1): what a key reaches (its scope), an optional expiry, an optional
read-only scope, and the bootstrap key that follows GEO_ADMIN_KEY; the migration that records
the department admins' new reach."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from geo.auth import hash_key
from geo.db import ensure_extensions, get_engine
from geo.migrations import upgrade
from tests.conftest import ADMIN_KEY, Dept, bearer
from tests.layers_helpers import collection, layer_id, point_features, upload
from tests.test_access_secrets import geo


def issue(
    client: TestClient, headers: dict[str, str], code: str, **body: object
) -> tuple[dict, dict[str, str]]:
    r = client.post(f"/departments/{code}/keys", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json(), bearer(r.json()["key"])


def listed(client: TestClient, admin_headers: dict[str, str], code: str) -> dict[int, dict]:
    r = client.get(f"/departments/{code}/keys", headers=admin_headers)
    assert r.status_code == 200, r.text
    return {k["id"]: k for k in r.json()["keys"]}


@pytest.fixture
def dept(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


def test_an_expired_key_is_a_401_naming_its_expiry(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    made, headers = issue(
        client, admin_headers, dept.code, role="editor", expires_at=expires.isoformat()
    )
    assert datetime.fromisoformat(made["expires_at"]) == expires and made["expired"] is False
    assert client.get("/collections", headers=headers).status_code == 200
    past = datetime.now(UTC) - timedelta(minutes=1)
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE api_keys SET expires_at = :at WHERE id = :id"),
            {"at": past, "id": made["id"]},
        )
    r = client.get("/collections", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "KeyExpired"
    assert past.isoformat()[:16] in r.json()["message"]
    assert r.json()["details"]["expired_at"].startswith(past.isoformat()[:16])
    assert listed(client, admin_headers, dept.code)[made["id"]]["expired"] is True


@pytest.mark.parametrize(
    "expires_at",
    [
        (datetime.now(UTC) - timedelta(days=1)).isoformat(),  # in the past
        "2030-01-01T00:00:00",  # no offset: whose midnight?
        "soon",
    ],
)
def test_a_bad_expiry_is_a_400_and_issues_nothing(
    client: TestClient, admin_headers: dict[str, str], dept: Dept, expires_at: str
) -> None:
    before = listed(client, admin_headers, dept.code)
    r = client.post(
        f"/departments/{dept.code}/keys",
        json={"role": "viewer", "expires_at": expires_at},
        headers=admin_headers,
    )
    assert r.status_code == 400, r.text
    assert "expires_at" in r.json()["message"]
    assert listed(client, admin_headers, dept.code) == before


def test_a_read_only_key_reads_but_never_writes(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    admin, admin_ro = issue(client, admin_headers, dept.code, role="admin", read_only=True)
    assert admin["read_only"] is True
    _, editor_ro = issue(client, admin_headers, dept.code, role="editor", read_only=True)
    before = listed(client, admin_headers, dept.code)
    # An admin's reads still work...
    assert client.get(f"/departments/{dept.code}/keys", headers=admin_ro).status_code == 200
    assert client.get("/audit", headers=admin_ro).status_code == 200
    # ...its writes do not.
    r = client.post(f"/departments/{dept.code}/keys", json={"role": "viewer"}, headers=admin_ro)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "ReadOnlyKey"
    revoke = client.delete(f"/departments/{dept.code}/keys/{admin['id']}", headers=admin_ro)
    assert revoke.status_code == 403 and revoke.json()["code"] == "ReadOnlyKey"
    assert listed(client, admin_headers, dept.code) == before  # nothing written
    # An editor's read-only key uploads no layer.
    lid = layer_id()
    up = upload(client, editor_ro, lid, collection(point_features(3)), access="private")
    assert up.status_code == 403, up.text
    assert up.json()["code"] == "ReadOnlyKey"
    assert client.get(f"/collections/{lid}", headers=admin_headers).status_code == 404
    # What it may read, it reads.
    assert client.get("/collections", headers=editor_ro).status_code == 200


def test_listings_show_scope_expiry_and_bootstrap(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    made, _ = issue(client, admin_headers, dept.code, role="admin", label="部门管理员")
    entry = listed(client, admin_headers, dept.code)[made["id"]]
    assert (entry["scope"], entry["read_only"], entry["bootstrap"], entry["expires_at"]) == (
        "department",
        False,
        False,
        None,
    )
    platform, _ = issue(client, admin_headers, "platform", role="admin", label="second admin")
    keys = listed(client, admin_headers, "platform")
    assert keys[platform["id"]]["scope"] == "platform"
    assert keys[platform["id"]]["bootstrap"] is False
    (bootstrap,) = [k for k in keys.values() if k["prefix"] == ADMIN_KEY[:8]]
    assert bootstrap["bootstrap"] is True and bootstrap["scope"] == "platform"
    client.delete(f"/departments/platform/keys/{platform['id']}", headers=admin_headers)


def test_a_department_admin_key_cannot_create_a_department(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    _, dept_admin = issue(client, admin_headers, dept.code, role="admin")
    code = "d-" + secrets.token_hex(4)
    r = client.post("/departments", json={"name": "越权", "code": code}, headers=dept_admin)
    assert r.status_code == 403, r.text
    assert r.json()["details"]["rule"] == "platform-admin"
    assert client.get(f"/departments/{code}", headers=admin_headers).status_code == 404


# --- the migration and GEO_ADMIN_KEY rotation, on a database of their own -------------------------


def install_admin_key(url: str, key: str) -> None:
    """What every worker does at start, in a process of its own (settings are read once)."""
    done = subprocess.run(
        [sys.executable, "-c", "from geo.bootstrap import install_admin_key; install_admin_key()"],
        env={**os.environ, "DATABASE_URL": url, "GEO_ADMIN_KEY": key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_migration_marks_scopes_and_the_bootstrap_key_then_rotation_revokes_it(
    scratch_database: str,
) -> None:
    url = scratch_database
    engine = create_engine(url)
    try:
        ensure_extensions(engine)
        upgrade(url, "232fef47a94e")
        with engine.begin() as conn:
            ids = dict(
                conn.execute(
                    text(
                        "INSERT INTO departments (code, name) VALUES ('platform', '平台'), "
                        "('police', '公安') RETURNING code, id"
                    )
                ).all()
            )
            rows = [  # prefix, department, role, label
                ("tjg_boot", "platform", "admin", None),  # installed from GEO_ADMIN_KEY
                ("tjg_http", "platform", "admin", None),  # issued over HTTP: audited
                ("tjg_poli", "police", "admin", None),  # was platform-wide, now its own
                ("tjg_pled", "platform", "editor", None),
            ]
            for prefix, code, role, label in rows:
                conn.execute(
                    text(
                        "INSERT INTO api_keys (department_id, role, prefix, key_hash, label) "
                        "VALUES (:d, :r, :p, :h, :l)"
                    ),
                    {"d": ids[code], "r": role, "p": prefix, "h": "h-" + prefix, "l": label},
                )
            conn.execute(
                text(
                    "INSERT INTO audit_log (department_code, key_prefix, role, action, target) "
                    "VALUES ('platform', 'tjg_boot', 'admin', 'key.create', 'platform/tjg_http')"
                )
            )
        upgrade(url)
        with engine.connect() as conn:
            marked = {
                prefix: (scope, bootstrap, read_only, expires)
                for prefix, scope, bootstrap, read_only, expires in conn.execute(
                    text("SELECT prefix, scope, bootstrap, read_only, expires_at FROM api_keys")
                )
            }
        assert marked == {
            "tjg_boot": ("platform", True, False, None),
            "tjg_http": ("platform", False, False, None),
            "tjg_poli": ("department", False, False, None),
            "tjg_pled": ("department", False, False, None),
        }

        first, second = "tjg_" + secrets.token_urlsafe(16), "tjg_" + secrets.token_urlsafe(16)
        install_admin_key(url, first)
        install_admin_key(url, first)  # a second worker, or a restart: nothing more happens
        install_admin_key(url, second)
        with engine.connect() as conn:
            live = {
                prefix: (bootstrap, revoked is not None)
                for prefix, bootstrap, revoked in conn.execute(
                    text("SELECT prefix, bootstrap, revoked_at FROM api_keys")
                )
            }
            events = conn.execute(
                text(
                    "SELECT action, target, details ->> 'reason' FROM audit_log "
                    "WHERE key_prefix = 'startup' ORDER BY id"
                )
            ).all()
            stored = conn.execute(
                text("SELECT count(*) FROM api_keys WHERE key_hash = :h"), {"h": hash_key(second)}
            ).scalar_one()
        assert (
            live
            == {
                "tjg_boot": (True, True),  # the old GEO_ADMIN_KEY: revoked by the first install
                "tjg_http": (False, False),  # issued keys are never touched
                "tjg_poli": (False, False),
                "tjg_pled": (False, False),
                first[:8]: (True, True),
                second[:8]: (True, False),
            }
        )
        assert stored == 1
        assert [tuple(e) for e in events] == [
            ("key.create", f"platform/{first[:8]}", None),
            ("key.revoke", "platform/tjg_boot", "GEO_ADMIN_KEY changed"),
            ("key.create", f"platform/{second[:8]}", None),
            ("key.revoke", f"platform/{first[:8]}", "GEO_ADMIN_KEY changed"),
        ]
    finally:
        engine.dispose()


def test_workers_starting_together_on_a_new_database_both_start(scratch_database: str) -> None:
    """Each worker makes sure of the platform department as it starts. Here the first worker's
    row is inserted and not yet committed when the second starts: the second must wait for it
    and take it. With a look-then-insert, the second's startup failed on the unique code (and
    uvicorn then stopped the whole server, seen with `geo serve --workers 2` on a new
    database)."""
    url = scratch_database
    engine = create_engine(url)
    key = "tjg_boot_" + secrets.token_urlsafe(16)
    try:
        ensure_extensions(engine)
        upgrade(url)
        with engine.connect() as first:
            first.execute(text("INSERT INTO departments (code, name) VALUES ('platform', '平台')"))
            second = subprocess.Popen(
                [sys.executable, "-c", "from geo.bootstrap import install_admin_key as i; i()"],
                env={**os.environ, "DATABASE_URL": url, "GEO_ADMIN_KEY": key},
                stderr=subprocess.PIPE,
                text=True,
            )
            # The second worker is waiting for the first's row (or has already failed).
            deadline = time.monotonic() + 60
            with engine.connect() as watch:
                while second.poll() is None and time.monotonic() < deadline:
                    waiting = watch.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'"
                        )
                    ).scalar_one()
                    watch.rollback()
                    if waiting:
                        break
                    time.sleep(0.05)
            first.commit()
        _, errors = second.communicate(timeout=120)
        assert second.returncode == 0, errors
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT d.name, k.role FROM departments d JOIN api_keys k "
                    "ON k.department_id = d.id WHERE d.code = 'platform'"
                )
            ).all()
        assert [tuple(r) for r in rows] == [("平台", "admin")]
    finally:
        engine.dispose()


def test_cli_issues_read_only_and_expiring_keys(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    made = geo("key", "create", dept.code, "--role", "editor", "--read-only", "--days", "7")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    (entry,) = [
        k for k in listed(client, admin_headers, dept.code).values() if k["prefix"] == key[:8]
    ]
    assert entry["read_only"] is True
    expires = datetime.fromisoformat(entry["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    r = client.post(f"/departments/{dept.code}/keys", json={"role": "viewer"}, headers=bearer(key))
    assert r.status_code == 403
    assert geo("key", "create", dept.code, "--days", "0").returncode == 2  # typer: bad option

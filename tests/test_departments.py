"""Departments and keys over HTTP: shown once, stored hashed, revocable, roles enforced."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from geo.auth import hash_key
from geo.db import session_scope
from geo.models import ApiKey
from tests.conftest import bearer


def test_admin_creates_department_and_key(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        "/departments", json={"name": "公安局", "code": "police"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["code"] == "police"
    r = client.post("/departments/police/keys", json={"role": "editor"}, headers=admin_headers)
    assert r.status_code == 201
    created = r.json()
    key = created["key"]
    assert created["role"] == "editor"
    assert key.startswith(created["prefix"])
    # Stored hashed: the plaintext is nowhere in the table, its SHA-256 is.
    with session_scope() as session:
        stored = session.scalar(select(ApiKey).where(ApiKey.id == created["id"]))
        assert stored is not None
        assert stored.key_hash == hash_key(key) != key
    # Shown once: the listing never carries secrets.
    listing = client.get("/departments/police/keys", headers=admin_headers).json()["keys"]
    assert all("key" not in k and "key_hash" not in k for k in listing)


def test_code_derived_from_chinese_name(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post("/departments", json={"name": "应急管理局"}, headers=admin_headers)
    assert r.status_code == 201
    assert r.json()["code"] == "yingjiguanliju"


def test_duplicate_code_is_409(client: TestClient, admin_headers: dict[str, str]) -> None:
    body = {"name": "民政局", "code": "civil"}
    assert client.post("/departments", json=body, headers=admin_headers).status_code == 201
    r = client.post("/departments", json=body, headers=admin_headers)
    assert r.status_code == 409
    assert "civil" in r.json()["message"]


def test_invalid_code_is_400(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post("/departments", json={"name": "x", "code": "Bad Code!"}, headers=admin_headers)
    assert r.status_code == 400
    assert "code" in r.json()["message"]


def test_malformed_json_is_400(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post(
        "/departments",
        content=b'{"name": "x",',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "MalformedJSON"


def test_unknown_field_is_400(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post("/departments", json={"name": "x", "colour": "red"}, headers=admin_headers)
    assert r.status_code == 400
    assert "colour" in r.json()["message"]


def test_unknown_role_is_400(
    client: TestClient, make_department: Callable, admin_headers: dict[str, str]
) -> None:
    code = make_department().code
    r = client.post(f"/departments/{code}/keys", json={"role": "superuser"}, headers=admin_headers)
    assert r.status_code == 400
    assert "role" in r.json()["message"]


def test_missing_key_is_401(client: TestClient) -> None:
    r = client.post("/departments", json={"name": "x"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == "Unauthorized"


def test_unknown_key_is_401(client: TestClient) -> None:
    r = client.get("/departments", headers=bearer("tjg_not-a-real-key"))
    assert r.status_code == 401
    assert r.json()["code"] == "InvalidKey"


def test_malformed_authorization_header_is_401(client: TestClient) -> None:
    r = client.get("/departments", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert "Bearer" in r.json()["message"]


def test_viewer_and_editor_cannot_administer(client: TestClient, make_department: Callable) -> None:
    dept = make_department()
    for role in ("viewer", "editor"):
        r = client.post("/departments", json={"name": "x"}, headers=getattr(dept, role))
        assert r.status_code == 403
        assert role in r.json()["message"]


def test_revoked_key_is_401(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable
) -> None:
    code = make_department().code
    created = client.post(
        f"/departments/{code}/keys", json={"role": "admin"}, headers=admin_headers
    ).json()
    headers = bearer(created["key"])
    assert client.get(f"/departments/{code}", headers=headers).status_code == 200
    r = client.delete(f"/departments/{code}/keys/{created['id']}", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    r = client.get(f"/departments/{code}", headers=headers)
    assert r.status_code == 401
    assert "revoked" in r.json()["message"]


def test_key_as_query_parameter(client: TestClient, admin_headers: dict[str, str]) -> None:
    key = admin_headers["Authorization"].split()[1]
    assert client.get("/departments", params={"key": key}).status_code == 200


def test_revoking_unknown_key_is_404(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable
) -> None:
    code = make_department().code
    r = client.delete(f"/departments/{code}/keys/999999", headers=admin_headers)
    assert r.status_code == 404

"""The audit trail records writes with who, when, what and from where; admins query it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from geo.audit import record
from geo.auth import Principal
from geo.db import session_scope


def test_writes_are_audited(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    code = make_department().code
    r = client.get(
        "/audit",
        params={"action": "department.create", "since": start.isoformat()},
        headers=admin_headers,
    )
    assert r.status_code == 200
    events = [e for e in r.json()["events"] if e["target"] == code]
    assert len(events) == 1
    event = events[0]
    assert event["department"] == "platform"
    assert event["role"] == "admin"
    assert event["key"] and admin_headers["Authorization"].split()[1].startswith(event["key"])
    keys = client.get("/audit", params={"action": "key.create"}, headers=admin_headers).json()[
        "events"
    ]
    assert {e["target"].split("/")[0] for e in keys} >= {code}


def test_filters(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable
) -> None:
    make_department()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        client.get("/audit", params={"since": future}, headers=admin_headers).json()["events"] == []
    )
    by_dept = client.get(
        "/audit", params={"department": "platform", "limit": 5}, headers=admin_headers
    ).json()
    assert 0 < by_dept["numberReturned"] <= 5
    assert all(e["department"] == "platform" for e in by_dept["events"])


def test_client_address_is_recorded(database_url: str) -> None:
    with session_scope() as session:
        record(
            session, Principal("police", "editor", "tjg_abcdefgh", "10.1.2.3"), "test.write", "x"
        )
    with session_scope() as session:
        from geo.audit import query

        event = query(session, action="test.write", limit=1)[0]
    assert event["client"] == "10.1.2.3"


def test_failed_write_leaves_no_entry(client: TestClient, admin_headers: dict[str, str]) -> None:
    before = client.get(
        "/audit", params={"action": "department.create"}, headers=admin_headers
    ).json()
    r = client.post("/departments", json={"name": "x", "code": "Bad!"}, headers=admin_headers)
    assert r.status_code == 400
    after = client.get(
        "/audit", params={"action": "department.create"}, headers=admin_headers
    ).json()
    assert after["events"] == before["events"]


def test_audit_is_for_admins(client: TestClient, make_department: Callable) -> None:
    dept = make_department()
    assert client.get("/audit", headers=dept.editor).status_code == 403
    assert client.get("/audit").status_code == 401


def test_bad_time_filter_is_400(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.get("/audit", params={"since": "yesterday"}, headers=admin_headers)
    assert r.status_code == 400
    assert "since" in r.json()["message"]


def test_a_person_signed_in_is_named_and_covered_by_the_chain(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    """People signed in by cookie act with no key: the entry names their account, and the
    hash chain covers it (setting or clearing it is found)."""
    from sqlalchemy import text

    from geo.audit.chain import seal, verify
    from tests.audit_helpers import tampering

    who = Principal("police", "editor", None, "10.0.0.1", account="zhang.san")
    with session_scope() as session:
        record(session, who, "test.by-account", "x")
    event = client.get(
        "/audit", params={"action": "test.by-account"}, headers=admin_headers
    ).json()["events"][0]
    assert (event["account"], event["key"]) == ("zhang.san", None)
    seal()
    with tampering() as session:
        session.execute(
            text("UPDATE audit_log SET account = NULL WHERE id = :id"), {"id": event["id"]}
        )
        broken = verify(session).broken
    assert broken is not None and (broken.problem, broken.id) == ("altered", event["id"])

"""Access requests (issue 11, part 5): a department asks for a 有条件共享 layer, the owner's
admin approves (possibly narrower) or rejects, the approval is a grant that revocation ends at
once; both sides list them; every bad input is a 4xx that writes nothing."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.auth import Principal
from geo.db import session_scope
from geo.errors import ApiError
from layers import requests as access_requests
from tests.conftest import Dept, bearer
from tests.layers_helpers import make_points_layer

# Around the first ten of make_points_layer's points (117.2..117.219, 39.1..39.1095).
NEAR = {
    "type": "Polygon",
    "coordinates": [
        [
            [117.199, 39.099],
            [117.2095, 39.099],
            [117.2095, 39.106],
            [117.199, 39.106],
            [117.199, 39.099],
        ]
    ],
}
INSIDE_NEAR = {
    "type": "Polygon",
    "coordinates": [
        [
            [117.1995, 39.0995],
            [117.2045, 39.0995],
            [117.2045, 39.103],
            [117.1995, 39.103],
            [117.1995, 39.0995],
        ]
    ],
}
ELSEWHERE = {
    "type": "Polygon",
    "coordinates": [[[117.5, 39.5], [117.6, 39.5], [117.6, 39.6], [117.5, 39.6], [117.5, 39.5]]],
}


@dataclass(frozen=True)
class Side:
    dept: Dept
    admin: dict[str, str]


@dataclass(frozen=True)
class World:
    owner: Side
    asker: Side
    third: Side
    layer: str


def _side(client: TestClient, make_department, admin_headers) -> Side:
    dept = make_department()
    r = client.post(f"/departments/{dept.code}/keys", json={"role": "admin"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    return Side(dept, bearer(r.json()["key"]))


def _layer(client: TestClient, owner: Side, sharing: str) -> str:
    lid = make_points_layer(client, owner.dept.editor, access="private")
    r = client.patch(
        f"/collections/{lid}/catalogue-entry",
        json={"sharing_type": sharing},
        headers=owner.dept.editor,
    )
    assert r.status_code == 200, r.text
    return lid


@pytest.fixture()
def world(client: TestClient, make_department, admin_headers) -> World:
    owner = _side(client, make_department, admin_headers)
    asker = _side(client, make_department, admin_headers)
    third = _side(client, make_department, admin_headers)
    return World(owner, asker, third, _layer(client, owner, "conditional"))


def _ask(client: TestClient, headers: dict[str, str], lid: str, **body: Any):
    payload = {
        "collection": lid,
        "purpose": "学校周边交通安全整治",
        "level": "view",
        "duration_days": 90,
        **body,
    }
    return client.post("/access-requests", json=payload, headers=headers)


def _rows(lid: str) -> tuple[int, int]:
    """(access requests, grants) of the layer."""
    with session_scope() as s:
        requests = s.execute(
            text("SELECT count(*) FROM access_requests WHERE layer_id = :l"), {"l": lid}
        ).scalar_one()
        grants = s.execute(
            text("SELECT count(*) FROM layer_grants WHERE layer_id = :l"), {"l": lid}
        ).scalar_one()
    return requests, grants


def _audit(lid: str) -> list[str]:
    with session_scope() as s:
        return list(
            s.execute(
                text(
                    "SELECT action FROM audit_log WHERE target = :l "
                    "AND action LIKE 'access_request.%' ORDER BY id"
                ),
                {"l": lid},
            ).scalars()
        )


def test_ask_approve_narrower_read_revoke(client: TestClient, world: World) -> None:
    lid, asker, owner = world.layer, world.asker, world.owner
    items = f"/collections/{lid}/items"
    assert client.get(items, headers=asker.dept.viewer).status_code == 404

    r = _ask(client, asker.dept.editor, lid, attributes=["name", "pop"], area=NEAR)
    assert r.status_code == 201, r.text
    asked = r.json()
    assert asked["status"] == "pending" and asked["owner"] == owner.dept.code
    assert asked["attributes"] == ["name", "pop"] and asked["grant"] is None

    incoming = client.get("/access-requests", params={"direction": "incoming"}, headers=owner.admin)
    assert [x["id"] for x in incoming.json()["requests"]] == [asked["id"]]
    outgoing = client.get(
        "/access-requests",
        params={"direction": "outgoing", "status": "pending"},
        headers=asker.dept.viewer,
    )
    assert [x["id"] for x in outgoing.json()["requests"]] == [asked["id"]]
    # Other departments see nothing of it.
    assert client.get("/access-requests", headers=world.third.admin).json()["requests"] == []
    assert (
        client.get(f"/access-requests/{asked['id']}", headers=world.third.admin).status_code == 404
    )

    r = client.post(
        f"/access-requests/{asked['id']}/approve",
        json={"attributes": ["name"], "area": INSIDE_NEAR, "duration_days": 30, "note": "仅限名称"},
        headers=owner.admin,
    )
    assert r.status_code == 200, r.text
    approved = r.json()
    assert approved["status"] == "approved" and approved["reason"] == "仅限名称"
    grant = approved["grant"]
    assert grant["grantee"] == asker.dept.code and grant["request_id"] == asked["id"]
    assert grant["attributes"] == ["name"] and grant["level"] == "view" and grant["active"]
    expires = datetime.fromisoformat(grant["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)

    page = client.get(items, params={"limit": 100}, headers=asker.dept.viewer)
    assert page.status_code == 200, page.text
    features = page.json()["features"]
    assert 0 < len(features) < 20
    assert all(set(f["properties"]) == {"name"} for f in features)
    record = client.get(f"/catalogue/collections/layers/items/{lid}", headers=asker.dept.viewer)
    assert record.json()["properties"]["access"] == "granted"

    # Revoking the grant ends the access on the next request.
    r = client.delete(f"/collections/{lid}/grants/{grant['id']}", headers=owner.dept.editor)
    assert r.status_code == 204, r.text
    assert client.get(items, headers=asker.dept.viewer).status_code == 404
    listed = client.get(f"/access-requests/{asked['id']}", headers=asker.dept.viewer).json()
    assert listed["status"] == "approved" and listed["grant"]["active"] is False

    assert _audit(lid) == ["access_request.create", "access_request.approve"]


def test_approve_as_asked_reject_and_withdraw(
    client: TestClient, world: World, admin_headers
) -> None:
    lid, asker, owner = world.layer, world.asker, world.owner
    first = _ask(client, asker.dept.editor, lid, level="download").json()
    r = client.post(f"/access-requests/{first['id']}/reject", json={}, headers=owner.admin)
    assert r.status_code == 400 and "reason" in r.text  # a rejection needs its reason
    r = client.post(
        f"/access-requests/{first['id']}/reject",
        json={"reason": "用途与数据无关"},
        headers=owner.admin,
    )
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert r.json()["reason"] == "用途与数据无关"
    # Decided once: a second decision is a conflict, as is withdrawing it.
    r = client.post(f"/access-requests/{first['id']}/approve", json={}, headers=owner.admin)
    assert r.status_code == 409 and r.json()["code"] == "AlreadyDecided"
    assert (
        client.post(
            f"/access-requests/{first['id']}/withdraw", headers=asker.dept.editor
        ).status_code
        == 409
    )

    second = _ask(client, asker.admin, lid).json()
    assert (
        client.post(f"/access-requests/{second['id']}/withdraw", headers=owner.admin).status_code
        == 403
    )
    r = client.post(f"/access-requests/{second['id']}/withdraw", headers=asker.dept.editor)
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"

    # The platform administrator may decide too; as asked, the grant has the asked terms.
    third = _ask(
        client,
        asker.dept.editor,
        lid,
        duration_days=None,
        expires_at=(datetime.now(UTC) + timedelta(days=10)).isoformat(),
    ).json()
    r = client.post(f"/access-requests/{third['id']}/approve", json={}, headers=admin_headers)
    assert r.status_code == 200, r.text
    grant = r.json()["grant"]
    assert grant["attributes"] is None and grant["area"] is None
    assert datetime.fromisoformat(grant["expires_at"]) == datetime.fromisoformat(
        third["expires_at"]
    )
    assert client.get(f"/collections/{lid}/items", headers=asker.dept.viewer).status_code == 200
    statuses = [
        x["status"]
        for x in client.get(
            "/access-requests", params={"direction": "outgoing"}, headers=asker.dept.viewer
        ).json()["requests"]
    ]
    assert statuses == ["approved", "withdrawn", "rejected"]
    assert _audit(lid) == [
        "access_request.create",
        "access_request.reject",
        "access_request.create",
        "access_request.withdraw",
        "access_request.create",
        "access_request.approve",
    ]


def test_bad_requests_write_nothing(client: TestClient, world: World) -> None:
    lid, asker, owner = world.layer, world.asker, world.owner
    hidden = _layer(client, owner, "none")
    unconditional = _layer(client, owner, "unconditional")
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    cases: list[tuple[dict[str, str], str, dict[str, Any], int, str]] = [
        (asker.dept.editor, hidden, {}, 404, "NotFound"),
        (asker.dept.editor, "no_such_layer", {}, 404, "NotFound"),
        (asker.dept.editor, unconditional, {}, 409, "NotNeeded"),
        (owner.dept.editor, lid, {}, 409, "NotNeeded"),
        (asker.dept.viewer, lid, {}, 403, "Forbidden"),
        (asker.dept.editor, lid, {"attributes": ["name", "colour"]}, 400, "UnknownAttribute"),
        (asker.dept.editor, lid, {"duration_days": 0}, 400, "ExpiryInPast"),
        (asker.dept.editor, lid, {"duration_days": -5}, 400, "ExpiryInPast"),
        (asker.dept.editor, lid, {"duration_days": None, "expires_at": past}, 400, "ExpiryInPast"),
        (asker.dept.editor, lid, {"duration_days": None}, 400, "DurationRequired"),
        (asker.dept.editor, lid, {"duration_days": 5000}, 400, "DurationTooLong"),
        (asker.dept.editor, lid, {"duration_days": 10**9}, 400, "InvalidParameterValue"),
        (asker.dept.editor, lid, {"level": "admin"}, 400, "InvalidParameterValue"),
        (
            asker.dept.editor,
            lid,
            {"area": {"type": "Point", "coordinates": [117.2, 39.1]}},
            400,
            "InvalidArea",
        ),
        (asker.dept.editor, lid, {"purpose": ""}, 400, "InvalidParameterValue"),
        (asker.dept.editor, lid, {"purpose": "长" * 2001}, 400, "InvalidParameterValue"),
        (asker.dept.editor, lid, {"wish": "everything"}, 400, "InvalidParameterValue"),
    ]
    for headers, layer, body, status, code in cases:
        r = _ask(client, headers, layer, **body)
        assert (r.status_code, r.json()["code"]) == (status, code), (layer, body, r.text)
    assert _ask(client, {}, lid).status_code == 401
    assert _rows(lid) == (0, 0) and _rows(hidden)[0] == 0 and _rows(unconditional)[0] == 0

    # A second pending request of the same department is a conflict; another department's is not.
    pending = _ask(client, asker.dept.editor, lid, attributes=["name", "pop"], area=NEAR).json()
    r = _ask(client, asker.admin, lid)
    assert r.status_code == 409 and r.json()["code"] == "DuplicateRequest"
    assert _ask(client, world.third.dept.editor, lid).status_code == 201

    url = f"/access-requests/{pending['id']}/approve"
    deciders = [
        (world.third.admin, 403),  # another department's admin
        (asker.admin, 403),  # the asking department's admin
        (owner.dept.editor, 403),  # the owner's editor: deciding needs its admin
        ({}, 401),
    ]
    for headers, status in deciders:
        assert client.post(url, json={}, headers=headers).status_code == status
        assert (
            client.post(
                f"/access-requests/{pending['id']}/reject", json={"reason": "不行"}, headers=headers
            ).status_code
            == status
        )
    wider = [
        ({"level": "download"}, "level"),
        ({"attributes": ["name", "score"]}, "attributes"),
        ({"area": ELSEWHERE}, "area"),
        ({"duration_days": 91}, "expiry"),
        ({"expires_at": (datetime.now(UTC) + timedelta(days=200)).isoformat()}, "expiry"),
    ]
    for body, what in wider:
        r = client.post(url, json=body, headers=owner.admin)
        assert r.status_code == 400 and r.json()["code"] == "WiderThanAsked", r.text
        assert r.json()["details"]["wider"] == [what]
    r = client.post(url, json={"attributes": ["colour"]}, headers=owner.admin)
    assert r.status_code == 400 and r.json()["code"] == "UnknownAttribute"
    assert (
        client.post("/access-requests/999999999/approve", json={}, headers=owner.admin).status_code
        == 404
    )
    assert _rows(lid) == (2, 0)
    assert (
        client.get(f"/access-requests/{pending['id']}", headers=owner.admin).json()["status"]
        == "pending"
    )


def test_concurrent_duplicates_meet_the_unique_index(client: TestClient, world: World) -> None:
    """Two submissions of one department at once: the second cannot see the first's row yet,
    so the check passes, and the partial unique index answers: a 409, not a second request."""
    who = Principal(world.asker.dept.code, "editor", "tjg_test")
    terms = {"collection": world.layer, "purpose": "并发", "level": "view", "duration_days": 5}
    first_written = threading.Event()
    outcome: list[object] = []

    def first() -> None:
        with session_scope() as s:
            access_requests.submit(s, who, **terms)
            s.flush()
            first_written.set()
            time.sleep(0.5)  # the second submission is waiting on the index meanwhile

    thread = threading.Thread(target=first)
    thread.start()
    assert first_written.wait(10)
    try:
        with session_scope() as s:
            access_requests.submit(s, who, **terms)
    except ApiError as exc:
        outcome.append((exc.status, exc.code))
    thread.join()
    assert outcome == [(409, "DuplicateRequest")]
    assert _rows(world.layer) == (1, 0)

"""Grants (issue 11, 分级授权): creating, listing and revoking them, every bad input a 4xx with
nothing written, the levels, shared_with kept as view grants, expiry and revocation taking
effect at once, and reads naming their grant in the audit trail."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.auth import Principal
from geo.db import session_scope
from layers import grants
from tests.layers_helpers import make_points_layer, point_features, square

# Points p0..p19 lie at (117.2 + i/1000, 39.1 + i/2000); this box holds p0..p9.
HALF = square(117.1995, 39.0995, 0.0100)
# Inside the city, away from every feature.
ELSEWHERE = square(117.3, 39.3, 0.01)
# A district polygon the address library would hold, covering p0..p4 (x up to 117.2045).
AREA_CODE = "120198888888"


@pytest.fixture(scope="module")
def district():
    with session_scope() as s:
        s.execute(text("DELETE FROM admin_areas WHERE code = :c"), {"c": AREA_CODE})
        s.execute(
            text(
                "INSERT INTO admin_areas (code, name, level, geom) VALUES (:c, '授权测试区', "
                "'district', ST_Multi(ST_GeomFromText('POLYGON((117.19 39.09, 117.2045 39.09, "
                "117.2045 39.2, 117.19 39.2, 117.19 39.09))', 4490)))"
            ),
            {"c": AREA_CODE},
        )
    yield AREA_CODE
    with session_scope() as s:  # the address library's tables are shared by the session
        s.execute(text("DELETE FROM admin_areas WHERE code = :c"), {"c": AREA_CODE})


@pytest.fixture
def world(client: TestClient, make_department):
    owner, friend, other = make_department(), make_department(), make_department()
    lid = make_points_layer(client, owner.editor, access="private")
    return owner, friend, other, lid


def _grant(client, headers, lid, **body):
    return client.post(f"/collections/{lid}/grants", json=body, headers=headers)


def _count(client, headers, lid, **params) -> int:
    r = client.get(f"/collections/{lid}/items", params={"limit": 100, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return int(r.json()["numberMatched"])


def _grant_rows(lid: str) -> int:
    with session_scope() as s:
        return int(
            s.execute(
                text("SELECT count(*) FROM layer_grants WHERE layer_id = :l"), {"l": lid}
            ).scalar_one()
        )


def test_grant_view_with_area_and_attributes(client: TestClient, world) -> None:
    owner, friend, other, lid = world
    assert client.get(f"/collections/{lid}/items", headers=friend.viewer).status_code == 404
    r = _grant(
        client, owner.editor, lid, grantee=friend.code, level="view", area=HALF, attributes=["name"]
    )
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["grantee"] == friend.code and grant["attributes"] == ["name"]
    assert grant["area"]["type"] == "MultiPolygon" and grant["active"]
    assert _count(client, friend.viewer, lid) == 10
    assert _count(client, owner.viewer, lid) == 20
    page = client.get(f"/collections/{lid}/items", headers=friend.viewer).json()
    assert {k for f in page["features"] for k in f["properties"]} == {"name"}
    # Other departments and anonymous callers still find nothing.
    assert client.get(f"/collections/{lid}/items", headers=other.viewer).status_code == 404
    assert client.get(f"/collections/{lid}/items").status_code == 404
    # The grantee lists it; the owner lists it as given.
    mine = client.get("/grants", headers=friend.viewer).json()
    assert [g["id"] for g in mine["received"] if g["collection"] == lid] == [grant["id"]]
    assert mine["given"] == []
    given = client.get("/grants", headers=owner.viewer).json()["given"]
    assert [g["id"] for g in given] == [grant["id"]]
    listed = client.get(f"/collections/{lid}/grants", headers=friend.viewer).json()["grants"]
    assert [g["id"] for g in listed] == [grant["id"]]


def test_grant_by_admin_area_code(client: TestClient, world, district) -> None:
    owner, friend, _, lid = world
    r = _grant(client, owner.editor, lid, grantee=friend.code, level="view", area_code=district)
    assert r.status_code == 201, r.text
    assert r.json()["area_code"] == district
    assert _count(client, friend.viewer, lid) == 5


def test_grant_to_every_department_is_not_public(client: TestClient, world) -> None:
    owner, friend, other, lid = world
    r = _grant(client, owner.editor, lid, grantee=None, level="view")
    assert r.status_code == 201, r.text
    assert _count(client, friend.viewer, lid) == 20
    assert _count(client, other.viewer, lid) == 20
    assert client.get(f"/collections/{lid}/items").status_code == 404
    assert client.get(f"/collections/{lid}").status_code == 404


def test_levels_view_download_edit(client: TestClient, world) -> None:
    owner, friend, _, lid = world
    assert _grant(client, owner.editor, lid, grantee=friend.code, level="view").status_code == 201
    r = client.get(f"/collections/{lid}/export", params={"f": "csv"}, headers=friend.viewer)
    assert r.status_code == 403 and r.json()["code"] == "InsufficientGrant"
    feature = point_features(1)[0]
    r = client.post(f"/collections/{lid}/items", json=feature, headers=friend.editor)
    assert r.status_code == 403
    assert (
        _grant(client, owner.editor, lid, grantee=friend.code, level="download").status_code == 201
    )
    r = client.get(f"/collections/{lid}/export", params={"f": "csv"}, headers=friend.viewer)
    assert r.status_code == 200 and r.text.count("\n") == 21
    r = client.post(f"/collections/{lid}/items", json=feature, headers=friend.editor)
    assert r.status_code == 403
    assert _grant(client, owner.editor, lid, grantee=friend.code, level="edit").status_code == 201
    r = client.post(f"/collections/{lid}/items", json=feature, headers=friend.editor)
    assert r.status_code == 201, r.text
    # An edit grant lets editors edit; the department's viewer keys still only read.
    r = client.post(f"/collections/{lid}/items", json=feature, headers=friend.viewer)
    assert r.status_code == 403
    # Grantees never manage the layer: no metadata changes, no grants of their own.
    r = client.patch(f"/collections/{lid}", json={"title": "x"}, headers=friend.editor)
    assert r.status_code == 403
    assert _grant(client, friend.editor, lid, grantee=None, level="view").status_code == 403


def test_edit_grant_keeps_to_its_area_and_attributes(client: TestClient, world) -> None:
    owner, friend, _, lid = world
    r = _grant(
        client, owner.editor, lid, grantee=friend.code, level="edit", area=HALF, attributes=["name"]
    )
    assert r.status_code == 201, r.text
    inside, outside = point_features(20)[2], point_features(20)[15]
    outside = {**outside, "properties": {"name": "外"}}
    ids = {
        f["properties"]["name"]: f["id"]
        for f in client.get(f"/collections/{lid}/items?limit=100", headers=owner.viewer).json()[
            "features"
        ]
    }
    # A new feature outside the area, or naming a withheld attribute, is refused.
    r = client.post(f"/collections/{lid}/items", json=outside, headers=friend.editor)
    assert r.status_code == 422 and r.json()["code"] == "OutsideGrantArea"
    r = client.post(f"/collections/{lid}/items", json=inside, headers=friend.editor)
    assert r.status_code == 422 and "pop" in r.json()["message"]
    ok = {**inside, "properties": {"name": "新点"}}
    r = client.post(f"/collections/{lid}/items", json=ok, headers=friend.editor)
    assert r.status_code == 201, r.text
    assert set(r.json()["properties"]) == {"name"}
    # Features outside the area do not exist for the grantee.
    r = client.patch(
        f"/collections/{lid}/items/{ids['p15']}",
        json={"properties": {"name": "x"}},
        headers=friend.editor,
    )
    assert r.status_code == 404
    r = client.patch(
        f"/collections/{lid}/items/{ids['p3']}",
        json={"properties": {"name": "改名"}},
        headers=friend.editor,
    )
    assert r.status_code == 200, r.text
    # The withheld attributes kept their values.
    full = client.get(f"/collections/{lid}/items/{ids['p3']}", headers=owner.viewer).json()
    assert full["properties"] == {"name": "改名", "pop": 3, "score": 0.75}
    assert (
        client.delete(f"/collections/{lid}/items/{ids['p15']}", headers=friend.editor).status_code
        == 404
    )
    assert (
        client.delete(f"/collections/{lid}/items/{ids['p4']}", headers=friend.editor).status_code
        == 204
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"level": "admin"}, 400, None),
        ({"level": "view", "grantee": "no-such-dept"}, 400, "UnknownDepartment"),
        ({"level": "view", "attributes": ["name", "secret"]}, 400, "UnknownAttribute"),
        ({"level": "view", "expires_at": "2020-01-01T00:00:00Z"}, 400, "ExpiryInPast"),
        ({"level": "view", "area": square(121.4, 31.2)}, 400, "OutsideExtent"),
        (
            {"level": "view", "area": {"type": "Point", "coordinates": [117.2, 39.1]}},
            400,
            "InvalidArea",
        ),
        (
            {
                "level": "view",
                "area": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [117.2, 39.1],
                            [117.21, 39.11],
                            [117.21, 39.1],
                            [117.2, 39.11],
                            [117.2, 39.1],
                        ]
                    ],
                },
            },
            400,
            "InvalidArea",
        ),
        ({"level": "view", "area_code": "120100000099"}, 400, "UnknownArea"),
        ({"level": "view", "area": HALF, "area_code": "120103000000"}, 400, None),
        ({"level": "view", "surprise": 1}, 400, None),
    ],
)
def test_bad_grants_are_refused_and_write_nothing(
    client: TestClient, world, body, status, code
) -> None:
    owner, friend, _, lid = world
    body = {"grantee": friend.code, **body}
    r = _grant(client, owner.editor, lid, **body)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["code"] == code
    assert _grant_rows(lid) == 0


def test_grants_on_layers_the_caller_does_not_own(client: TestClient, world) -> None:
    owner, friend, other, lid = world
    # Not readable by the caller: 404, as the catalogue answers for any layer it cannot see.
    r = _grant(client, other.editor, lid, grantee=other.code, level="view")
    assert r.status_code == 404
    # Readable but not the caller's: 403.
    assert _grant(client, owner.editor, lid, grantee=friend.code, level="view").status_code == 201
    r = _grant(client, friend.editor, lid, grantee=other.code, level="view")
    assert r.status_code == 403
    # A viewer key of the owner cannot grant, anonymous callers neither.
    assert _grant(client, owner.viewer, lid, grantee=other.code, level="view").status_code == 403
    assert _grant(client, {}, lid, grantee=other.code, level="view").status_code == 401
    # The owner itself needs no grant.
    r = _grant(client, owner.editor, lid, grantee=owner.code, level="view")
    assert r.status_code == 400
    assert _grant(client, owner.editor, "no_such_layer", level="view").status_code == 404
    assert _grant_rows(lid) == 1


def test_revoke_takes_effect_at_once_and_is_audited(client: TestClient, world) -> None:
    owner, friend, _, lid = world
    gid = _grant(client, owner.editor, lid, grantee=friend.code, level="view").json()["id"]
    tile = f"/tiles/{lid}/14/13526/6209.mvt"
    assert client.get(tile, headers=friend.viewer).status_code in (200, 204)
    assert _count(client, friend.viewer, lid) == 20
    assert (
        client.delete(f"/collections/{lid}/grants/{gid}", headers=friend.editor).status_code == 403
    )
    assert (
        client.delete(f"/collections/{lid}/grants/{gid}", headers=owner.editor).status_code == 204
    )
    assert client.get(f"/collections/{lid}/items", headers=friend.viewer).status_code == 404
    assert client.get(tile, headers=friend.viewer).status_code == 404
    r = client.delete(f"/collections/{lid}/grants/{gid}", headers=owner.editor)
    assert r.status_code == 409
    assert (
        client.delete(f"/collections/{lid}/grants/999999999", headers=owner.editor).status_code
        == 404
    )
    listed = client.get(f"/collections/{lid}/grants", headers=owner.viewer).json()["grants"]
    assert listed[0]["revoked_at"] and not listed[0]["active"]
    with session_scope() as s:
        logged = s.execute(
            text(
                "SELECT action, details->>'grant' FROM audit_log WHERE target = :l "
                "AND action LIKE 'grant.%' ORDER BY id"
            ),
            {"l": lid},
        ).all()
    assert [tuple(r) for r in logged] == [("grant.create", str(gid)), ("grant.revoke", str(gid))]


def test_reads_name_their_grant_in_the_audit_trail(client: TestClient, world) -> None:
    owner, friend, _, lid = world
    gid = _grant(client, owner.editor, lid, grantee=friend.code, level="view").json()["id"]
    assert _count(client, friend.viewer, lid) == 20
    assert _count(client, owner.viewer, lid) == 20
    with session_scope() as s:
        rows = s.execute(
            text(
                "SELECT department_code, details FROM audit_log WHERE action = 'layer.read' "
                "AND target = :l ORDER BY id"
            ),
            {"l": lid},
        ).all()
    by_department = {r[0]: r[1] for r in rows}
    assert by_department[friend.code]["grant"] == gid
    assert "grant" not in by_department[owner.code]


def test_expired_grant_stops_working(client: TestClient, world) -> None:
    owner, friend, _, lid = world
    expires = datetime.now(UTC) + timedelta(seconds=2)
    r = _grant(
        client, owner.editor, lid, grantee=friend.code, level="view", expires_at=expires.isoformat()
    )
    assert r.status_code == 201, r.text
    tile = f"/tiles/{lid}/14/13526/6209.mvt"
    assert client.get(tile, headers=friend.viewer).status_code in (200, 204)
    assert _count(client, friend.viewer, lid) == 20
    # Nothing is written when a grant expires: the remembered answers must notice by themselves.
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    assert client.get(f"/collections/{lid}/items", headers=friend.viewer).status_code == 404
    assert client.get(tile, headers=friend.viewer).status_code == 404
    received = client.get("/grants", headers=friend.viewer).json()["received"]
    assert [g["active"] for g in received if g["collection"] == lid] == [False]


def test_shared_with_is_kept_as_view_grants(client: TestClient, make_department) -> None:
    owner, friend, other = make_department(), make_department(), make_department()
    lid = make_points_layer(client, owner.editor, access="shared", shared_with=friend.code)
    listed = client.get(f"/collections/{lid}/grants", headers=owner.viewer).json()["grants"]
    assert [(g["grantee"], g["level"], g["origin"]) for g in listed] == [
        (friend.code, "view", "shared_with")
    ]
    assert _count(client, friend.viewer, lid) == 20
    r = client.patch(
        f"/collections/{lid}", json={"shared_with": [other.code]}, headers=owner.editor
    )
    assert r.status_code == 200 and r.json()["shared_with"] == [other.code]
    assert client.get(f"/collections/{lid}/items", headers=friend.viewer).status_code == 404
    assert _count(client, other.viewer, lid) == 20
    r = client.patch(f"/collections/{lid}", json={"access": "private"}, headers=owner.editor)
    assert r.status_code == 200
    assert client.get(f"/collections/{lid}/items", headers=other.viewer).status_code == 404


def test_grant_functions_directly(client: TestClient, world) -> None:
    """The API the access requests build on (layers.grants), called as a Python function."""
    owner, friend, _, lid = world
    who = Principal(owner.code, "editor", "test")
    with session_scope() as s:
        grant = grants.create_grant(
            s,
            who,
            lid,
            grantee=friend.code,
            level="download",
            attributes=["pop"],
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            note="批准的申请",
            request_id=7,
        )
        doc = grant.as_dict()
    assert doc["level"] == "download" and doc["request_id"] == 7 and doc["note"] == "批准的申请"
    with session_scope() as s:
        received = grants.grants_received(s, Principal(friend.code, "viewer", "t"))
        assert [g.id for g in received if g.layer_id == lid] == [doc["id"]]
        assert [g.id for g in grants.grants_of_layer(s, who, lid)] == [doc["id"]]
        grants.revoke_grant(s, who, doc["id"])
    with session_scope() as s:
        assert grants.grants_of_layer(s, who, lid)[0].revoked_at is not None

"""Editing the library: create, read with ETag, update with If-Match, retire, rename, history."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from addressbook import lifecycle
from addressbook.geocoding.geocoder import geocode
from addressbook.geocoding.suggest import suggest
from addressbook.routers.addresses import AddressIn
from geo.auth import Principal
from geo.crs import resolve
from geo.db import session_scope
from geo.errors import ApiError
from tests.address_library import HOUSES, ROOMS, Stored, fresh_names, load, pick
from tests.conftest import Dept


@pytest.fixture(scope="module")
def dept(database_url: str, make_department) -> Iterator[Dept]:
    load()
    with fresh_names():
        yield make_department(address_authority=True)


@pytest.fixture(scope="module")
def room(dept: Dept) -> Stored:
    with session_scope() as session:
        return pick(session, ROOMS)[0]


def count(table: str) -> int:
    with session_scope() as session:
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def new_address(near: Stored, **changes: Any) -> dict[str, Any]:
    body = {
        "district": near.district,
        "road": near.road,
        "house_number": "8001",
        "compound": "测试新建苑",
        "building": "3栋",
        "unit": "2门",
        "room": "502户",
        "lon": near.lon + 0.0004,
        "lat": near.lat + 0.0002,
    }
    return {**body, **changes}


def create(client: TestClient, dept: Dept, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/addresses", json=body, headers=dept.editor)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_standardises_places_and_records(
    client: TestClient, dept: Dept, room: Stored
) -> None:
    audit_before = count("audit_log")
    response = client.post("/addresses", json=new_address(room), headers=dept.editor)
    assert response.status_code == 201, response.text
    made = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/addresses/{made['id']}"
    elements = made["elements"]
    assert (elements["house_number"], elements["building"], elements["unit"], elements["room"]) == (
        "8001号",
        "3号楼",
        "2单元",
        "502室",
    )
    assert elements["district_code"] == room.district_code
    assert elements["subdistrict_code"] is not None and elements["community_code"] is not None
    assert made["standard"] == (
        f"天津市{room.district}{elements['subdistrict']}{room.road}8001号测试新建苑3号楼2单元502室"
    )
    assert made["code"].startswith(room.district_code[:6] + "-")
    assert made["version"] == 1 and made["status"] == "active"
    history = client.get(f"/addresses/{made['id']}/history", headers=dept.viewer).json()
    assert [v["action"] for v in history["versions"]] == ["create"]
    assert history["versions"][0]["data"]["room"] == "502室"
    assert count("audit_log") == audit_before + 1
    with session_scope() as session:
        best = geocode(session, made["standard"])[0]
    assert best.address_id == made["id"] and best.confident


def test_the_same_elements_as_the_importer(client: TestClient, dept: Dept, room: Stored) -> None:
    """An address typed in here gets the code and full form the importer gives the same row."""
    with session_scope() as session:
        expected = session.execute(
            text(
                "SELECT address_code(district_code, road, house_number, compound, building, "
                "unit, room), full_address FROM addresses WHERE id = :id"
            ),
            {"id": room.id},
        ).one()
    assert room.code == expected[0]
    duplicate = client.post(
        "/addresses",
        json={
            "district": room.district,
            "road": room.road,
            "house_number": room.house_number,
            "compound": room.compound,
            "building": room.building,
            "unit": room.unit,
            "room": room.room,
            "lon": room.lon,
            "lat": room.lat,
        },
        headers=dept.editor,
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["details"] == {"existing_id": room.id, "standard": expected[1]}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lon": 121.47, "lat": 31.23}, "OutsideExtent"),
        ({"lon": 39.1, "lat": 117.2}, "OutsideExtent"),
        ({"district": "浦东新区"}, "district"),
        ({"subdistrict": "不存在街道"}, "subdistrict"),
        ({"road": None, "compound": None}, "road"),
        ({"house_number": "1" * 19 + "0"}, "house_number"),
    ],
)
def test_invalid_addresses_write_nothing(
    client: TestClient, dept: Dept, room: Stored, changes: dict[str, Any], field: str
) -> None:
    before = (count("addresses"), count("address_history"), count("audit_log"))
    response = client.post("/addresses", json=new_address(room, **changes), headers=dept.editor)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == field or error["details"]["field"] == field
    assert (count("addresses"), count("address_history"), count("audit_log")) == before


def test_who_may_create(client: TestClient, dept: Dept, room: Stored, admin_headers) -> None:
    body = new_address(room, house_number="8002")
    assert client.post("/addresses", json=body).status_code == 401
    assert client.post("/addresses", json=body, headers=dept.viewer).status_code == 403
    assert client.post("/addresses", json=body, headers=admin_headers).status_code == 201


def test_read_with_etag(client: TestClient, dept: Dept, room: Stored) -> None:
    response = client.get(f"/addresses/{room.id}")
    assert response.status_code == 200
    body = response.json()
    assert response.headers["ETag"] == f'"{body["version"]}"'
    assert body["standard"] == room.full_address and body["code"] == room.code
    assert body["location"]["coordinates"] == pytest.approx([room.lon, room.lat])
    missing = client.get("/addresses/999999999")
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
    assert client.get("/addresses/abc").status_code in (404, 405)


def test_update_needs_the_current_version(client: TestClient, dept: Dept, room: Stored) -> None:
    made = create(client, dept, new_address(room, house_number="8003"))
    url = f"/addresses/{made['id']}"
    missing = client.patch(url, json={"room": "601"}, headers=dept.editor)
    assert missing.status_code == 428 and missing.json()["code"] == "PreconditionRequired"
    stale = client.patch(url, json={"room": "601"}, headers={**dept.editor, "If-Match": '"7"'})
    assert stale.status_code == 412 and stale.json()["details"] == {"version": 1}
    assert client.get(url).json()["elements"]["room"] == "502室"  # nothing was written

    ok = client.patch(url, json={"room": "601"}, headers={**dept.editor, "If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"] == '"2"'
    assert ok.json()["elements"]["room"] == "601室"
    assert ok.json()["standard"].endswith("3号楼2单元601室")
    assert ok.json()["code"] == made["code"]  # the identity stays
    again = client.patch(url, json={"room": "602"}, headers={**dept.editor, "If-Match": '"1"'})
    assert again.status_code == 412

    moved = client.patch(
        url,
        json={"lon": room.lon + 0.001, "lat": room.lat},
        headers={**dept.editor, "If-Match": 'W/"2"'},
    )
    assert moved.status_code == 200
    assert moved.json()["location"]["coordinates"][0] == pytest.approx(room.lon + 0.001)

    history = client.get(f"{url}/history", headers=dept.viewer).json()["versions"]
    assert [(v["version"], v["action"]) for v in history] == [
        (1, "create"),
        (2, "update"),
        (3, "update"),
    ]
    assert [v["data"]["room"] for v in history] == ["502室", "601室", "601室"]


def test_a_location_cannot_be_cleared(client: TestClient, dept: Dept, room: Stored) -> None:
    """Found by the schemathesis run: a null lon or lat was a 500."""
    made = create(client, dept, new_address(room, house_number="8007"))
    headers = {**dept.editor, "If-Match": '"1"'}
    for body in ({"lon": None, "lat": room.lat}, {"lon": room.lon, "lat": None}):
        r = client.patch(f"/addresses/{made['id']}", json=body, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == "InvalidAddress", r.text
    assert client.get(f"/addresses/{made['id']}").headers["ETag"] == '"1"'


def test_reads_answer_if_none_match(client: TestClient, dept: Dept, room: Stored) -> None:
    """The rule of every ETag of the service (geo.preconditions), on an address."""
    made = create(client, dept, new_address(room, house_number="8011"))
    url = f"/addresses/{made['id']}"
    cached = client.get(url, headers={"If-None-Match": '"1"'})
    assert cached.status_code == 304 and cached.headers["etag"] == '"1"'
    assert client.get(url, headers={"If-None-Match": '"2"'}).status_code == 200
    assert client.get(url, headers={"If-None-Match": "1"}).status_code == 400
    unquoted = client.patch(url, json={"room": "701"}, headers={**dept.editor, "If-Match": "1"})
    assert unquoted.status_code == 400 and unquoted.json()["code"] == "InvalidParameterValue"


def test_put_replaces_every_field(client: TestClient, dept: Dept, room: Stored) -> None:
    made = create(client, dept, new_address(room, house_number="8004"))
    body = new_address(
        room, house_number="8005", compound=None, building=None, unit=None, room=None
    )
    response = client.put(
        f"/addresses/{made['id']}", json=body, headers={**dept.editor, "If-Match": '"1"'}
    )
    assert response.status_code == 200, response.text
    elements = response.json()["elements"]
    assert (elements["house_number"], elements["compound"], elements["room"]) == (
        "8005号",
        None,
        None,
    )
    assert client.put(f"/addresses/{made['id']}", json=body, headers=dept.editor).status_code == 428
    assert (
        client.put("/addresses/999999999", json=body, headers={**dept.editor, "If-Match": '"1"'})
    ).status_code == 404


def test_retired_addresses_lead_to_their_successor(
    client: TestClient, dept: Dept, room: Stored
) -> None:
    old = create(client, dept, new_address(room, house_number="8006"))
    new = create(client, dept, new_address(room, house_number="8008"))
    url = f"/addresses/{old['id']}/retire"
    at = {1: {**dept.editor, "If-Match": '"1"'}, 2: {**dept.editor, "If-Match": '"2"'}}
    assert client.post(url, json={"successor_id": old["id"]}, headers=at[1]).status_code == 400
    assert client.post(url, json={"successor_id": 999999999}, headers=at[1]).status_code == 400
    missing = client.post(url, json={"successor_id": new["id"]}, headers=dept.editor)
    assert missing.status_code == 428 and missing.json()["code"] == "PreconditionRequired"
    assert (
        client.post(
            url, json={"successor_id": new["id"]}, headers={**dept.editor, "If-Match": '"5"'}
        )
    ).status_code == 412
    response = client.post(url, json={"successor_id": new["id"]}, headers=at[1])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "retired" and response.json()["successor_id"] == new["id"]
    assert client.post(url, json={"successor_id": new["id"]}, headers=at[2]).status_code == 409
    with session_scope() as session:
        best = geocode(session, old["standard"])[0]
    assert best.address_id == new["id"] and best.replaces == old["id"]
    assert any("retired" in note for note in best.notes)
    history = client.get(f"/addresses/{old['id']}/history", headers=dept.viewer).json()
    assert history["versions"][-1]["action"] == "retire"
    patched = client.patch(
        f"/addresses/{old['id']}", json={"room": "1"}, headers={**dept.editor, "If-Match": '"2"'}
    )
    assert patched.status_code == 409


def test_rename_a_road_keeping_the_old_name(client: TestClient, dept: Dept) -> None:
    with session_scope() as session:
        (a,) = pick(session, HOUSES)
        on_road = session.execute(
            text("SELECT count(*) FROM addresses WHERE district_code = :d AND road = :r"),
            {"d": a.district_code, "r": a.road},
        ).scalar_one()
    new_name = "更名测试大街"
    body = {"district": a.district, "old": a.road, "new": new_name}
    assert client.post("/addresses/roads/rename", json=body, headers=dept.viewer).status_code == 403
    response = client.post("/addresses/roads/rename", json=body, headers=dept.editor)
    assert response.status_code == 200, response.text
    assert response.json()["renamed"] == on_road
    renamed = client.get(f"/addresses/{a.id}").json()
    assert renamed["elements"]["road"] == new_name
    assert renamed["standard"] == a.full_address.replace(a.road or "", new_name)
    assert renamed["version"] >= 2
    with session_scope() as session:
        by_old = geocode(session, a.full_address)[0]
        by_new = geocode(session, renamed["standard"])[0]
        aliases = (
            session.execute(
                text("SELECT canonical FROM address_aliases WHERE kind = 'road' AND alias = :a"),
                {"a": a.road},
            )
            .scalars()
            .all()
        )
        old_suggested = suggest(session, a.road or "", area=a.district_code, limit=50)
    assert by_old.address_id == a.id and by_new.address_id == a.id
    assert new_name in aliases
    alias = next(s for s in old_suggested if s.kind == "alias" and s.name == a.road)
    assert alias.canonical == new_name and alias.label == a.district + new_name
    history = client.get(f"/addresses/{a.id}/history", headers=dept.viewer).json()["versions"]
    assert history[-1]["action"] == "rename" and history[-1]["data"]["old_road"] == a.road
    again = client.post("/addresses/roads/rename", json=body, headers=dept.editor)
    assert again.status_code == 404


def test_history_needs_a_key_and_an_address(client: TestClient, dept: Dept, room: Stored) -> None:
    assert client.get(f"/addresses/{room.id}/history").status_code == 401
    assert client.get("/addresses/999999999/history", headers=dept.viewer).status_code == 404


def test_concurrent_creates_of_one_address_give_one_address_and_a_409(
    dept: Dept, room: Stored
) -> None:
    """Both writers pass the duplicate check before either inserts unless they are serialised:
    the second create waits for the first's commit, then gets the same 409 a later one would
    (it used to fail on the code's unique index, a 500)."""
    fields = AddressIn(**new_address(room, house_number="8301")).model_dump()
    who = Principal(dept.code, "editor", "tjg_test")
    crs = resolve("CRS84").id
    outcome: dict[str, Any] = {}

    def second() -> None:
        try:
            with session_scope() as session:
                outcome["id"] = lifecycle.create(session, who, fields, crs)
        except ApiError as exc:
            outcome["error"] = exc

    with session_scope() as first:
        made = lifecycle.create(first, who, fields, crs)
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(1.0)
        assert racer.is_alive(), f"the second create did not wait for the first: {outcome}"
    racer.join(30)
    error = outcome.get("error")
    assert isinstance(error, ApiError), outcome
    assert (error.status, error.code) == (409, "DuplicateAddress")
    assert error.details["existing_id"] == made

"""Review before publishing (issue 15 part 2): proposals, their findings, decisions, queues.

Real database, real app: a grid department (not the address authority) proposes, reviewers of
the authority decide, and what an approval publishes is read back through the library's own
routes (code, history, version) and the audit trail.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from addressbook.areas.import_grids import assign_addresses, save_grids
from addressbook.review import decisions, proposals, sequence
from geo.auth import Principal
from geo.db import get_engine, session_scope
from geo.errors import ApiError
from tests.address_library import ROOMS, Stored, pick, plans, statements
from tests.conftest import Dept, bearer

GRID_SOURCE = "test-review"
TEST_GRID = "TEST-REVIEW-GRID-1"


@pytest.fixture(scope="module")
def grid_dept(generated_library: None, make_department) -> Dept:
    """The proposers: a grid worker's department, not the address authority."""
    return make_department()


@pytest.fixture(scope="module")
def authority(generated_library: None, make_department) -> Dept:
    """The reviewers' department, named the address authority."""
    return make_department(address_authority=True)


@pytest.fixture(scope="module")
def second_reviewer(
    client: TestClient, authority: Dept, admin_headers: dict[str, str]
) -> dict[str, str]:
    """Another editor key of the authority: a colleague, who may review the first's proposals."""
    made = client.post(
        f"/departments/{authority.code}/keys", json={"role": "editor"}, headers=admin_headers
    )
    assert made.status_code == 201, made.text
    return bearer(made.json()["key"])


@pytest.fixture(scope="module")
def rooms(generated_library: None) -> list[Stored]:
    with session_scope() as session:
        return pick(session, ROOMS, 12)


@pytest.fixture(scope="module")
def test_grid(rooms: list[Stored]) -> Iterator[Stored]:
    """A 200 m square grid around one room address, removed afterwards."""
    room = rooms[0]
    square = shapely.MultiPolygon(
        [shapely.box(room.lon - 0.001, room.lat - 0.001, room.lon + 0.001, room.lat + 0.001)]
    )
    frame = pd.DataFrame.from_records(
        [(TEST_GRID, "审核测试网格", room.community_code, None, None, square)],
        columns=["code", "name", "community_code", "staff_name", "staff_phone", "geom"],
    )
    with session_scope() as session:
        save_grids(session, frame, GRID_SOURCE)
    yield room
    with session_scope() as session:
        session.execute(text("DELETE FROM grids WHERE source = :s"), {"s": GRID_SOURCE})
        assign_addresses(session)


def count(table: str, where: str = "true", **params: Any) -> int:
    with session_scope() as session:
        return int(
            session.execute(
                text(f"SELECT count(*) FROM {table} WHERE {where}"), params
            ).scalar_one()
        )


def audit_actions(target: str) -> list[tuple[str, str | None]]:
    with session_scope() as session:
        return [
            (a, d)
            for a, d in session.execute(
                text("SELECT action, department_code FROM audit_log WHERE target = :t ORDER BY id"),
                {"t": target},
            ).tuples()
        ]


def new_room(base: Stored, **changes: Any) -> dict[str, Any]:
    """A new room in an existing building: every name known, the point at the building."""
    body = {
        "district": base.district,
        "road": base.road,
        "house_number": base.house_number,
        "compound": base.compound,
        "building": base.building,
        "unit": base.unit,
        "room": "9901",
        "lon": base.lon,
        "lat": base.lat,
    }
    return {**body, **changes}


def propose(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/addresses/proposals", json=body, headers=headers)
    assert response.status_code == 201, response.text
    made = response.json()
    assert response.headers["Location"] == f"/addresses/proposals/{made['id']}"
    return made


def kinds(proposal: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in proposal["findings"]]


# --- each kind of proposal through approval ----------------------------------------------------


def test_a_new_address_is_proposed_checked_and_published(
    client: TestClient, grid_dept: Dept, authority: Dept, rooms: list[Stored]
) -> None:
    room = rooms[1]
    made = propose(
        client,
        grid_dept.editor,
        {"kind": "create", "address": new_room(room), "note": "新装修分户"},
    )
    assert made["status"] == "pending" and made["kind"] == "create"
    assert made["findings"] == [], made["findings"]
    assert made["district_code"] == room.district_code and made["district"] == room.district
    assert made["standard"].endswith("9901室") and made["department_code"] == grid_dept.code
    assert count("addresses", "full_address = :s", s=made["standard"]) == 0  # not yet published

    approved = client.post(f"/addresses/proposals/{made['id']}/approve", headers=authority.editor)
    assert approved.status_code == 200, approved.text
    decided = approved.json()
    assert decided["status"] == "approved" and decided["decided_by"].startswith(authority.code)
    address = client.get(f"/addresses/{decided['address_id']}").json()
    assert address["standard"] == made["standard"] and address["code"] == made["code"]
    assert address["version"] == 1 and decided["address"]["id"] == address["id"]
    history = client.get(f"/addresses/{address['id']}/history", headers=authority.viewer).json()
    assert [v["action"] for v in history["versions"]] == ["create"]
    assert audit_actions(f"address-proposal/{made['id']}") == [
        ("address.proposal.create", grid_dept.code),
        ("address.proposal.approve", authority.code),
    ]
    assert audit_actions(f"address/{address['id']}") == [("address.create", authority.code)]


def test_a_change_is_published_as_a_new_version(
    client: TestClient, grid_dept: Dept, authority: Dept, rooms: list[Stored]
) -> None:
    room = rooms[2]
    before = client.get(f"/addresses/{room.id}").json()
    made = propose(
        client,
        grid_dept.editor,
        {
            "kind": "change",
            "address_id": room.id,
            "changes": {"room": "9902", "lon": room.lon + 0.00005, "lat": room.lat},
            "note": "门牌更正",
        },
    )
    assert made["base_version"] == before["version"] and made["code"] == room.code
    assert made["standard"].endswith("9902室") and made["address"]["id"] == room.id
    approved = client.post(f"/addresses/proposals/{made['id']}/approve", headers=authority.editor)
    assert approved.status_code == 200, approved.text
    after = client.get(f"/addresses/{room.id}").json()
    assert after["version"] == before["version"] + 1 and after["code"] == room.code
    assert after["elements"]["room"] == "9902室"
    assert after["location"]["coordinates"][0] == pytest.approx(room.lon + 0.00005)
    history = client.get(f"/addresses/{room.id}/history", headers=authority.viewer).json()
    assert history["versions"][-1]["action"] == "update"
    assert history["versions"][-1]["data"]["room"] == "9902室"
    assert audit_actions(f"address/{room.id}")[-1] == ("address.update", authority.code)


def test_a_retirement_is_published(
    client: TestClient, grid_dept: Dept, authority: Dept, rooms: list[Stored]
) -> None:
    old, successor = rooms[3], rooms[4]
    made = propose(
        client,
        grid_dept.editor,
        {"kind": "retire", "address_id": old.id, "successor_id": successor.id, "note": "拆迁"},
    )
    assert made["standard"] == old.full_address and made["findings"] == []
    approved = client.post(f"/addresses/proposals/{made['id']}/approve", headers=authority.editor)
    assert approved.status_code == 200, approved.text
    after = client.get(f"/addresses/{old.id}").json()
    assert after["status"] == "retired" and after["successor_id"] == successor.id
    history = client.get(f"/addresses/{old.id}/history", headers=authority.viewer).json()
    assert history["versions"][-1]["action"] == "retire"
    # A proposal for the retired address is refused, with nothing written.
    before = (count("address_proposals"), count("audit_log"))
    again = client.post(
        "/addresses/proposals",
        json={"kind": "change", "address_id": old.id, "changes": {"room": "1"}},
        headers=grid_dept.editor,
    )
    assert again.status_code == 409 and again.json()["code"] == "Retired"
    assert (count("address_proposals"), count("audit_log")) == before


def test_a_rejection_needs_a_reason_and_is_final(
    client: TestClient, grid_dept: Dept, authority: Dept, rooms: list[Stored]
) -> None:
    made = propose(
        client, grid_dept.editor, {"kind": "create", "address": new_room(rooms[5], room="9903")}
    )
    url = f"/addresses/proposals/{made['id']}"
    before = (count("audit_log"), count("addresses"))
    for body in ({}, {"reason": "  "}):
        missing = client.post(f"{url}/reject", json=body, headers=authority.editor)
        assert missing.status_code == 400 and missing.json()["code"] == "ReasonRequired"
    assert client.get(url, headers=authority.viewer).json()["status"] == "pending"
    rejected = client.post(
        f"{url}/reject", json={"reason": "现场核实无此户"}, headers=authority.editor
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "现场核实无此户"
    assert (count("audit_log"), count("addresses")) == (before[0] + 1, before[1])
    for action, body in (("approve", None), ("reject", {"reason": "again"})):
        second = client.post(f"{url}/{action}", json=body, headers=authority.editor)
        assert second.status_code == 409, second.text
        assert second.json()["code"] == "AlreadyDecided"
        assert second.json()["details"]["status"] == "rejected"
    assert audit_actions(f"address-proposal/{made['id']}")[-1] == (
        "address.proposal.reject",
        authority.code,
    )


# --- findings ----------------------------------------------------------------------------------


def test_a_duplicate_is_found(client: TestClient, grid_dept: Dept, rooms: list[Stored]) -> None:
    room = rooms[6]
    same = new_room(room, room=room.room)
    made = propose(client, grid_dept.editor, {"kind": "create", "address": same})
    assert kinds(made) == ["duplicate"]
    assert made["findings"][0]["details"]["address_id"] == room.id
    twice = propose(
        client, grid_dept.editor, {"kind": "create", "address": new_room(room, room="9904")}
    )
    third = propose(
        client, grid_dept.editor, {"kind": "create", "address": new_room(room, room="9904")}
    )
    assert kinds(twice) == []
    assert third["findings"][0]["details"] == {
        "proposal_id": twice["id"],
        "standard": twice["standard"],
    }


def test_a_point_outside_the_named_community_or_grid_is_found(
    client: TestClient, grid_dept: Dept, rooms: list[Stored], test_grid: Stored
) -> None:
    inside = propose(
        client,
        grid_dept.editor,
        {"kind": "create", "address": new_room(test_grid, room="9905"), "grid": TEST_GRID},
    )
    assert kinds(inside) == []
    far = next(r for r in rooms if r.community_code != test_grid.community_code)
    body = new_room(test_grid, room="9906", lon=far.lon, lat=far.lat)
    with session_scope() as session:
        community = session.execute(
            text("SELECT name FROM current_admin_areas WHERE code = :c"),
            {"c": test_grid.community_code},
        ).scalar_one()
    body.update(subdistrict=test_grid.subdistrict, community=community)
    made = propose(client, grid_dept.editor, {"kind": "create", "address": body, "grid": TEST_GRID})
    outside = {
        f["details"]["level"]: f["details"]
        for f in made["findings"]
        if f["kind"] == "outside_named_area"
    }
    assert set(outside) >= {"community", "grid"}
    assert outside["community"]["code"] == test_grid.community_code
    assert outside["grid"]["code"] == TEST_GRID and outside["grid"]["metres"] > 100
    unknown = client.post(
        "/addresses/proposals",
        json={"kind": "create", "address": new_room(test_grid, room="9907"), "grid": "NO-SUCH"},
        headers=grid_dept.editor,
    )
    assert unknown.status_code == 400 and unknown.json()["details"]["field"] == "grid"


@pytest.fixture(scope="module")
def test_road(client: TestClient, authority: Dept, rooms: list[Stored]) -> list[sequence.Numbered]:
    """A new road of five houses, 1号 to 9号 every 30 m eastwards (the demo library's roads
    have a house or two each at this size), made through the library's own edits."""
    start = rooms[0]
    step = 30 / (111_320 * math.cos(math.radians(start.lat)))
    made = []
    for i, number in enumerate((1, 3, 5, 7, 9)):
        house = {
            "district": start.district,
            "road": "审核测试路",
            "house_number": str(number),
            "lon": start.lon + i * step,
            "lat": start.lat,
        }
        response = client.post("/addresses", json=house, headers=authority.editor)
        assert response.status_code == 201, response.text
        made.append(sequence.Numbered(number, house["lon"], house["lat"]))
    return made


def test_a_house_number_out_of_sequence_is_found(
    client: TestClient, grid_dept: Dept, rooms: list[Stored], test_road: list[sequence.Numbered]
) -> None:
    road, side = rooms[0], test_road
    lowest, highest = side[0], side[-1]
    past_the_end = highest.number + 2
    body = {
        "district": road.district,
        "road": "审核测试路",
        "house_number": str(past_the_end),
        "lon": lowest.lon,
        "lat": lowest.lat,
    }
    made = propose(client, grid_dept.editor, {"kind": "create", "address": body})
    found = [f for f in made["findings"] if f["kind"] == "house_number_sequence"]
    assert len(found) == 1, made["findings"]
    assert found[0]["details"]["between"] == [f"{highest.number}号", None]
    assert found[0]["details"]["side"] == ("odd" if past_the_end % 2 else "even")
    # The same number past the end of the road is in sequence.
    beyond = (2 * highest.lon - side[-2].lon, 2 * highest.lat - side[-2].lat)
    body.update(lon=beyond[0], lat=beyond[1])
    fine = propose(client, grid_dept.editor, {"kind": "create", "address": body})
    assert "house_number_sequence" not in kinds(fine), fine["findings"]


def test_the_sequence_rule() -> None:
    """Odd numbers every 20 m eastwards: in place, between, past the end, and out of order."""
    lat = 39.1
    step = 20 / (111_320 * 0.7760)  # 20 m of longitude at 39.1°
    road = [sequence.Numbered(n, 117.2 + (n // 2) * step, lat) for n in range(1, 20, 2)]
    at = {n.number: n.lon for n in road}
    assert sequence.out_of_sequence(road, 7, at[7], lat) is None
    assert sequence.out_of_sequence(road, 21, at[19] + step, lat) is None
    assert sequence.out_of_sequence(road, 12, at[1], lat) is None  # the even side: no numbers
    wrong = sequence.out_of_sequence(road, 7, at[15], lat)
    assert wrong is not None and wrong["between"] == ["5号", "9号"]
    assert wrong["metres_outside"] == pytest.approx(60, abs=1)
    assert sequence.out_of_sequence(road, 21, at[1], lat) is not None
    assert sequence.out_of_sequence(road[:1], 3, at[19], lat) is None  # one number tells nothing
    assert sequence.plain_number("31号") == 31 and sequence.plain_number("31-1号") is None


def test_a_name_not_in_the_dictionary_is_found(
    client: TestClient, grid_dept: Dept, rooms: list[Stored]
) -> None:
    room = rooms[7]
    body = new_room(room, road=f"{room.road}支", compound="审核测试新苑", room=None)
    made = propose(client, grid_dept.editor, {"kind": "create", "address": body})
    unknown = {
        f["details"]["element"]: f["details"]
        for f in made["findings"]
        if f["kind"] == "unknown_name"
    }
    assert set(unknown) == {"road", "compound"}
    assert unknown["road"]["name"] == f"{room.road}支"
    assert room.road in unknown["road"]["similar"]


def test_a_former_road_name_is_found(
    client: TestClient, grid_dept: Dept, authority: Dept, rooms: list[Stored]
) -> None:
    """A road renamed keeps its old name as an alias: a proposal using it is told the new one."""
    start = rooms[8]
    house = {"district": start.district, "road": "审核旧名路", "house_number": "1"}
    made = client.post(
        "/addresses", json={**house, "lon": start.lon, "lat": start.lat}, headers=authority.editor
    )
    assert made.status_code == 201, made.text
    renamed = client.post(
        "/addresses/roads/rename",
        json={"district": start.district, "old": "审核旧名路", "new": "审核新名路"},
        headers=authority.editor,
    )
    assert renamed.status_code == 200, renamed.text
    body = {**house, "house_number": "3", "lon": start.lon, "lat": start.lat}
    proposed = propose(client, grid_dept.editor, {"kind": "create", "address": body})
    former = [f["details"] for f in proposed["findings"] if f["kind"] == "former_name"]
    assert former == [{"element": "road", "name": "审核旧名路", "current": "审核新名路"}], proposed[
        "findings"
    ]


# --- bad input and who may do what -------------------------------------------------------------


def test_bad_proposals_write_nothing(
    client: TestClient, grid_dept: Dept, rooms: list[Stored]
) -> None:
    room = rooms[8]
    before = (count("address_proposals"), count("audit_log"))
    cases = [
        (
            {"kind": "create", "address": new_room(room, lon=121.47, lat=31.23)},
            400,
            "OutsideExtent",
        ),
        (
            {"kind": "change", "address_id": room.id, "changes": {"lon": 121.47, "lat": 31.23}},
            400,
            "OutsideExtent",
        ),
        ({"kind": "change", "address_id": 999_999_999, "changes": {"room": "1"}}, 404, "NotFound"),
        ({"kind": "retire", "address_id": 999_999_999}, 404, "NotFound"),
        ({"kind": "retire", "address_id": room.id, "successor_id": room.id}, 400, "InvalidAddress"),
        ({"kind": "change", "address_id": room.id, "changes": {}}, 400, "InvalidAddress"),
        ({"kind": "create", "address": new_room(room, district="浦东新区")}, 400, "InvalidAddress"),
        ({"kind": "rename", "address_id": room.id}, 400, "InvalidParameterValue"),
        (
            {"kind": "create", "address": new_room(room), "note": "长" * 501},
            400,
            "InvalidParameterValue",
        ),
    ]
    for body, status, code in cases:
        response = client.post("/addresses/proposals", json=body, headers=grid_dept.editor)
        assert (response.status_code, response.json()["code"]) == (status, code), (
            body,
            response.text,
        )
    assert (count("address_proposals"), count("audit_log")) == before


def test_who_may_propose_read_and_decide(
    client: TestClient,
    grid_dept: Dept,
    authority: Dept,
    second_reviewer: dict[str, str],
    make_department,
    rooms: list[Stored],
) -> None:
    body = {"kind": "create", "address": new_room(rooms[9], room="9908")}
    assert client.post("/addresses/proposals", json=body).status_code == 401
    viewer = client.post("/addresses/proposals", json=body, headers=grid_dept.viewer)
    assert viewer.status_code == 403
    made = propose(client, grid_dept.editor, body)
    url = f"/addresses/proposals/{made['id']}"
    # Another department neither reads nor lists it; the authority and the proposer do.
    other = make_department()
    assert client.get(url, headers=other.viewer).status_code == 404
    listed = client.get("/addresses/proposals", headers=other.viewer).json()["proposals"]
    assert made["id"] not in [p["id"] for p in listed]
    assert client.get(url, headers=grid_dept.viewer).status_code == 200
    assert client.get(url, headers=authority.viewer).status_code == 200
    # Deciding needs the authority, and an editor of it.
    before = count("audit_log")
    refused = client.post(f"{url}/approve", headers=grid_dept.editor)
    assert refused.status_code == 403 and refused.json()["code"] == "NotAddressAuthority"
    assert client.post(f"{url}/approve", headers=authority.viewer).status_code == 403
    assert (
        client.post("/addresses/proposals/999999999/approve", headers=authority.editor).status_code
        == 404
    )
    # Nobody reviews their own; a colleague may.
    own = propose(
        client, authority.editor, {"kind": "create", "address": new_room(rooms[9], room="9909")}
    )
    mine = client.post(f"/addresses/proposals/{own['id']}/approve", headers=authority.editor)
    assert mine.status_code == 403 and mine.json()["code"] == "OwnProposal"
    mine = client.post(
        f"/addresses/proposals/{own['id']}/reject", json={"reason": "x"}, headers=authority.editor
    )
    assert mine.status_code == 403 and mine.json()["code"] == "OwnProposal"
    assert count("audit_log") == before + 1  # the authority's own proposal, nothing else
    colleague = client.post(f"/addresses/proposals/{own['id']}/approve", headers=second_reviewer)
    assert colleague.status_code == 200, colleague.text
    # Bulk import stays the authority's: a proposer's editor key is refused.
    files = {"file": ("a.csv", "district,road,house_number,lon,lat\n河西区,友谊路,1,117.2,39.1\n")}
    imported = client.post("/addresses/import", files=files, headers=grid_dept.editor)
    assert imported.status_code == 403 and imported.json()["code"] == "NotAddressAuthority"


def test_an_outdated_change_is_not_approved(
    client: TestClient, grid_dept: Dept, authority: Dept, rooms: list[Stored]
) -> None:
    room = rooms[10]
    made = propose(
        client,
        grid_dept.editor,
        {"kind": "change", "address_id": room.id, "changes": {"room": "9910"}},
    )
    version = made["base_version"]
    direct = client.patch(
        f"/addresses/{room.id}",
        json={"room": "9911"},
        headers={**authority.editor, "If-Match": f'"{version}"'},
    )
    assert direct.status_code == 200, direct.text
    stale = client.post(f"/addresses/proposals/{made['id']}/approve", headers=authority.editor)
    assert stale.status_code == 409 and stale.json()["code"] == "ProposalOutdated"
    assert stale.json()["details"] == {"base_version": version, "version": version + 1}
    assert client.get(f"/addresses/{room.id}").json()["elements"]["room"] == "9911室"
    assert (
        client.get(f"/addresses/proposals/{made['id']}", headers=authority.viewer).json()["status"]
        == "pending"
    )


# --- queues, lists, concurrency ------------------------------------------------------------------


def test_queues_and_lists(
    client: TestClient, grid_dept: Dept, authority: Dept, rooms: list[Stored]
) -> None:
    room = rooms[11]
    before = client.get("/addresses/proposals/queues", headers=authority.viewer).json()
    district = {q["district_code"]: q for q in before["queues"]}.get(room.district_code)
    pending = district["pending"] if district else 0
    made = [
        propose(
            client, grid_dept.editor, {"kind": "create", "address": new_room(room, room=f"99{n}")}
        )
        for n in (20, 21, 22)
    ]
    after = client.get("/addresses/proposals/queues", headers=authority.viewer).json()
    queue = {q["district_code"]: q for q in after["queues"]}[room.district_code]
    assert queue["pending"] == pending + 3 and queue["district"] == room.district
    assert after["pending"] == before["pending"] + 3
    own = client.get("/addresses/proposals/queues", headers=grid_dept.viewer).json()
    assert own["pending"] <= after["pending"]

    page = client.get(
        "/addresses/proposals",
        params={"status": "pending", "district": room.district, "limit": 2},
        headers=authority.viewer,
    ).json()
    assert len(page["proposals"]) == 2 and page["next_offset"] == 2
    every = []
    offset: int | None = 0
    while offset is not None:
        page = client.get(
            "/addresses/proposals",
            params={
                "status": "pending",
                "district": room.district_code,
                "limit": 2,
                "offset": offset,
            },
            headers=authority.viewer,
        ).json()
        every += [p["id"] for p in page["proposals"]]
        offset = page["next_offset"]
    assert every == sorted(every) and {m["id"] for m in made} <= set(every)
    assert all(p["status"] == "pending" for p in page["proposals"])
    bad = client.get(
        "/addresses/proposals", params={"district": "浦东新区"}, headers=authority.viewer
    )
    assert bad.status_code == 400
    assert (
        client.get(
            "/addresses/proposals", params={"limit": 101}, headers=authority.viewer
        ).status_code
        == 400
    )


def _waiting_for_lock(timeout: float = 10.0) -> bool:
    """Whether another connection waits for a row lock on a proposal (pg_stat_activity)."""
    deadline = time.monotonic() + timeout
    with get_engine().connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%FROM address_proposals WHERE id = %FOR UPDATE'"
                )
            ).scalar_one()
            if waiting:
                return True
            conn.rollback()
            time.sleep(0.05)
    return False


def test_two_reviewers_deciding_at_once_one_wins(
    client: TestClient, grid_dept: Dept, authority: Dept, rooms: list[Stored]
) -> None:
    """The first reviewer's approval holds the proposal's row lock until it commits; the second,
    rejecting meanwhile, waits, then reads the approval and gets the 409."""
    made = propose(
        client, grid_dept.editor, {"kind": "create", "address": new_room(rooms[11], room="9930")}
    )
    first = Principal(authority.code, "editor", "tjg_rev1")
    second = Principal(authority.code, "editor", "tjg_rev2")
    outcome: dict[str, Any] = {}

    def rejecting() -> None:
        try:
            with session_scope() as session:
                outcome["second"] = decisions.reject(session, second, made["id"], "重复")
        except ApiError as error:
            outcome["second"] = error

    with session_scope() as session:
        decisions.approve(session, first, made["id"])
        thread = threading.Thread(target=rejecting)
        thread.start()
        assert _waiting_for_lock(), "the second decision did not wait for the first"
    thread.join(timeout=30)
    error = outcome["second"]
    assert isinstance(error, ApiError) and (error.status, error.code) == (409, "AlreadyDecided")
    decided = client.get(f"/addresses/proposals/{made['id']}", headers=authority.viewer).json()
    assert decided["status"] == "approved" and decided["decided_by"] == f"{authority.code}/tjg_rev1"
    assert count("addresses", "full_address = :s", s=made["standard"]) == 1
    assert [a for a, _ in audit_actions(f"address-proposal/{made['id']}")] == [
        "address.proposal.create",
        "address.proposal.approve",
    ]


def test_the_queries_use_their_indexes(
    grid_dept: Dept, authority: Dept, rooms: list[Stored], test_road: list[sequence.Numbered]
) -> None:
    """A district's pending queue and a department's own proposals read their indexes; the
    numbers along a road read ix_addresses_structured (a road is a few hundred rows of millions)."""
    reviewer = Principal(authority.code, "viewer", "tjg_view")
    proposer = Principal(grid_dept.code, "viewer", "tjg_view")
    with session_scope() as session, statements() as seen:
        proposals.listing(session, reviewer, "pending", rooms[0].district_code, 20, 0)
        proposals.listing(session, proposer, "pending", None, 20, 0)
        sequence.road_numbers(session, rooms[0].district_code, "审核测试路")
    sent = [(sql, params) for sql, params in seen if "ORDER BY p.id" in sql or "avg(" in sql]
    assert len(sent) == 3
    expected = [
        "ix_address_proposals_queue",
        "ix_address_proposals_department",
        "ix_addresses_structured",
    ]
    for (sql, params), index in zip(sent, expected, strict=True):
        plan = plans(sql, params)
        assert index in plan, f"{sql}\n{plan}"

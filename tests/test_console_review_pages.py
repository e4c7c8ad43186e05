"""The console's review page (地址审核) on the server side: queues and proposals with their findings
in Chinese (English with ?lang=en), approve and reject through the API's own rules (the
authority only, not one's own, a reason to reject, once), sessions and CSRF as for every cookie
write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from geo.db import session_scope
from tests.address_library import ROOMS, Stored, pick
from tests.conftest import Dept
from tests.test_accounts import activate, create_account, new_browser


@dataclass
class Person:
    browser: TestClient
    token: str

    def post(self, url: str, data: dict[str, str] | None = None, csrf: bool = True) -> Any:
        headers = {"HX-Request": "true"}
        if csrf:
            headers["X-CSRF-Token"] = self.token
        return self.browser.post(url, data=data or {}, headers=headers)


def person(app: FastAPI, client: TestClient, admin_headers: dict[str, str], code: str) -> Person:
    browser = new_browser(app)
    _, token = activate(browser, create_account(client, admin_headers, code, role="editor"))
    return Person(browser, token)


@pytest.fixture(scope="module")
def grid(generated_library: None, make_department) -> Dept:
    return make_department()


@pytest.fixture(scope="module")
def authority(generated_library: None, make_department) -> Dept:
    return make_department(address_authority=True)


@pytest.fixture(scope="module")
def reviewer(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], authority: Dept
) -> Person:
    return person(app, client, admin_headers, authority.code)


@pytest.fixture(scope="module")
def room(generated_library: None) -> Stored:
    with session_scope() as session:
        return pick(session, ROOMS, 1)[0]


def propose(
    client: TestClient, headers: dict[str, str], base: Stored, **changes: Any
) -> dict[str, Any]:
    address = {
        "district": base.district,
        "road": base.road,
        "house_number": base.house_number,
        "compound": base.compound,
        "building": base.building,
        "unit": base.unit,
        "room": "8801",
        "lon": base.lon,
        "lat": base.lat,
        **changes,
    }
    made = client.post(
        "/addresses/proposals", json={"kind": "create", "address": address}, headers=headers
    )
    assert made.status_code == 201, made.text
    return made.json()


def card(page: str, proposal_id: int) -> str:
    return page.split(f'id="proposal-{proposal_id}"', 1)[1].split("</article>", 1)[0]


def test_the_page_lists_queues_and_findings(
    client: TestClient, grid: Dept, reviewer: Person, room: Stored
) -> None:
    made = propose(
        client, grid.editor, room, road=f"{room.road}支", compound="页面测试苑", room=None
    )
    page = reviewer.browser.get("/console/review")
    assert page.status_code == 200
    html = page.text
    assert 'href="/console/review" aria-current="page"' in html and "地址审核" in html
    assert f'data-district="{room.district_code}"' in html
    shown = card(html, made["id"])
    assert "名称不在本区地名词典中" in shown and f"{room.road}支" in shown
    assert "审核通过并发布" in shown
    english = reviewer.browser.get("/console/review?lang=en").text
    assert "Not in the district&#39;s dictionary" in card(english, made["id"])
    reviewer.browser.get("/console/review?lang=zh-CN")  # the language is remembered


def test_the_proposer_sees_their_own_without_the_decisions(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], grid: Dept, room: Stored
) -> None:
    made = propose(client, grid.editor, room, room="8802")
    proposer = person(app, client, admin_headers, grid.code)
    html = proposer.browser.get("/console/review").text
    assert "审核通过并发布" not in card(html, made["id"])
    refused = proposer.post(f"/console/review/{made['id']}/approve")
    assert refused.status_code == 403 and "只有地址主管部门可以审核地址提议" in refused.text
    assert (
        client.get(f"/addresses/proposals/{made['id']}", headers=grid.viewer).json()["status"]
        == "pending"
    )


def test_approve_and_reject_from_the_page(
    client: TestClient, grid: Dept, authority: Dept, reviewer: Person, room: Stored
) -> None:
    approved = propose(client, grid.editor, room, room="8803")
    assert reviewer.post(f"/console/review/{approved['id']}/approve", csrf=False).status_code == 403
    answer = reviewer.post(f"/console/review/{approved['id']}/approve")
    assert answer.status_code == 200, answer.text
    assert 'data-status="approved"' in answer.text and "已发布" in answer.text
    decided = client.get(f"/addresses/proposals/{approved['id']}", headers=authority.viewer).json()
    assert (
        decided["status"] == "approved" and decided["address"]["standard"] == approved["standard"]
    )
    again = reviewer.post(f"/console/review/{approved['id']}/approve")
    assert again.status_code == 409 and "该提议已被处理" in again.text

    rejected = propose(client, grid.editor, room, room="8804")
    empty = reviewer.post(f"/console/review/{rejected['id']}/reject", {"reason": " "})
    assert empty.status_code == 400 and "退回时必须填写理由" in empty.text
    assert 'data-status="pending"' in empty.text
    done = reviewer.post(f"/console/review/{rejected['id']}/reject", {"reason": "门牌不存在"})
    assert done.status_code == 200 and "门牌不存在" in done.text
    assert 'data-status="rejected"' in done.text


def test_a_reviewer_cannot_approve_their_own(
    client: TestClient, reviewer: Person, room: Stored
) -> None:
    body = {
        "kind": "create",
        "address": {
            "district": room.district,
            "road": room.road,
            "house_number": room.house_number,
            "compound": room.compound,
            "building": room.building,
            "unit": room.unit,
            "room": "8805",
            "lon": room.lon,
            "lat": room.lat,
        },
    }
    made = reviewer.browser.post(
        "/addresses/proposals", json=body, headers={"X-CSRF-Token": reviewer.token}
    )
    assert made.status_code == 201, made.text
    own = reviewer.post(f"/console/review/{made.json()['id']}/approve")
    assert own.status_code == 403 and "不能审核自己提交的提议" in own.text


def test_bad_filters_and_signed_out(app: FastAPI, reviewer: Person) -> None:
    bad = reviewer.browser.get("/console/review?status=bogus")
    assert bad.status_code == 400 and "状态无效" in bad.text
    unknown = reviewer.browser.get("/console/review?district=浦东新区")
    assert unknown.status_code == 400
    outside = new_browser(app).get("/console/review", follow_redirects=False)
    assert outside.status_code == 303 and outside.headers["location"].startswith("/console/login")

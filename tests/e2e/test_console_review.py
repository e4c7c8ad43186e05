"""The review page in a real browser (issue 15 part 2): a reviewer of the address authority signs
in, opens 地址审核 from the navigation, reads the district's queue and a proposal's findings,
is told in Chinese that a rejection needs a reason, rejects one with a reason and approves the
other, which the API then shows published. Debian's Chromium against `geo serve` in its own
process, as tests/e2e/test_console.py; screenshots tests/e2e/artifacts/console-review-1.png and
-2.png, and axe-core finds no serious violation before and after the decisions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from geo.db import session_scope
from tests.address_library import ROOMS, Stored, load, pick
from tests.conftest import Dept
from tests.e2e.test_console import click, no_serious_violations, shot, sign_in, wait_for
from tests.live_server import live_server
from tests.test_accounts import Person, activate, create_account, new_browser


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    load()
    with live_server() as running:
        yield running.base


@pytest.fixture(scope="module")
def room(server: str) -> Stored:
    with session_scope() as session:
        return pick(session, ROOMS, 1)[0]


def propose(client: TestClient, headers: dict[str, str], base: Stored, **changes: Any) -> int:
    address = {
        "district": base.district,
        "road": base.road,
        "house_number": base.house_number,
        "compound": base.compound,
        "building": base.building,
        "unit": base.unit,
        "room": "7701",
        "lon": base.lon,
        "lat": base.lat,
        **changes,
    }
    made = client.post(
        "/addresses/proposals", json={"kind": "create", "address": address}, headers=headers
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def card_text(driver: Any, proposal_id: int, needle: str) -> str:
    check = (
        f"const e = document.getElementById('proposal-{proposal_id}');"
        f" return e && e.innerText.includes({needle!r}) ? e.innerText : '';"
    )
    return str(wait_for(driver, check, what=f"{needle!r} on proposal {proposal_id}"))


def test_a_reviewer_reads_the_queue_rejects_and_approves(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
    server: str,
    driver: Any,
    room: Stored,
) -> None:
    grid = make_department()
    authority = make_department(address_authority=True)
    reviewer, _ = activate(
        new_browser(app), create_account(client, admin_headers, authority.code, "editor")
    )
    clean = propose(client, grid.editor, room)
    doubtful = propose(client, grid.editor, room, road=f"{room.road}支", room=None)

    sign_in(driver, server, reviewer, reviewer.password)
    wait_for(driver, "return location.pathname === '/console/layers'", what="signed in")
    click(driver, "nav a[href='/console/review']")
    wait_for(driver, "return location.pathname === '/console/review'", what="review page")
    card_text(driver, doubtful, "名称不在本区地名词典中")
    queue = driver.execute_script(
        f"return document.querySelector('tr[data-district=\"{room.district_code}\"]').innerText"
    )
    assert room.district in queue
    no_serious_violations(driver)
    shot(driver, "console-review-1.png")

    click(driver, f"#proposal-{doubtful} form.reject button[type=submit]")
    card_text(driver, doubtful, "退回时必须填写理由")
    driver.execute_script(
        f"document.getElementById('reason-{doubtful}').value = '路名有误，请核实'"
    )
    click(driver, f"#proposal-{doubtful} form.reject button[type=submit]")
    card_text(driver, doubtful, "路名有误，请核实")

    click(driver, f"#proposal-{clean} button.approve")
    card_text(driver, clean, "已发布")
    no_serious_violations(driver)
    shot(driver, "console-review-2.png")

    decided = client.get(f"/addresses/proposals/{clean}", headers=authority.viewer).json()
    assert decided["status"] == "approved" and decided["address"]["status"] == "active"
    rejected = client.get(f"/addresses/proposals/{doubtful}", headers=authority.viewer).json()
    assert rejected["status"] == "rejected" and rejected["reason"] == "路名有误，请核实"


def test_the_proposer_is_refused_in_place(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
    server: str,
    driver: Any,
    room: Stored,
) -> None:
    """A grid department's person sees their proposal without the decisions."""
    grid = make_department()
    proposer: Person
    proposer, _ = activate(new_browser(app), create_account(client, admin_headers, grid.code))
    made = propose(client, grid.editor, room, room="7702")
    driver.delete_all_cookies()
    sign_in(driver, server, proposer, proposer.password)
    wait_for(driver, "return location.pathname === '/console/layers'", what="signed in")
    driver.get(server + "/console/review")
    card_text(driver, made, "待审")
    assert not driver.execute_script(f"return document.querySelector('#proposal-{made} button')")

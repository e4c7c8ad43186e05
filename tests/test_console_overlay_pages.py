"""The overlay page (叠加分析) and the console's map on the server side (issue 13): who gets the
pages, what the overlay page offers a person (what they may read, in groups, with the numeric
attributes), bad choices named in Chinese, and the overlay the page runs (POST /overlay with
the session cookie and CSRF header) counting only a scoped grantee's area. The flows in a
browser are in tests/e2e/test_console_overlay.py (this file has its own basename: tests/ has no
__init__.py, and pytest cannot collect two test_console_overlay.py)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from console import overlay
from tests.conftest import Dept
from tests.layers_helpers import collection, layer_id, make_points_layer, square, upload
from tests.test_accounts import activate, create_account, new_browser

# Points p0..p19 of make_points_layer lie at (117.2 + i/1000, 39.1 + i/2000): WEST holds
# p0..p9, EAST p10..p19.
WEST = square(117.1995, 39.0995, 0.0100)
EAST = square(117.2095, 39.1045, 0.0100)


def signed_in(app: FastAPI, client: TestClient, admin_headers: dict[str, str], code: str):
    """A browser signed in as a new editor of department `code`, and its CSRF token."""
    browser = new_browser(app)
    person = create_account(client, admin_headers, code)
    _, token = activate(browser, person)
    return browser, token


@pytest.fixture(scope="module")
def world(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
):
    """An owner's private points and two-cell grid, a grantee seeing the points in WEST only,
    and an outsider who may read neither."""
    owner, friend, outsider = make_department(), make_department(), make_department()
    points = make_points_layer(client, owner.editor, access="private")
    cells = layer_id("cells")
    features = [
        {"type": "Feature", "geometry": g, "properties": {"name": n}}
        for n, g in (("西格", WEST), ("东格", EAST))
    ]
    r = upload(client, owner.editor, cells, collection(features), access="public")
    assert r.status_code == 201, r.text
    r = client.post(
        f"/collections/{points}/grants",
        json={"grantee": friend.code, "level": "view", "area": WEST},
        headers=owner.editor,
    )
    assert r.status_code == 201, r.text
    return {
        "points": points,
        "cells": cells,
        "owner": signed_in(app, client, admin_headers, owner.code),
        "friend": signed_in(app, client, admin_headers, friend.code),
        "outsider": signed_in(app, client, admin_headers, outsider.code),
    }


def options(page: str, select: str) -> list[str]:
    block = re.search(rf'<select id="{select}".*?</select>', page, re.S)
    assert block, select
    return re.findall(r'<option value="([^"]+)"', block.group(0))


def test_pages_need_a_session(app: FastAPI) -> None:
    browser = new_browser(app)
    for path in ("/console/overlay", "/console/map?layers=a,b"):
        r = browser.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/console/login?next=%2Fconsole%2F"), path


def test_the_page_offers_what_the_person_may_read(world) -> None:
    browser, _ = world["owner"]
    page = browser.get("/console/overlay")
    assert page.status_code == 200 and '<html lang="zh-CN">' in page.text
    assert "叠加分析" in page.text and 'href="/console/overlay" aria-current="page"' in page.text
    offered = options(page.text, "overlay-layer")
    assert world["points"] in offered and world["cells"] in offered
    # The address library's collections can be overlaid too.
    assert {"districts", "subdistricts", "communities", "grids", "addresses"} <= set(offered)
    assert options(page.text, "overlay-other") == offered
    # Numeric attributes go with each layer, for sum/avg/min/max.
    assert f'value="{world["points"]}" data-numeric="pop,score"' in page.text
    assert f'value="{world["cells"]}" data-numeric=""' in page.text
    for word in ("本部门图层", "地址库", "相交", "在距离内", "要素个数", "平均值", "下载 CSV"):
        assert word in page.text, word
    english = browser.get("/console/overlay?lang=en")
    assert "Overlay" in english.text and "Download CSV" in english.text


def test_a_grantee_sees_the_granted_layer_and_an_outsider_does_not(world) -> None:
    friend, _ = world["friend"]
    page = friend.get("/console/overlay").text
    shared = re.search(r'<optgroup label="共享给我的及公开图层">.*?</optgroup>', page, re.S)
    assert shared and world["points"] in shared.group(0) and world["cells"] in shared.group(0)
    outsider, _ = world["outsider"]
    page = outsider.get("/console/overlay").text
    assert world["points"] not in options(page, "overlay-layer")


def test_a_shared_link_picks_the_layers_and_names_an_unreadable_one(world) -> None:
    browser, _ = world["owner"]
    page = browser.get(
        "/console/overlay", params={"layer": world["points"], "other": world["cells"]}
    ).text
    assert f'<option value="{world["points"]}" data-numeric="pop,score" selected>' in page
    assert f'<option value="{world["cells"]}" data-numeric="" selected>' in page
    assert "不存在或您无权读取" not in page
    outsider, _ = world["outsider"]
    page = outsider.get(
        "/console/overlay", params={"layer": world["points"], "other": "no_such_layer"}
    ).text
    assert f"图层“{world['points']}”不存在或您无权读取。" in page
    assert "图层“no_such_layer”不存在或您无权读取。" in page


def run(browser: TestClient, token: str, **body: object):
    return browser.post(
        "/overlay", json={"output": "aggregate", **body}, headers={"X-CSRF-Token": token}
    )


def counts(answer) -> dict[str, int]:
    assert answer.status_code == 200, answer.text
    return {f["properties"]["name"]: f["properties"]["count"] for f in answer.json()["features"]}


def test_the_page_s_overlay_counts_only_a_scoped_grantee_s_area(world) -> None:
    """What overlay.js sends, as each person: the owner counts every point, the grantee only
    those in the area of their grant, the outsider is told the layer is not there."""
    body = {"layer": world["points"], "other": world["cells"], "predicate": "intersects"}
    assert counts(run(*world["owner"], **body)) == {"西格": 10, "东格": 10}
    assert counts(run(*world["friend"], **body)) == {"西格": 10, "东格": 0}
    summed = run(*world["friend"], **body, property="pop").json()["features"]
    assert {f["properties"]["name"]: f["properties"]["pop_sum"] for f in summed} == {
        "西格": sum(i % 7 for i in range(10)),
        "东格": None,
    }
    refused = run(*world["outsider"], **body)
    assert refused.status_code == 404 and world["points"] in refused.json()["message"]
    # Without the CSRF header a cookie's write is refused (the page always sends it).
    assert world["friend"][0].post("/overlay", json=body).status_code == 403


def test_the_downloads_are_the_same_overlay(world) -> None:
    body = {"layer": world["points"], "other": world["cells"], "format": "csv", "limit": 100000}
    answer = run(*world["friend"], **body)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert {r["name"]: r["count"] for r in rows} == {"西格": "10", "东格": "0"}
    assert all(r["wkt"].startswith("MULTIPOLYGON") or r["wkt"].startswith("POLYGON") for r in rows)


def test_bad_choices_come_back_from_the_api_as_the_page_explains_them(world) -> None:
    browser, token = world["owner"]
    base = {"layer": world["points"], "other": world["cells"]}
    # A text attribute for a sum, a distance join without a distance: 400s the page shows.
    assert run(browser, token, **base, property="name").status_code == 400
    assert run(browser, token, **base, predicate="dwithin").status_code == 400
    # The same layer twice is a valid overlay (each feature with what touches it).
    same = run(browser, token, layer=world["cells"], other=world["cells"])
    assert same.status_code == 200 and len(same.json()["features"]) == 2


def test_choices_group_the_library_apart(world) -> None:
    from geo.auth import Principal
    from geo.db import session_scope
    from layers import catalogue

    who = Principal(department="nobody", role="viewer", key_prefix=None, account="x")
    with session_scope() as session:
        grouped = overlay.choices(catalogue.all_readable_sources(session, who), who)
    assert {c.id for c in grouped[overlay.LIBRARY]} >= {"districts", "addresses"}
    assert world["points"] not in {c.id for g in grouped.values() for c in g}
    assert world["cells"] in {c.id for c in grouped[overlay.SHARED]}


def test_the_console_map_is_the_viewer_in_the_console_frame(world, app: FastAPI) -> None:
    browser, _ = world["owner"]
    page = browser.get("/console/map?layers=a,b&lang=zh-CN")
    assert page.status_code == 200 and '<html lang="zh-CN">' in page.text
    assert 'href="/console/map" aria-current="page"' in page.text and "退出" in page.text
    # The viewer's own script and styles, not a copy; the DOM it expects.
    assert '<script src="/map/assets/map.js" defer></script>' in page.text
    assert '<link rel="stylesheet" href="/map/assets/map.css">' in page.text
    for element in ("panel", "search", "search-input", "suggestions", "layers", "identify", "map"):
        assert f'id="{element}"' in page.text, element
    assert "Map" in browser.get("/console/map?lang=en").text
    # /map alone is as it was: the viewer's page, no session needed.
    alone = new_browser(app).get("/map")
    assert alone.status_code == 200 and "/map/assets/map.js" in alone.text
    assert "console" not in alone.text

"""Grants with an area, in a real browser (issue 13): the owner grants one department a view of
a district picked from the admin areas and another a polygon drawn on the layer page's map
(Terra Draw); each grantee, signed in, sees only its area's features on the map and in the
table. The page's edit history and downloads are checked on the way. Screenshot
tests/e2e/artifacts/console-grant-area.png; axe-core finds nothing serious."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.db import session_scope
from tests.conftest import Dept
from tests.e2e.test_console import (
    click,
    fill,
    no_serious_violations,
    shot,
    sign_in,
    sign_out,
    wait_for,
    wait_text,
)
from tests.layers_helpers import collection, upload
from tests.test_accounts import Person, activate, create_account, new_browser

# Three stations west of 117.20 (inside the test district), three east of it.
WEST = [("西站甲", 117.150, 39.100), ("西站乙", 117.160, 39.110), ("西站丙", 117.170, 39.120)]
EAST = [("东站甲", 117.250, 39.100), ("东站乙", 117.260, 39.110), ("东站丙", 117.300, 39.160)]
DISTRICT_RING = "117.10 39.05, 117.20 39.05, 117.20 39.20, 117.10 39.20, 117.10 39.05"
# Drawn around the first two eastern stations, not the third.
DRAWN = [(117.240, 39.090), (117.275, 39.090), (117.275, 39.120), (117.240, 39.120)]


@pytest.fixture(scope="module")
def district() -> Iterator[tuple[str, str]]:
    """A district of its own (code, name) with one subdistrict, removed afterwards (the address
    library's tables are shared by the test session)."""
    code = f"1298{secrets.randbelow(90) + 10}000000"
    name = "授权测试区" + secrets.token_hex(2)
    sub = code[:6] + "001000"
    with session_scope() as s:
        s.execute(text("DELETE FROM admin_areas WHERE code IN (:c, :s)"), {"c": code, "s": sub})
        s.execute(
            text(
                "INSERT INTO admin_areas (code, name, level, geom) VALUES (:c, :n, 'district', "
                f"ST_Multi(ST_GeomFromText('POLYGON(({DISTRICT_RING}))', 4490)))"
            ),
            {"c": code, "n": name},
        )
        s.execute(
            text(
                "INSERT INTO admin_areas (code, name, level, parent_code, geom) VALUES "
                "(:s, :n, 'subdistrict', :c, ST_Multi(ST_GeomFromText('POLYGON((117.10 39.05, "
                "117.15 39.05, 117.15 39.10, 117.10 39.10, 117.10 39.05))', 4490)))"
            ),
            {"c": code, "s": sub, "n": name + "街道"},
        )
    yield code, name
    with session_scope() as s:
        s.execute(text("DELETE FROM admin_areas WHERE code IN (:c, :s)"), {"c": code, "s": sub})


@pytest.fixture(scope="module")
def world(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
) -> dict[str, Any]:
    """A private layer of six stations, its department's editor, and two other departments'
    editors, all with passwords of their own."""
    owner_dept = make_department()
    layer = "grant_" + secrets.token_hex(3)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"名称": name},
        }
        for name, x, y in WEST + EAST
    ]
    r = upload(client, owner_dept.editor, layer, collection(features), access="private")
    assert r.status_code == 201, r.text
    # One more station, far east (in no grant's area), then renamed: two versions.
    far = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [117.35, 39.18]}}
    r = client.post(
        f"/collections/{layer}/items",
        json={**far, "properties": {"名称": "远站"}},
        headers=owner_dept.editor,
    )
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    r = client.patch(
        f"/collections/{layer}/items/{fid}",
        json={"properties": {"名称": "远站（新）"}},
        headers={
            **owner_dept.editor,
            "If-Match": '"1"',
            "Content-Type": "application/merge-patch+json",
        },
    )
    assert r.status_code == 200, r.text

    def person(code: str) -> Person:
        return activate(new_browser(app), create_account(client, admin_headers, code))[0]

    return {
        "layer": layer,
        "owner": person(owner_dept.code),
        "district_grantee": person(make_department().code),
        "drawn_grantee": person(make_department().code),
    }


def click_map(driver: Any, lon: float, lat: float) -> None:
    """A click on the grant map at a coordinate (Selenium offsets count from the centre)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.CSS_SELECTOR, "#grant-map canvas")
    x, y, width, height = driver.execute_script(
        "const p = grantMap.project(arguments[0]); const c = grantMap.getCanvas();"
        " return [p.x, p.y, c.clientWidth, c.clientHeight];",
        [lon, lat],
    )
    offset_x, offset_y = round(x - width / 2), round(y - height / 2)
    ActionChains(driver).move_to_element_with_offset(canvas, offset_x, offset_y).pause(
        0.2
    ).click().pause(0.3).perform()


def table_names(driver: Any) -> list[str]:
    return sorted(
        driver.execute_script(
            "return [...document.querySelectorAll('#features-body tr td:nth-child(2)')]"
            ".map(td => td.innerText)"
        )
    )


def test_grants_by_admin_area_and_drawn_polygon(
    server: str, driver: Any, world: dict[str, Any], district: tuple[str, str]
) -> None:
    layer, owner = world["layer"], world["owner"]
    code, name = district
    by_district, by_drawing = world["district_grantee"], world["drawn_grantee"]

    sign_in(driver, server, owner, owner.password)
    wait_for(driver, "return location.pathname === '/console/layers'", what="owner signed in")
    driver.get(f"{server}/console/layers/{layer}")
    wait_for(driver, "return window.grantMapReady === true", what="the grant map")
    wait_text(driver, "features-range", "共 7 条")
    # The edit history: the upload that created the layer, with its mode and count, and the
    # feature added and renamed since, newest first; its versions open in place.
    wait_text(driver, "history-body", "新建图层：6 个要素")
    actions = driver.execute_script(
        "return [...document.querySelectorAll('#history-body tr')].map(r => r.dataset.action)"
    )
    assert actions[:3] == ["feature.update", "feature.create", "layer.upload"], actions
    click(driver, "#history-body tr:first-child summary")
    wait_text(driver, "history-body", "第 2 版")
    assert "第 1 版" in driver.execute_script(
        "return document.getElementById('history-body').innerText"
    )
    # Every format, every CRS of the API, offered for download.
    formats = driver.execute_script(
        "return [...document.querySelectorAll('#download-form input[name=f]')].map(i => i.value)"
    )
    assert formats == ["geojson", "gpkg", "csv", "xlsx", "shp"]
    choices = driver.execute_script(
        "return [...document.getElementById('download-crs').options].map(o => o.value)"
    )
    assert {"EPSG:4490", "GCJ02", "BD09", "EPSG:3857", "EPSG:4548"} <= set(choices)

    # 1. A view of the district, picked from the admin areas.
    fill(driver, {"grant-grantee": by_district.department, "grant-level": "view"})
    click(driver, "#grant-area-kind input[value=admin]")
    wait_for(
        driver,
        f"return [...document.getElementById('grant-district').options]"
        f".some(o => o.value === {code!r})",
        what="the district in the picker",
    )
    fill(driver, {"grant-district": code})
    wait_text(driver, "grant-subdistrict", name + "街道")
    click(driver, "#grant-form button[type=submit]")
    wait_text(driver, "grants-body", f"{name}（{code}）")
    wait_for(driver, "return window.grantAreasShown === 1", what="the district on the map")

    # 2. A polygon drawn on the map, for a third department.
    fill(driver, {"grant-grantee": by_drawing.department, "grant-level": "view"})
    click(driver, "#grant-area-kind input[value=drawn]")
    click(driver, "#grant-draw-start")
    # Zoomed in on the eastern stations, as a person would before drawing around them.
    driver.execute_script("grantMap.jumpTo({center: [117.2575, 39.105], zoom: 12})")
    for lon, lat in [*DRAWN, DRAWN[0]]:
        click_map(driver, lon, lat)
    wait_text(driver, "grant-draw-status", "已绘制范围（4 个顶点）")
    click(driver, "#grant-form button[type=submit]")
    wait_text(driver, "grants-body", by_drawing.department)
    assert "地图上绘制的范围" in driver.execute_script(
        "return document.getElementById('grants-body').innerText"
    )
    wait_for(driver, "return window.grantAreasShown === 2", what="both areas on the map")
    driver.execute_script("document.getElementById('h-grants').scrollIntoView()")
    shot(driver, "console-grant-area.png")
    no_serious_violations(driver)
    # Without an area drawn or picked, the form says what is missing and grants nothing.
    click(driver, "#grant-area-kind input[value=drawn]")
    click(driver, "#grant-form button[type=submit]")
    wait_text(driver, "grant-error", "请先在地图上绘制范围")
    sign_out(driver)

    # 3. Each grantee sees its area's features only, on the map and in the table.
    for grantee, expected in ((by_district, WEST), (by_drawing, EAST[:2])):
        sign_in(driver, server, grantee, grantee.password)
        wait_for(driver, "return location.pathname === '/console/layers'", what="signed in")
        driver.get(f"{server}/console/layers/{layer}")
        wait_text(driver, "features-range", f"共 {len(expected)} 条")
        wait_for(
            driver, f"return window.consoleMapReady === {len(expected)}", what="the map preview"
        )
        assert table_names(driver) == sorted(n for n, _, _ in expected)
        # Its own changes only: none yet.
        wait_text(driver, "history-own", "仅显示本部门的编辑")
        no_serious_violations(driver)
        sign_out(driver)

"""The overlay page and the console's map in a real browser (issue 13): a department's editor
signs in, runs an overlay of their points against a grid, sees the table and the choropleth
(drawn features and the pixels of the two classes), downloads the result as CSV and GeoJSON,
and opens the console's map: the /map viewer in the console frame, drawing a private layer
through the session cookie and following its changes live. Screenshot
tests/e2e/artifacts/console-overlay.png; axe-core finds nothing serious on either page."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from tests.browser import poll
from tests.conftest import Dept
from tests.e2e.test_console import (
    click,
    fill,
    no_serious_violations,
    shot,
    wait_for,
    wait_text,
)
from tests.layers_helpers import CENTER, collection, layer_id, make_points_layer, square, upload
from tests.live_server import LiveServer, live_server
from tests.test_accounts import STRONG, Person, activate, create_account, new_browser

# make_points_layer's p0..p19 at (117.2 + i/1000, 39.1 + i/2000): WEST holds p0..p9 (pop sum
# 24), EAST p10..p19 (pop sum 33): two classes, two colours.
WEST = square(117.1995, 39.0995, 0.0100)
EAST = square(117.2095, 39.1045, 0.0100)
# overlay.js's palette, the lightest and the darkest class, drawn at fill-opacity 0.85 over the
# map's background.
BACKGROUND = (0xF6, 0xF4, 0xEE)


def drawn_as(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = (round(0.85 * c + 0.15 * k) for c, k in zip(colour, BACKGROUND, strict=True))
    return r, g, b


LIGHT, DARK = drawn_as((0xF2, 0xF0, 0xF7)), drawn_as((0x54, 0x27, 0x8F))


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    with live_server() as running:
        yield running


WINDOW = "1280,1400"


@pytest.fixture(scope="module")
def world(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
) -> dict[str, Any]:
    dept = make_department()
    points = make_points_layer(client, dept.editor, access="private")
    cells = layer_id("cells")
    features = [
        {"type": "Feature", "geometry": g, "properties": {"name": n}}
        for n, g in (("西格", WEST), ("东格", EAST))
    ]
    r = upload(client, dept.editor, cells, collection(features), access="private")
    assert r.status_code == 201, r.text
    person, _ = activate(new_browser(app), create_account(client, admin_headers, dept.code))
    # Another department sees the points in WEST only, the grid whole.
    friend = make_department()
    for layer, area in ((points, {"area": WEST}), (cells, {})):
        r = client.post(
            f"/collections/{layer}/grants",
            json={"grantee": friend.code, "level": "view", **area},
            headers=dept.editor,
        )
        assert r.status_code == 201, r.text
    grantee, _ = activate(new_browser(app), create_account(client, admin_headers, friend.code))
    return {"dept": dept, "points": points, "cells": cells, "person": person, "grantee": grantee}


def sign_in(driver: Any, base: str, person: Person, then: str) -> None:
    driver.get(f"{base}/console/login?next={then}")
    fill(driver, {"username": person.username, "password": STRONG})
    click(driver, "#login-form button[type=submit]")
    wait_for(driver, f"return location.pathname === '{then}'", what=then)


def pixel_colours(driver: Any) -> set[tuple[int, int, int]]:
    """The colours on the overlay map's canvas, as the screen shows it."""
    from selenium.webdriver.common.by import By

    png = driver.find_element(By.ID, "overlay-map").screenshot_as_png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return {c for _, c in image.getcolors(maxcolors=1 << 20) or []}


def near(colours: set[tuple[int, int, int]], target: tuple[int, int, int]) -> bool:
    return any(all(abs(a - b) <= 6 for a, b in zip(c, target, strict=True)) for c in colours)


def downloaded(folder: Path, name: str, timeout: float = 30) -> Path:
    path = folder / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    raise AssertionError(f"{name} not downloaded: {list(folder.iterdir())}")


def test_an_overlay_as_a_table_a_choropleth_and_downloads(
    server: LiveServer, driver: Any, world: dict[str, Any], tmp_path: Path
) -> None:
    points, cells = world["points"], world["cells"]
    sign_in(driver, server.base, world["person"], "/console/layers")
    click(driver, 'a[href="/console/overlay"]')
    wait_for(driver, "return location.pathname === '/console/overlay'", what="overlay page")
    no_serious_violations(driver)

    # No layer chosen: said on the page, nothing sent.
    click(driver, "#overlay-run")
    wait_text(driver, "overlay-error", "请选择被统计的图层和分组图层")
    # A sum needs a numeric attribute: the grid has none.
    fill(driver, {"overlay-layer": cells, "overlay-other": points, "overlay-aggregate": "sum"})
    click(driver, "#overlay-run")
    wait_text(driver, "overlay-error", "需要一个数值属性")

    fill(driver, {"overlay-layer": points, "overlay-other": cells})
    fill(driver, {"overlay-aggregate": "sum", "overlay-property": "pop"})
    click(driver, "#overlay-run")
    wait_text(driver, "overlay-status", "完成：2 个分组")
    assert text_rows(driver) == {"西格": "24", "东格": "33"}
    wait_for(driver, "return window.overlayView.drawn >= 1", what="the choropleth drawn")
    drawn = driver.execute_script(
        "return window.overlayView.map.queryRenderedFeatures({layers: ['overlay-fill']})"
        ".map(f => f.properties.name + ':' + f.properties.pop_sum);"
    )
    assert set(drawn) == {"西格:24", "东格:33"}
    colours = pixel_colours(driver)
    assert near(colours, LIGHT) and near(colours, DARK), sorted(colours)
    legend = driver.execute_script("return document.getElementById('overlay-legend').innerText")
    assert "pop_sum" in legend and "24" in legend and "33" in legend
    shot(driver, "console-overlay.png")
    no_serious_violations(driver)

    # Downloads: the same overlay, whole, as CSV and GeoJSON.
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    click(driver, "#download-csv")
    rows = list(
        csv.DictReader(
            io.StringIO(
                downloaded(tmp_path, f"{points}-{cells}.csv").read_text(encoding="utf-8-sig")
            )
        )
    )
    assert {r["name"]: r["pop_sum"] for r in rows} == {"西格": "24.0", "东格": "33.0"}
    click(driver, "#download-geojson")
    document = json.loads(downloaded(tmp_path, f"{points}-{cells}.geojson").read_text())
    assert {f["properties"]["name"]: f["properties"]["count"] for f in document["features"]} == {
        "西格": 10,
        "东格": 10,
    }

    # A layer the person may not read, from a shared link: named on the page.
    driver.get(f"{server.base}/console/overlay?layer=no_such_layer")
    wait_text(driver, "overlay-error", "图层“no_such_layer”不存在或您无权读取")


def text_rows(driver: Any) -> dict[str, str]:
    """The result table as name -> pop_sum, as the person reads it."""
    found = driver.execute_script(
        "const head = [...document.querySelectorAll('#overlay-head th')].map(t => t.textContent);"
        " return [...document.querySelectorAll('#overlay-body tr')].map(tr =>"
        " [tr.cells[head.indexOf('name')].textContent,"
        " tr.cells[head.indexOf('pop_sum')].textContent]);"
    )
    return dict(found)


def test_the_console_map_draws_private_layers_and_follows_changes(
    server: LiveServer, driver: Any, world: dict[str, Any]
) -> None:
    points = world["points"]
    driver.get(f"{server.base}/console/layers")
    if "/console/login" in driver.current_url:
        sign_in(driver, server.base, world["person"], "/console/layers")
    click(driver, 'a[href="/console/map"]')
    wait_for(driver, "return location.pathname === '/console/map'", what="console map")
    settled = (
        "const v = window.geoViewer; return !!(v && v.map && v.idle && v.map.loaded()"
        " && v.map.areTilesLoaded());"
    )
    wait_for(driver, settled, 60, "the viewer to load")
    # The person's private layers are listed and drawn: the viewer got tile tokens with the
    # session cookie (tile routes take no cookie), never showing the cookie's token in a URL.
    assert points in driver.execute_script("return window.geoViewer.layers;")
    driver.execute_script(
        "window.geoViewer.map.jumpTo({center: arguments[0], zoom: 15});", list(CENTER)
    )
    time.sleep(0.3)
    wait_for(driver, settled, 30, "the tiles at the layer's centre")
    drawn = (
        "window.geoViewer.map.queryRenderedFeatures()"
        f".filter(f => f.sourceLayer === '{points}').map(f => f.properties.name)"
    )
    assert "p0" in driver.execute_script(f"return {drawn};")
    wait_for(
        driver, f"return (window.geoViewer.live.versions || {{}})['{points}'] > 0;", 10, "ready"
    )
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [CENTER[0] + 0.0005, CENTER[1] + 0.0005]},
        "properties": {"name": "控制台新增"},
    }
    r = httpx.post(
        f"{server.base}/collections/{points}/items",
        json=feature,
        headers=world["dept"].editor,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    assert poll(driver, f"return {drawn}.includes('控制台新增');", 5, 0.05), "not refreshed"
    # The console's frame around it.
    assert (
        driver.execute_script(
            "return document.querySelector('nav a[aria-current=page]').getAttribute('href')"
        )
        == "/console/map"
    )
    shot(driver, "console-map.png")
    no_serious_violations(driver)


def test_a_scoped_grantee_s_overlay_counts_only_their_area(
    server: LiveServer, driver: Any, world: dict[str, Any]
) -> None:
    driver.delete_all_cookies()
    sign_in(driver, server.base, world["grantee"], "/console/overlay")
    fill(driver, {"overlay-layer": world["points"], "overlay-other": world["cells"]})
    click(driver, "#overlay-run")
    wait_text(driver, "overlay-status", "完成：2 个分组")
    counted = driver.execute_script(
        "const head = [...document.querySelectorAll('#overlay-head th')].map(t => t.textContent);"
        " return Object.fromEntries([...document.querySelectorAll('#overlay-body tr')].map(tr =>"
        " [tr.cells[head.indexOf('name')].textContent,"
        " tr.cells[head.indexOf('count')].textContent]));"
    )
    # The owner's count of the same overlay (the map test may have added a point in WEST).
    r = httpx.post(
        f"{server.base}/overlay",
        json={"layer": world["points"], "other": world["cells"], "output": "aggregate"},
        headers=world["dept"].editor,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    whole = {f["properties"]["name"]: f["properties"]["count"] for f in r.json()["features"]}
    assert whole["东格"] == 10 and whole["西格"] >= 10
    assert counted == {"西格": str(whole["西格"]), "东格": "0"}

"""Live refresh end to end (issue 12 part 4), in Debian's headless Chromium: a feature added
through the API by another client shows within 2 s, without a page reload,

- on the /map viewer open on a private layer (the page's key exchanged for a tile token, which
  its /events stream uses too);
- on the console's layer page of a person signed in (the stream goes with the session cookie).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.browser import headless_chromium, poll
from tests.conftest import Dept
from tests.layers_helpers import CENTER, make_points_layer
from tests.live_server import LiveServer, live_server
from tests.test_accounts import STRONG, activate, create_account, new_browser

ADDED = "实时新增"
WITHIN_S = 2.0
SETTLED = (
    "const v = window.geoViewer; return !!(v && v.map && v.idle && v.map.loaded()"
    " && v.map.areTilesLoaded());"
)


@pytest.fixture(scope="module")
def server(client: TestClient) -> Iterator[LiveServer]:
    with live_server(workers=1) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as driver:
        yield driver


def wait_for(driver: Any, script: str, timeout: float, what: str) -> Any:
    value = poll(driver, script, timeout, interval=0.05)
    assert value, f"timed out after {timeout} s waiting for {what}"
    return value


def add(server: LiveServer, lid: str, headers: dict[str, str]) -> float:
    """Adds the feature through the API; when its 201 came (monotonic seconds)."""
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [CENTER[0] + 0.0005, CENTER[1] + 0.0005]},
        "properties": {"name": ADDED},
    }
    r = httpx.post(
        f"{server.base}/collections/{lid}/items", json=feature, headers=headers, timeout=10
    )
    assert r.status_code == 201, r.text
    return time.monotonic()


def test_the_map_viewer_draws_a_feature_added_within_2_s(
    client: TestClient, make_department: Any, server: LiveServer, browser: Any
) -> None:
    dept: Dept = make_department()
    lid = make_points_layer(client, dept.editor, n=3, access="private")
    key = dept.viewer["Authorization"].removeprefix("Bearer ")
    driver = browser
    driver.get(f"{server.base}/map?layers={lid}&key={key}")
    wait_for(driver, SETTLED, 60, "the map to load")
    driver.execute_script(
        "window.geoViewer.map.jumpTo({center: arguments[0], zoom: 15});", list(CENTER)
    )
    time.sleep(0.3)
    wait_for(driver, SETTLED, 30, "the tiles at the layer's centre")
    wait_for(
        driver,
        f"return (window.geoViewer.live.versions || {{}})['{lid}'] > 0;",
        10,
        "the event stream's ready",
    )
    drawn = (
        "window.geoViewer.map.queryRenderedFeatures()"
        f".filter(f => f.sourceLayer === '{lid}').map(f => f.properties.name)"
    )
    before = driver.execute_script(f"return {drawn};")
    assert ADDED not in before and "p0" in before
    page = driver.execute_script("return window.performance.timeOrigin;")

    added = add(server, lid, dept.editor)
    shown = poll(driver, f"return {drawn}.includes('{ADDED}');", WITHIN_S, 0.05)
    seconds = time.monotonic() - added
    print(f"live refresh (viewer): the added feature drawn {seconds:.2f} s after the 201")
    assert shown, f"not drawn within {WITHIN_S} s: {driver.execute_script(f'return {drawn};')}"
    assert driver.execute_script("return window.geoViewer.live.refreshes;") >= 1
    assert driver.execute_script("return window.performance.timeOrigin;") == page  # no reload
    # The key never went into a URL the page requested: the stream used a tile token.
    stream = driver.execute_script("return window.geoViewer.live.streams[0].url;")
    assert "/events?" in stream and "token=" in stream
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert not any(key in u for u in [stream, *urls])


def test_the_console_layer_page_shows_a_feature_added_within_2_s(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Any,
    server: LiveServer,
    browser: Any,
) -> None:
    dept: Dept = make_department()
    lid = make_points_layer(client, dept.editor, n=3, access="private")
    person, _ = activate(new_browser(app), create_account(client, admin_headers, dept.code))
    driver = browser
    driver.delete_all_cookies()
    driver.get(f"{server.base}/console/login")
    driver.find_element("id", "username").send_keys(person.username)
    driver.find_element("id", "password").send_keys(STRONG)
    driver.find_element("css selector", "#login-form button[type=submit]").click()
    wait_for(driver, "return location.pathname === '/console/layers'", 30, "signed in")
    driver.get(f"{server.base}/console/layers/{lid}")
    wait_for(driver, "return window.consoleMapReady === 3", 60, "the map preview")
    wait_for(driver, "return window.consoleMapRefreshes >= 1", 10, "the event stream's ready")
    names = "window.consoleMap.querySourceFeatures('layer').map(f => f.properties.name)"
    assert ADDED not in driver.execute_script(f"return {names};")
    page = driver.execute_script("return window.performance.timeOrigin;")

    added = add(server, lid, dept.editor)
    shown = poll(driver, f"return {names}.includes('{ADDED}');", WITHIN_S, 0.05)
    seconds = time.monotonic() - added
    print(f"live refresh (console): the added feature on the map {seconds:.2f} s after the 201")
    assert shown, f"not on the console's map within {WITHIN_S} s"
    wait_for(
        driver,
        "return document.getElementById('features-range').innerText.includes('4')",
        WITHIN_S,
        "the feature table's count",
    )
    assert driver.execute_script("return window.performance.timeOrigin;") == page  # no reload

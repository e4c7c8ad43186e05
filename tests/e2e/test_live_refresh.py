"""Live refresh end to end (issue 12 part 4): the /map viewer open in Debian's headless Chromium
on a private layer (the page's key exchanged for a tile token, which its /events stream uses
too), a feature added through the API by another client, and the feature drawn on the open map
within 2 s, without a page reload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.browser import headless_chromium, poll
from tests.conftest import Dept
from tests.layers_helpers import CENTER, make_points_layer
from tests.live_server import LiveServer, live_server

ADDED = "实时新增"
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


def drawn(driver: Any, lid: str) -> list[str]:
    """Names of the layer's features the map has drawn."""
    names: list[str] = driver.execute_script(
        "return window.geoViewer.map.queryRenderedFeatures()"
        ".filter(f => f.sourceLayer === arguments[0]).map(f => f.properties.name);",
        lid,
    )
    return names


def test_a_feature_added_through_the_api_shows_on_the_open_map_within_2_s(
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
    assert ADDED not in drawn(driver, lid) and "p0" in drawn(driver, lid)
    page = driver.execute_script("return window.performance.timeOrigin;")

    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [CENTER[0] + 0.0005, CENTER[1] + 0.0005]},
        "properties": {"name": ADDED},
    }
    r = httpx.post(
        f"{server.base}/collections/{lid}/items", json=feature, headers=dept.editor, timeout=10
    )
    assert r.status_code == 201, r.text
    added = time.monotonic()
    shown = poll(
        driver,
        f"return window.geoViewer.map.queryRenderedFeatures()"
        f".some(f => f.sourceLayer === '{lid}' && f.properties.name === '{ADDED}');",
        2.0,
        interval=0.05,
    )
    seconds = time.monotonic() - added
    print(f"live refresh: the added feature drawn {seconds:.2f} s after the API's 201")
    assert shown, f"the added feature was not drawn within 2 s: {drawn(driver, lid)}"
    assert driver.execute_script("return window.geoViewer.live.refreshes;") >= 1
    # The same page: no reload happened.
    assert driver.execute_script("return window.performance.timeOrigin;") == page
    # The key never went into a URL the page requested: the stream used a tile token.
    stream = driver.execute_script("return window.geoViewer.live.streams[0].url;")
    assert "/events?" in stream and "token=" in stream
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert not any(key in u for u in [stream, *urls])

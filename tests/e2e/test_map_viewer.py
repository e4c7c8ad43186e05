"""The /map viewer end to end: our server in its own process, Debian's Chromium driven by
chromedriver, MapLibre rendering with software WebGL (SwiftShader).

It checks what a person would: the page loads from our own files only (the machine is
offline), the districts render (pixels of the outline colour where the districts are), and an
address search moves the map. The screenshot is kept under pytest's tmp dir and in
tests/e2e/artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from geo.crs import transform_geojson
from geo.db import get_engine, session_scope
from geo.embedded import free_port
from geo.versions import bump
from tests.browser import headless_chromium, poll

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
DISTRICTS = REPO / "addressbook" / "data" / "districts_gcj02.geojson"
# Codes outside the real numbering, so these rows never collide with an imported hierarchy.
CODE_PREFIX = "9901"
ADDRESS = {"district": "和平区", "road": "测图路", "house_number": "8"}
ADDRESS_TEXT = "和平区测图路8号"
OUTLINE = (0x4A, 0x3F, 0x8C)  # tiles.styles: the districts' outline colour
BACKGROUND = (0xF6, 0xF4, 0xEE)


@pytest.fixture(scope="module")
def districts(database_url: str) -> Iterator[None]:
    """The 16 district outlines of the bundled data, moved from GCJ-02 into the storage CRS as
    the address library does, written to its admin area table under test codes."""
    collection = transform_geojson(json.loads(DISTRICTS.read_text()), "GCJ02", "EPSG:4490")
    with get_engine().begin() as conn:
        for i, feature in enumerate(collection["features"]):
            conn.execute(
                text(
                    "INSERT INTO admin_areas (code, name, level, geom) VALUES (:code, :name, "
                    "'district', ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(:geom), 4490)))"
                ),
                {
                    "code": f"{CODE_PREFIX}{i:08d}",
                    "name": feature["properties"]["name"],
                    "geom": json.dumps(feature["geometry"]),
                },
            )
    with session_scope() as session:
        bump(session, "admin_areas")
    yield
    with get_engine().begin() as conn:
        conn.execute(text(f"DELETE FROM admin_areas WHERE code LIKE '{CODE_PREFIX}%'"))
    with session_scope() as session:
        bump(session, "admin_areas")


@pytest.fixture(scope="module")
def address(
    districts: None, client: TestClient, admin_headers: dict[str, str]
) -> Iterator[tuple[float, float]]:
    """One address in 和平区, created through the address library's API; its location."""
    with get_engine().connect() as conn:
        lon, lat = conn.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM admin_areas "
                f"WHERE code LIKE '{CODE_PREFIX}%' AND name = '和平区') s"
            )
        ).one()
    created = client.post(
        "/addresses", json={**ADDRESS, "lon": lon, "lat": lat}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    yield lon, lat
    with get_engine().begin() as conn:
        conn.execute(
            text("DELETE FROM address_history WHERE address_id = :id"), {"id": created.json()["id"]}
        )
        conn.execute(text("DELETE FROM addresses WHERE id = :id"), {"id": created.json()["id"]})


@pytest.fixture(scope="module")
def server(districts: None, address: tuple[float, float]) -> Iterator[str]:
    """`geo serve` as users run it, on a free port, against the test database."""
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="geo-e2e-server-")) / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "geo.cli", "serve", "--port", str(port), "--workers", "1"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(log_path.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with headless_chromium() as driver:
        yield driver


def wait_for(driver, script: str, timeout: float = 60, what: str = "") -> object:
    value = poll(driver, script, timeout, interval=0.25)
    if value:
        return value
    logs = driver.execute_script("return (window.geoViewerErrors || []).join('\\n')")
    raise AssertionError(f"timed out waiting for {what or script}\n{logs}")


MAP_SETTLED = (
    "const v = window.geoViewer; return !!(v && v.map && v.idle && v.map.loaded()"
    " && v.map.areTilesLoaded());"
)


def pixels_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    """How many pixels are within `tolerance` of `colour` in every channel."""
    pixels = np.frombuffer(image.convert("RGB").tobytes(), dtype=np.uint8).reshape(-1, 3)
    distance = np.abs(pixels.astype(np.int16) - np.array(colour, dtype=np.int16))
    return int((distance <= tolerance).all(axis=1).sum())


def test_map_renders_districts_and_search_moves_it(
    server: str, browser, address: tuple[float, float], tmp_path: Path
) -> None:
    driver = browser
    driver.get(server + "/map?layers=districts,addresses")
    wait_for(driver, MAP_SETTLED, what="the map to load")
    assert driver.execute_script(
        "return window.geoViewer.map.painter.context.gl instanceof WebGL2RenderingContext"
    )
    driver.execute_script("window.geoViewer.map.jumpTo({center: [117.35, 39.25], zoom: 8.2});")
    time.sleep(0.3)
    wait_for(driver, MAP_SETTLED, what="tiles at the city view")
    rendered = driver.execute_script(
        "return window.geoViewer.map.queryRenderedFeatures({layers: ['districts-outline']})"
        ".map(f => f.properties.name);"
    )
    assert "和平区" in rendered and "滨海新区" in rendered, rendered

    canvas = driver.find_element("css selector", "#map canvas")
    png = canvas.screenshot_as_png
    (tmp_path / "map.png").write_bytes(png)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "map.png").write_bytes(png)
    image = Image.open(io.BytesIO(png))
    total = image.width * image.height
    outline = pixels_near(image, OUTLINE)
    background = pixels_near(image, BACKGROUND, tolerance=6)
    assert outline > 2000, f"only {outline} pixels of the district outline colour"
    assert background < 0.97 * total, "the map is (nearly) blank"

    # Offline: every request the page made went to our own server.
    origins = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin);"
    )
    assert set(origins) == {server}, set(origins)

    before = driver.execute_script("return window.geoViewer.map.getCenter().toArray();")
    box = driver.find_element("id", "search-input")
    box.send_keys(ADDRESS_TEXT)
    driver.execute_script("document.getElementById('search').requestSubmit();")
    wait_for(driver, "return !!window.geoViewer.lastSearch;", what="the search result")
    wait_for(driver, MAP_SETTLED, what="the map to settle after the search")
    after = driver.execute_script("return window.geoViewer.map.getCenter().toArray();")
    assert after != before
    assert abs(after[0] - address[0]) < 0.001 and abs(after[1] - address[1]) < 0.001
    (ARTIFACTS / "map-after-search.png").write_bytes(canvas.screenshot_as_png)


def test_a_key_in_the_page_url_becomes_tile_tokens(
    server: str, browser, client: TestClient, make_department
) -> None:
    """`/map?key=...`: the key leaves the address bar at once, MapLibre's requests carry tile
    tokens (never the key), and the department's private layer renders through them."""
    from tests.layers_helpers import collection, square, upload

    driver = browser
    dept = make_department()
    key = dept.viewer["Authorization"].removeprefix("Bearer ")
    lid = "e2e_" + os.urandom(4).hex()
    area = {"type": "Feature", "geometry": square(117.19, 39.11, 0.04), "properties": {"n": 1}}
    made = upload(client, dept.editor, lid, collection([area]), access="private")
    assert made.status_code == 201, made.text
    driver.get(f"{server}/map?layers=districts,{lid}&key={key}")
    wait_for(driver, MAP_SETTLED, what="the map to load with a key")
    assert key not in driver.execute_script("return window.location.href;")
    assert f"layers=districts,{lid}" in driver.execute_script("return window.location.search;")
    driver.execute_script("window.geoViewer.map.jumpTo({center: [117.21, 39.13], zoom: 12});")
    time.sleep(0.3)
    wait_for(driver, MAP_SETTLED, what="tiles of the private layer")
    drawn = driver.execute_script(
        "return window.geoViewer.map.queryRenderedFeatures()"
        f".filter(f => f.sourceLayer === '{lid}').length;"
    )
    assert drawn > 0
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert not any(key in url for url in urls)
    # Tiles are fetched by MapLibre's workers (outside this page's resource timings): the
    # style's tile URL carries a token, and MapLibre sends no header, so the private layer
    # drawn above came through the token.
    sources = driver.execute_script("return window.geoViewer.map.getStyle().sources;")
    tiles = [url for s in sources.values() for url in s.get("tiles", [])]
    assert tiles and all(
        parse_qs(urlsplit(url).query).get("token") and key not in url for url in tiles
    ), tiles

"""`/api.html` works offline: Swagger UI from our own vendored files (geo/apidocs.py), and the
landing page describes `/api` with the OpenAPI version it really is.

The page used to load Swagger UI from a CDN and was blank on the city's offline machines.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.browser import headless_chromium
from tests.live_server import LiveServer, live_server

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO / "geo" / "static" / "swagger-ui"


def test_api_html_names_no_external_host(client: TestClient) -> None:
    page = client.get("/api.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page.text), page.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert {Path(a).name for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}, assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.content == (VENDOR / Path(asset).name).read_bytes(), asset
    assert "url: '/api'" in page.text


def test_vendored_swagger_ui_matches_package_json() -> None:
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["swagger-ui-dist"]
    assert (VENDOR / "VERSION").read_text().strip() == pinned
    assert "Apache License" in (VENDOR / "LICENSE").read_text()


def test_landing_names_the_openapi_version_served(client: TestClient) -> None:
    links = client.get("/").json()["links"]
    desc = next(link for link in links if link["rel"] == "service-desc")
    version = client.get("/api").json()["openapi"]  # "3.1.0"
    major_minor = ".".join(version.split(".")[:2])
    assert desc["type"] == f"application/vnd.oai.openapi+json;version={major_minor}"


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    with live_server() as srv:
        yield srv


def test_swagger_ui_renders_operations_offline(server: LiveServer) -> None:
    """Headless Chromium: the operations appear, and every request stayed on our server."""
    with headless_chromium() as driver:
        driver.get(server.base + "/api.html")
        deadline = time.monotonic() + 60
        paths: list[str] = []
        while time.monotonic() < deadline and "/addresses/geocode" not in paths:
            paths = driver.execute_script(
                "return [...document.querySelectorAll('.opblock-summary-path')]"
                ".map(e => e.getAttribute('data-path'));"
            )
            time.sleep(0.25)
        assert "/addresses/geocode" in paths and "/health" in paths, paths
        assert len(paths) > 50, paths  # every operation, not a few
        origins = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin);"
        )
        assert set(origins) == {server.base}, set(origins)

"""The /map viewer opens an offline package (.pmtiles) from disk: our server in its own process,
Debian's Chromium driven by chromedriver, MapLibre with software WebGL.

The archive is exported through the API, then its layer is deleted from the service: whatever
the map draws of it afterwards came out of the file, read in the browser by pmtiles' protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.browser import headless_chromium, poll
from tests.conftest import Dept
from tests.layers_helpers import collection, point_features, square, upload
from tests.live_server import live_server

ARTIFACTS = Path(__file__).parent / "artifacts"
POINTS = 20
SETTLED = (
    "const v = window.geoViewer; return !!(v && v.map && v.map.loaded()"
    " && v.map.areTilesLoaded() && v.offline && v.offline.length === 1);"
)


@pytest.fixture(scope="module")
def archive(
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[str], Path, dict]]:
    """An archive of a polygon layer and a points layer on disk, their live style, and then the
    layers deleted from the service."""
    dept = make_department()
    suffix = dept.code.removeprefix("dept-")
    ids = [f"offline_areas_{suffix}", f"offline_points_{suffix}"]
    area = {"type": "Feature", "geometry": square(117.205, 39.1, 0.004), "properties": {"n": 1}}
    for lid, features in zip(ids, ([area], point_features(POINTS)), strict=True):
        made = upload(client, dept.editor, lid, collection(features), access="public")
        assert made.status_code == 201, made.text
    layers = ",".join(ids)
    style = client.get(f"/styles/{layers}.json").json()
    r = client.get(f"/tiles/{layers}.pmtiles", params={"zooms": "10-16"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    path = tmp_path_factory.mktemp("offline") / "tianjin-offline.pmtiles"
    path.write_bytes(r.content)
    for lid in ids:
        gone = client.delete(f"/collections/{lid}", headers=dept.editor)
        assert gone.status_code == 204, gone.text
    assert client.get(f"/tiles/{layers}/14/13525/6255.mvt").status_code == 404
    yield ids, path, style


def test_viewer_draws_an_opened_archive(archive: tuple[list[str], Path, dict]) -> None:
    (areas, points_layer), path, style = archive
    with live_server() as server, headless_chromium() as driver:
        driver.get(server.base + "/map?layers=districts")
        assert poll(driver, "const v = window.geoViewer; return !!(v && v.map);", 60)
        driver.find_element("id", "offline-file").send_keys(str(path))
        if not poll(driver, SETTLED, 60):
            status = driver.find_element("id", "offline-status").text
            raise AssertionError(f"the archive did not load: {status!r}")
        time.sleep(0.5)  # one more frame after the last tile
        assert poll(driver, SETTLED, 30)
        layers = driver.execute_script("return window.geoViewer.offline[0].layers;")
        tiled = [layer for layer in style["layers"] if layer.get("source") == "geo"]
        assert layers == [f"offline-0-{layer['id']}" for layer in tiled]
        # Drawn with the live style's paint (tiles.styles), from the file alone.
        live = {layer["id"]: layer for layer in style["layers"]}
        colour = driver.execute_script(
            f"return window.geoViewer.map.getPaintProperty('offline-0-{points_layer}-circle', "
            "'circle-color');"
        )
        assert colour == live[f"{points_layer}-circle"]["paint"]["circle-color"]
        rendered = driver.execute_script(
            "const v = window.geoViewer;"
            "return v.map.queryRenderedFeatures({layers: v.offline[0].layers})"
            ".map(f => [f.layer.type, f.id, f.sourceLayer]);"
        )
        points = {fid for kind, fid, layer in rendered if layer == points_layer}
        assert len(points) == POINTS, rendered
        assert any(kind == "fill" and layer == areas for kind, _, layer in rendered)
        assert "已打开" in driver.find_element("id", "offline-status").text
        ARTIFACTS.mkdir(exist_ok=True)
        png = driver.find_element("css selector", "#map canvas").screenshot_as_png
        (ARTIFACTS / "map-pmtiles.png").write_bytes(png)
        # Nothing came from anywhere but our server (and the file).
        origins = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin);"
        )
        assert set(origins) <= {server.base}, set(origins)

"""QGIS as a client of a real `geo serve` process: Debian's QGIS, headless
(QT_QPA_PLATFORM=offscreen), loads a public and a private layer through its OGC API - Features
provider and both as vector tiles through our TileJSON and style URL, counts the features and
renders each to a PNG whose pixels are checked where the data is and where it is not.

QGIS runs under /usr/bin/python3 (tests/e2e/qgis_probe.py): python3-qgis is built for the
system Python. scripts/ensure-test-deps.sh installs it; without it this test fails.
The pictures stay in tests/e2e/artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageColor

from tests.conftest import Dept
from tests.layers_helpers import collection, layer_id, point_features, square, upload
from tests.live_server import LiveServer, live_server
from tiles.styles import BACKGROUND

PROBE = Path(__file__).with_name("qgis_probe.py")
ARTIFACTS = Path(__file__).parent / "artifacts"
SYSTEM_PYTHON = "/usr/bin/python3"
POINTS = 30  # x 117.200..117.229, y 39.1000..39.1145
SQUARES = [(117.25, 39.08), (117.27, 39.08)]  # 0.01 degrees each
EXTENT = [117.18, 39.06, 117.30, 39.13]
# Where the picture must show data, and where it must show the background.
DATA = {"p0": [117.2, 39.1], "p20": [117.22, 39.11], "square": [117.255, 39.085]}
EMPTY = {"north_west": [117.19, 39.125], "between_squares": [117.265, 39.085]}
RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
# QGIS paints our style's background layer on every tile that holds data (not on empty tiles).
STYLE_BACKGROUND = ImageColor.getrgb(BACKGROUND)[:3]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    with live_server() as running:
        yield running


@pytest.fixture(scope="module")
def probed(client: TestClient, make_department, server: LiveServer) -> dict[str, Any]:
    dept: Dept = make_department()
    public, private = layer_id("qpub"), layer_id("qpriv")
    r = upload(client, dept.editor, public, collection(point_features(POINTS)), access="public")
    assert r.status_code == 201, r.text
    squares = [
        {"type": "Feature", "geometry": square(x, y), "properties": {"name": f"s{i}"}}
        for i, (x, y) in enumerate(SQUARES)
    ]
    r = upload(client, dept.editor, private, collection(squares), access="private")
    assert r.status_code == 201, r.text
    key = dept.viewer["Authorization"].removeprefix("Bearer ")
    token = httpx.post(
        f"{server.base}/tiles/token", json={"layers": [public, private]}, headers=dept.viewer
    )
    assert token.status_code == 200, token.text
    ARTIFACTS.mkdir(exist_ok=True)
    job = {
        "base": server.base,
        "public": public,
        "private": private,
        "key": key,
        "token": token.json()["token"],
        "extent": EXTENT,
        "points": DATA | EMPTY,
        "oapif_png": str(ARTIFACTS / "qgis-oapif.png"),
        "tiles_png": str(ARTIFACTS / "qgis-tiles.png"),
    }
    runtime = tempfile.mkdtemp(prefix="qgis-runtime-")  # Qt wants a private (0700) folder
    done = subprocess.run(
        [SYSTEM_PYTHON, str(PROBE), json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": runtime},
    )
    shutil.rmtree(runtime, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"job": job}


def coloured(path: str, pixel: list[int], backgrounds: tuple[RGB, ...] = (WHITE,)) -> bool:
    """Whether any pixel within 2 of `pixel` differs from the background colours."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        x0, y0 = pixel
        return any(
            rgb.getpixel((x, y)) not in backgrounds
            for x in range(x0 - 2, x0 + 3)
            for y in range(y0 - 2, y0 + 3)
            if 0 <= x < rgb.width and 0 <= y < rgb.height
        )


def test_qgis_reads_public_and_private_layers_through_oapif(probed: dict[str, Any]) -> None:
    oapif = probed["oapif"]
    assert oapif["public"] == POINTS
    assert oapif["private"] == len(SQUARES)
    assert not oapif["private_anonymous_valid"]  # a 404 without the key


def test_qgis_renders_the_oapif_layers_where_the_data_is(probed: dict[str, Any]) -> None:
    png, at = probed["job"]["oapif_png"], probed["oapif_pixels"]
    for name in DATA:
        assert coloured(png, at[name]), (name, at[name])
    for name in EMPTY:
        assert not coloured(png, at[name]), (name, at[name])


def test_qgis_renders_the_vector_tiles_with_our_style(probed: dict[str, Any]) -> None:
    tiles, job = probed["tiles"], probed["job"]
    assert tiles["valid"] and tiles["styled"], tiles
    assert set(tiles["vector_layers"]) == {job["public"], job["private"]}
    assert "token=" in tiles["tile_url"] and job["key"] not in tiles["tile_url"]
    png, at = job["tiles_png"], probed["tiles_pixels"]
    backgrounds = (WHITE, STYLE_BACKGROUND)
    for name in DATA:
        assert coloured(png, at[name], backgrounds), (name, at[name])
    for name in EMPTY:
        assert not coloured(png, at[name], backgrounds), (name, at[name])

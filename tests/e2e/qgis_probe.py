"""Run by tests/e2e/test_qgis.py under Debian's /usr/bin/python3 (python3-qgis is built for the
system Python, not the project's venv): QGIS, headless, reads our server as a desktop user's
QGIS would, and reports what it saw as one JSON line on stdout.

Input (argv[1], JSON): base URL, the public and private collection ids, a key, a tile token, the
map extent in CRS84, points to locate on the picture, and the two PNG paths to write.
- OGC API - Features (provider "OAPIF"): the public layer anonymously, the private one with the
  key as an extra query parameter (QGIS 3.22 carries a landing page URL's query parameters into
  every request; it has no header option for OAPIF), and the private one without the key.
- Vector tiles (provider "vectortile"): the tile URL template read from our TileJSON, with the
  MapLibre style from our style URL (`styleUrl`, converted by QGIS itself).
Each set is rendered to a PNG; the pixel of each requested point is reported for the test to
check colours.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsBlockingNetworkRequest,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDataSourceUri,
    QgsFillSymbol,
    QgsMapLayer,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsMarkerSymbol,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
    QgsVectorTileLayer,
)
from qgis.PyQt.QtCore import QSize, QUrl
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtNetwork import QNetworkRequest

WEB_MERCATOR = QgsCoordinateReferenceSystem("EPSG:3857")
CRS84 = QgsCoordinateReferenceSystem("OGC:CRS84")
SIZE = QSize(800, 600)
BACKGROUND = QColor(255, 255, 255)


def oapif(base: str, collection: str, name: str) -> QgsVectorLayer:
    return QgsVectorLayer(f"url='{base}' typename='{collection}'", name, "OAPIF")


def count(layer: QgsVectorLayer) -> int:
    return sum(1 for _ in layer.getFeatures()) if layer.isValid() else -1


def get_json(url: str) -> Any:
    request = QgsBlockingNetworkRequest()
    if request.get(QNetworkRequest(QUrl(url))) != QgsBlockingNetworkRequest.NoError:
        raise RuntimeError(f"GET {url}: {request.errorMessage()}")
    return json.loads(bytes(request.reply().content()).decode())


def render(layers: list[QgsMapLayer], extent: QgsRectangle, path: str) -> QgsMapSettings:
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(WEB_MERCATOR)
    settings.setOutputSize(SIZE)
    settings.setBackgroundColor(BACKGROUND)
    settings.setExtent(extent)
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    if not job.renderedImage().save(path, "PNG"):
        raise RuntimeError(f"could not write {path}")
    return settings


def pixels(settings: QgsMapSettings, points: dict[str, list[float]]) -> dict[str, list[int]]:
    """Where each CRS84 point lands on the picture (column, row)."""
    to_map = QgsCoordinateTransform(CRS84, WEB_MERCATOR, QgsProject.instance())
    out = {}
    for name, (lon, lat) in points.items():
        pixel = settings.mapToPixel().transform(to_map.transform(QgsPointXY(lon, lat)))
        out[name] = [round(pixel.x()), round(pixel.y())]
    return out


def main() -> None:
    job = json.loads(sys.argv[1])
    base, public, private = job["base"], job["public"], job["private"]
    app = QgsApplication([], False)
    app.initQgis()
    report: dict[str, Any] = {}

    pub = oapif(base, public, "public")
    priv = oapif(f"{base}/?key={job['key']}", private, "private")
    hidden = oapif(base, private, "private, anonymous")
    report["oapif"] = {
        "public": count(pub),
        "private": count(priv),
        "private_anonymous_valid": hidden.isValid(),
        "public_crs": pub.crs().authid(),
    }
    pub.setRenderer(
        QgsSingleSymbolRenderer(
            QgsMarkerSymbol.createSimple({"color": "255,0,0", "size": "4", "outline_style": "no"})
        )
    )
    priv.setRenderer(
        QgsSingleSymbolRenderer(
            QgsFillSymbol.createSimple({"color": "0,0,255", "outline_style": "no"})
        )
    )
    to_map = QgsCoordinateTransform(CRS84, WEB_MERCATOR, QgsProject.instance())
    extent = to_map.transformBoundingBox(QgsRectangle(*job["extent"]))
    settings = render([pub, priv], extent, job["oapif_png"])
    report["oapif_pixels"] = pixels(settings, job["points"])

    layers = f"{public},{private}"
    tilejson = get_json(f"{base}/tiles/{layers}/tilejson.json?token={job['token']}")
    uri = QgsDataSourceUri()
    uri.setParam("type", "xyz")
    uri.setParam("url", tilejson["tiles"][0])
    uri.setParam("zmin", str(tilejson.get("minzoom", 0)))
    uri.setParam("zmax", str(tilejson.get("maxzoom", 14)))
    uri.setParam("styleUrl", f"{base}/styles/{layers}.json?token={job['token']}")
    tiles = QgsVectorTileLayer(bytes(uri.encodedUri()).decode(), "tiles")
    message, styled = tiles.loadDefaultStyle()
    report["tiles"] = {
        "valid": tiles.isValid(),
        "styled": styled,
        "style_message": message,
        "tile_url": tilejson["tiles"][0],
        "vector_layers": [v["id"] for v in tilejson.get("vector_layers", [])],
    }
    settings = render([tiles], extent, job["tiles_png"])
    report["tiles_pixels"] = pixels(settings, job["points"])
    print(json.dumps(report), flush=True)
    # Leave without QgsApplication.exitQgis(): with provider threads still holding layers it
    # crashes on the way out in QGIS 3.22, after the work is done.
    os._exit(0)


if __name__ == "__main__":
    main()

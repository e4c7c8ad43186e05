"""The /map viewer: one HTML page and its static files, all served from this package.

MapLibre GL comes from tiles/static/vendor (copied from the npm package by `make vendor` and
committed, so the service needs neither npm nor a network at run time).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from geo.openapi import HTML, returns
from geo.routing import api_router

STATIC = Path(__file__).resolve().parents[1] / "static"
ASSETS_PATH = "/map/assets"

router = api_router(tags=["map"])


@router.get(
    "/map",
    summary="Map viewer (MapLibre GL)",
    response_class=FileResponse,
    responses=returns({HTML: None}, "the viewer page"),
)
def map_page(
    layers: str | None = Query(
        default=None,
        description="comma-separated layer ids to show; default: every collection listed",
    ),
) -> FileResponse:
    # `layers` is read by the page's script; declared here so the strict router accepts it.
    # The page itself is tiny; no-cache keeps it in step with the assets after an upgrade.
    return FileResponse(STATIC / "map.html", headers={"Cache-Control": "no-cache"})


def mount_assets(app: FastAPI) -> None:
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC), name="map-assets")

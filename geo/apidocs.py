"""`/api.html`: Swagger UI over `/api`, served from our own files.

FastAPI's default page loads Swagger UI's script, stylesheet and favicon from a CDN, so on the
city's offline machines it was a blank page. The files come from the `swagger-ui-dist` npm
package pinned in package.json; `make vendor` copies them (with their LICENSE, NOTICE and a
VERSION file) into geo/static/swagger-ui/, where they are committed: neither npm nor a network
is needed at run time, as for the map viewer's MapLibre.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

SWAGGER_UI = Path(__file__).resolve().parent / "static" / "swagger-ui"
DOCS_PATH = "/api.html"
ASSETS_PATH = "/swagger-ui"


def install(app: FastAPI) -> None:
    """Serve the documentation page and its assets (create the app with ``docs_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/api"),
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            # The validator badge would send our definition to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_route(DOCS_PATH, swagger_ui, include_in_schema=False)

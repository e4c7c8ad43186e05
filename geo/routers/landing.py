"""OGC API landing page and conformance (health checks: geo.routers.health)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from geo.plugins import load_plugins
from geo.routing import api_router

router = api_router(tags=["service"])

CORE_CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
)


def _oas_version(request: Request) -> str:
    """Major.minor of the OpenAPI document `/api` serves ("3.1.0" -> "3.1")."""
    return ".".join(request.app.openapi_version.split(".")[:2])


@router.get("/", summary="Landing page")
def landing(request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "title": "天津市空间地址与地理信息服务 / Tianjin spatial address and GIS service",
        "description": (
            "The city's shared CGCS2000 coordinate system, standard address library and "
            "departments' thematic layers."
        ),
        "links": [
            {
                "rel": "self",
                "type": "application/json",
                "title": "this document",
                "href": f"{base}/",
            },
            {
                "rel": "service-desc",
                # The version FastAPI writes (3.1), not OGC API Common's example (3.0).
                "type": f"application/vnd.oai.openapi+json;version={_oas_version(request)}",
                "title": "OpenAPI definition",
                "href": f"{base}/api",
            },
            {
                "rel": "service-doc",
                "type": "text/html",
                "title": "API documentation",
                "href": f"{base}/api.html",
            },
            {
                "rel": "conformance",
                "type": "application/json",
                "title": "conformance classes",
                "href": f"{base}/conformance",
            },
            {
                "rel": "data",
                "type": "application/json",
                "title": "collections",
                "href": f"{base}/collections",
            },
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/data",
                "type": "application/json",
                "href": f"{base}/collections",
            },
        ],
    }


@router.get("/conformance", summary="Conformance classes")
def conformance() -> dict[str, list[str]]:
    classes = list(CORE_CONFORMANCE)
    for plugin in load_plugins():
        classes.extend(c for c in plugin.conformance if c not in classes)
    return {"conformsTo": classes}

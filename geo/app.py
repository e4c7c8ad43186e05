"""The app factory: the core's routers, every plugin's routers, one error format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from geo import apidocs, inputs, logs, openapi, spool, version_watch
from geo.db import PinnedReadsMiddleware
from geo.errors import install_handlers
from geo.http import BodyLimitMiddleware
from geo.metrics import MetricsMiddleware
from geo.plugins import load_plugins
from geo.ratelimit import install_rate_limits
from geo.routers import (
    accounts,
    audit,
    crs,
    department_settings,
    departments,
    health,
    landing,
)
from geo.settings import get_settings


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Every worker makes sure the operator's bootstrap key works; it is idempotent and cheap.
    if get_settings().admin_key:
        from geo.bootstrap import install_admin_key

        install_admin_key()
    # Uploads a killed process left in the spool; live siblings' folders are locked (geo.spool).
    spool.sweep()
    # Data versions in memory, kept current by LISTEN/NOTIFY: cache hits need no database.
    await version_watch.start()
    try:
        yield
    finally:
        await version_watch.stop()


def create_app() -> FastAPI:
    app = FastAPI(
        title="Tianjin spatial address and GIS service",
        version="0.1.0",
        openapi_url="/api",
        docs_url=None,  # geo.apidocs serves /api.html from vendored files, not a CDN
        redoc_url=None,
        lifespan=_lifespan,
    )
    install_handlers(app)
    openapi.install(app)
    inputs.install(app)  # inside the body limit: bytes past the limit are never scanned
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(PinnedReadsMiddleware)  # one read replica per request
    for module in (landing, health, crs, departments, accounts, department_settings, audit):
        app.include_router(module.router)
    apidocs.install(app)
    for plugin in load_plugins():
        for router in plugin.routers:
            app.include_router(router)
        if plugin.setup_app:
            plugin.setup_app(app)
    install_rate_limits(app, get_settings())  # last, so outermost: a refusal costs nothing else
    app.add_middleware(MetricsMiddleware)  # times refused requests too
    logs.install(app)  # outside even that: refused requests are logged and timed too
    return app

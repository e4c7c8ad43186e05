"""How the tiles package plugs into the service (see geo.plugins)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from geo.plugins import Plugin
from geo.routing import match_first
from tiles.cli import app as cli_app
from tiles.lane import TileLane
from tiles.pool import close_pools
from tiles.routers import events, offline, ogc, tiles, tokens, viewer


def _setup(app: FastAPI) -> None:
    """The viewer's static files, the tile route's lane and its router matched first (a map
    sends hundreds of tile requests per view), and the tile pools closed when the app stops.

    The lane is added here, after the core's body limit, input guard and pinned reads and
    before its rate limits, metrics and request log (geo.app): it stands between the two, as
    tiles.lane describes."""
    viewer.mount_assets(app)
    app.add_middleware(TileLane, route=tiles.TILE_ROUTE, handlers=app.exception_handlers)
    match_first(app, tiles.router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        context: AbstractAsyncContextManager[Any] = inner(application)
        async with context as state:
            yield state
        await close_pools()

    app.router.lifespan_context = lifespan


plugin = Plugin(
    name="tiles",
    order=30,
    routers=(
        tiles.router,
        offline.router,
        ogc.router,
        tokens.router,
        viewer.router,
        events.router,
    ),
    commands={"tiles": cli_app},
    conformance=ogc.CONFORMANCE,
    setup_app=_setup,
)

"""The tile route's own lane through the app: `GET /tiles/{layers}/{z}/{x}/{y}.mvt` answered
without the framework layers that only pass it along.

A map asks for hundreds of tiles per view, and an uncached tile's Python work is mostly not the
tile's: between the request log and the route's handler sit FastAPI's exception and exit-stack
middlewares, its router (the app's, then the included router's), and our body limit, input
guard and pinned reads, each one call deep for every request. Measured (experiments, not the
bench): a cache hit's CPU in-process fell from 0.17 ms to 0.12-0.14 ms; uncached, on the
benchmark's tiles (uvicorn, 2 workers, tile cache off, 3 pairs in turn on a noisy machine), the
server's own CPU per tile fell from about 0.86 ms to 0.78 ms, next to PostgreSQL's 1.5 ms.

The lane is a pure ASGI middleware inside the request log, the metrics and the rate limits,
which see tile requests as they see every other (tiles.plugin installs it). For a tile request
it does inline what the layers it skips would have done, with their own code:

- the input guard's checks of the path and query string (geo.inputs);
- one read replica for the whole request (geo.db.pinned_reads);
- the route's own handler as its route class builds it (geo.routing.StrictQueryRoute: unknown
  query parameters, numbers, If-None-Match), with the route on the scope for the log line and
  the metrics' route label;
- the app's exception handlers for whatever that raises (geo.errors: one JSON error shape);
  an exception no handler takes goes on up to the request log, which answers 500 as for any
  route.

Everything else goes on to the app: other paths and methods (HEAD included), and a tile request
that carries a body (Content-Length or Transfer-Encoding), which the body limit must see.
tests/test_tile_lane.py sends the same requests with and without the lane and compares the
answers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from geo import inputs
from geo.db import pinned_reads

# Request headers that announce a body.
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


def _handler_for(handlers: Mapping[Any, Callable[..., Any]], exc: Exception) -> Any:
    """The app's handler for `exc`: the first of its classes, most specific first, that has
    one (as Starlette's exception middleware looks it up)."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


class TileLane:
    """`app`: the rest of the middleware stack; `route`: the tile route; `handlers`: the app's
    exception handlers (FastAPI.exception_handlers, read per failure, so handlers added after
    the lane count too)."""

    def __init__(
        self, app: ASGIApp, route: APIRoute, handlers: Mapping[Any, Callable[..., Any]]
    ) -> None:
        self.app = app
        self.route = route
        self.handlers = handlers
        self.handler = route.get_route_handler()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].endswith(".mvt")
            or any(name in _BODY_HEADERS for name, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        match, child = self.route.matches(scope)
        if match is not Match.FULL:
            await self.app(scope, receive, send)
            return
        scope.update(child)
        request = Request(scope, receive, send)
        try:
            inputs.check_text("path", scope["path"], label="the request path")
            inputs.check_query(scope["query_string"].decode("latin-1"))
            with pinned_reads():
                response = await self.handler(request)
        except Exception as exc:
            handler = _handler_for(self.handlers, exc)
            if handler is None:
                raise
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)

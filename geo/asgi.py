"""The one shape of the service's own middlewares: pure ASGI, HTTP requests only.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: bodies and streamed responses (tiles,
exports, server-sent events) pass through untouched and unbuffered, and a request costs one
call per layer. Lifespan and websocket messages go straight to the app.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpMiddleware:
    """Subclasses implement :meth:`handle`, called for HTTP requests only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError

"""Routers whose routes reject query parameters they do not declare.

OGC API - Features requires a 400 for unknown parameters, and a typo such as ``?bbbox=`` silently
ignored is the kind of wrong answer a city service must not give. Every package builds its router
with :func:`api_router`; a route that legitimately takes free-form parameters (OGC property
filters) lists them with ``openapi_extra={"x-free-query": True}``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from geo.errors import ApiError

# Accepted everywhere: `f` picks the output format, `key` authenticates map clients that cannot
# send headers.
ALWAYS_ALLOWED = frozenset({"f", "key"})


def declared_query_names(dependant: Dependant) -> set[str]:
    """Query parameter names of a route, including those its dependencies declare."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= declared_query_names(sub)
    return names


class StrictQueryRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if (self.openapi_extra or {}).get("x-free-query"):
            return handler
        allowed = ALWAYS_ALLOWED | declared_query_names(self.dependant)

        async def strict_handler(request: Request) -> Response:
            unknown = sorted(set(request.query_params.keys()) - allowed)
            if unknown:
                raise ApiError(
                    400,
                    "UnknownParameter",
                    f"unknown query parameter(s): {', '.join(unknown)}",
                    {"unknown": unknown, "allowed": sorted(allowed)},
                )
            return await handler(request)

        return strict_handler


def api_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes are strict about their query parameters."""
    return APIRouter(route_class=StrictQueryRoute, **kwargs)

"""Routers whose routes reject query parameters they do not declare.

OGC API - Features requires a 400 for unknown parameters, and a typo such as ``?bbbox=`` silently
ignored is the kind of wrong answer a city service must not give. Every package builds its router
with :func:`api_router`; a route that legitimately takes free-form parameters (OGC property
filters) lists them with ``openapi_extra={"x-free-query": True}``.

The same routes also keep every declared int or float parameter (query or path) within what
the database and PROJ can take (geo.inputs): an offset of 2^70 or a longitude of nan is a 400
on every route, present or future, without each one having to remember it.

And a route that declares a pydantic body has that body parsed by the service's one JSON parser
(geo.http.parse_json: depth limit, NUL refused) rather than by FastAPI's ``json.loads``, which
knows no depth limit (deep nesting was a RecursionError, a 500). Every GET answers
``If-None-Match`` by geo.preconditions' rule: a read sends its ETag, the route turns it into a
304 when the client has it already.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, get_args

from fastapi import APIRouter, FastAPI, Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from geo import inputs, preconditions
from geo.errors import ApiError
from geo.http import json_body

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# Accepted everywhere: `f` picks the output format, `key` authenticates map clients that cannot
# send headers.
ALWAYS_ALLOWED = frozenset({"f", "key"})


def declared_query_names(dependant: Dependant) -> set[str]:
    """Query parameter names of a route, including those its dependencies declare."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= declared_query_names(sub)
    return names


def _number_kind(annotation: Any) -> str | None:
    """The kind, int or float, of a parameter typed int / float (optional or not), else None."""
    kinds = {a for a in get_args(annotation) if a is not type(None)} or {annotation}
    if kinds == {int}:
        return "int"
    if kinds == {float}:
        return "float"
    return None


@dataclass(frozen=True)
class NumberParam:
    where: str  # "query" or "path"
    name: str
    kind: str  # "int" or "float"
    minimum: int = inputs.BIGINT_MIN
    maximum: int = inputs.BIGINT_MAX


def _bounds(metadata: list[Any]) -> tuple[int, int]:
    """An int parameter's declared ge/gt/le/lt, within bigint, so that the range message names
    the bounds the route really has."""
    low, high = inputs.BIGINT_MIN, inputs.BIGINT_MAX
    for item in metadata:
        if isinstance(getattr(item, "ge", None), int):
            low = max(low, item.ge)
        if isinstance(getattr(item, "gt", None), int):
            low = max(low, item.gt + 1)
        if isinstance(getattr(item, "le", None), int):
            high = min(high, item.le)
        if isinstance(getattr(item, "lt", None), int):
            high = min(high, item.lt - 1)
    return low, high


def numeric_params(dependant: Dependant) -> list[NumberParam]:
    """Every int or float query or path parameter of a route and its dependencies."""
    found = []
    for where, fields in (("query", dependant.query_params), ("path", dependant.path_params)):
        for field in fields:
            kind = _number_kind(field.field_info.annotation)
            if kind == "int":
                low, high = _bounds(field.field_info.metadata)
                found.append(NumberParam(where, field.alias, kind, low, high))
            elif kind == "float":
                found.append(NumberParam(where, field.alias, kind))
    for sub in dependant.dependencies:
        found += numeric_params(sub)
    return found


def check_numbers(request: Request, params: list[NumberParam]) -> None:
    """Integers within PostgreSQL's bigint, floats finite, before FastAPI converts them: its
    int and float accept 2^70, nan and inf, which then fail in SQL or PROJ as a 500. What is
    not a number at all is left to FastAPI's own message."""
    for param in params:
        if param.where == "query":
            values = request.query_params.getlist(param.name)
        elif param.name in request.path_params:
            values = [str(request.path_params[param.name])]
        else:
            values = []
        label = f"{param.where} parameter {param.name}"
        for raw in values:
            try:
                if param.kind == "int":
                    inputs.check_int(param.name, raw, param.minimum, param.maximum, label)
                else:
                    inputs.check_float(param.name, raw, label)
            except ValueError:
                continue


def _json_content(request: Request) -> bool:
    """Whether FastAPI would read this body as JSON: no content type, or application/json or
    application/*+json."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return (
        not kind
        or kind == "application/json"
        or (kind.startswith("application/") and kind.endswith("+json"))
    )


def _parsed_json_body(handler: Handler) -> Handler:
    """Parse a JSON body with geo.http before FastAPI validates it against the route's model.

    FastAPI reads bodies through Starlette's ``Request.json()``, which returns the document it
    keeps in ``Request._json`` when present; storing ours there is the hook Starlette offers."""

    async def parsing_handler(request: Request) -> Response:
        if _json_content(request) and await request.body():
            request._json = await json_body(request)
        return await handler(request)

    return parsing_handler


def _conditional_get(handler: Handler) -> Handler:
    """If-None-Match on a read (geo.preconditions): refused before the work when malformed,
    a 304 after it when the answer's ETag is one the client has."""

    async def conditional_handler(request: Request) -> Response:
        preconditions.check_if_none_match(request)
        return preconditions.conditional(request, await handler(request))

    return conditional_handler


class StrictQueryRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is not None and not isinstance(self.body_field.field_info, params.Form):
            handler = _parsed_json_body(handler)
        if "GET" in (self.methods or ()):
            handler = _conditional_get(handler)
        numbers = numeric_params(self.dependant)
        if (self.openapi_extra or {}).get("x-free-query"):
            if not numbers:
                return handler

            async def numbers_handler(request: Request) -> Response:
                check_numbers(request, numbers)
                return await handler(request)

            return numbers_handler
        allowed = ALWAYS_ALLOWED | declared_query_names(self.dependant)

        async def strict_handler(request: Request) -> Response:
            check_numbers(request, numbers)
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


def match_first(app: FastAPI, router: APIRouter) -> None:
    """Try `router`'s routes (already included in `app`) before every other route of the app.

    FastAPI tries an app's routes in order, each through its included router's bookkeeping (about
    1.7 µs a route): the tile route, tried after 82 others, spent 140 µs finding itself, a third
    of a cached tile's whole time. Moving a router forward changes which route answers a path
    only when a route before it matches that path too; tests/test_tile_hits.py checks that none
    of the app's routes does."""
    routes = app.router.routes
    index = next(i for i, r in enumerate(routes) if getattr(r, "original_router", None) is router)
    routes.insert(0, routes.pop(index))

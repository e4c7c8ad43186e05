"""The cached tile's path through the app: the tile route is matched first, and called without
FastAPI's dependency solving (tiles.routers.tiles.TileRoute), answering exactly as before."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from fastapi import FastAPI, Response
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.routing import Mount, compile_path

from geo.errors import ApiError
from geo.routing import StrictQueryRoute
from tests.conftest import Dept
from tests.layers_helpers import make_points_layer
from tests.tiles_fixtures import tile_at
from tiles.routers import tiles as tile_routes

TILE = tile_at(117.21, 39.105, 11)
PATH_FORMAT = "/tiles/{layers}/{z}/{x}/{y}.mvt"


def _sample(path_format: str) -> str:
    """A concrete path the route matches: each parameter filled by a value of its type."""
    values = {"int": "7", "path": "a/b", "float": "1.5"}
    return re.sub(r"{\w+(?::(\w+))?}", lambda m: values.get(m.group(1) or "", "s1"), path_format)


def _patterns(entry: Any) -> list[tuple[str, re.Pattern[str]]]:
    """(sample path, regex) of every route under one of the app's top-level routes."""
    found = []
    for context in iter_route_contexts([entry]):
        fmt = context.path_format or getattr(context.original_route, "path_format", None)
        if fmt is None:
            continue
        route = context.original_route
        # A mount matches every path under its own (its regex, not its format, says so).
        regex = route.path_regex if isinstance(route, Mount) else compile_path(fmt)[0]
        found.append((_sample(fmt), regex))
    return found


def test_the_tile_router_is_tried_first(app: FastAPI) -> None:
    assert getattr(app.router.routes[0], "original_router", None) is tile_routes.router


def test_moving_the_tile_router_first_shadows_no_route(app: FastAPI) -> None:
    """geo.routing.match_first changes which route answers only for a path that a route of the
    tile router and another route both match: no sample path of either is matched by the
    other's routes."""
    first, *others = app.router.routes
    tiles = _patterns(first)
    rest = [pattern for entry in others for pattern in _patterns(entry)]
    assert len(tiles) >= 4 and len(rest) > 50
    for sample, _ in tiles:
        assert not [r.pattern for _, r in rest if r.match(sample)], sample
    for sample, _ in rest:
        assert not [r.pattern for _, r in tiles if r.match(sample)], sample


@pytest.fixture(scope="module")
def police(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


def _tile_route() -> StrictQueryRoute:
    (route,) = [r for r in tile_routes.router.routes if getattr(r, "path", "") == PATH_FORMAT]
    assert isinstance(route, tile_routes.TileRoute)
    return route


def _answer(
    client: TestClient, handler: Any, path: dict[str, str], query: str, headers: Any
) -> Any:
    """What a route handler makes of one request: the response's status, body and headers, or
    the error it raises (rendered by geo.errors as for every route)."""

    async def call() -> Any:
        async with AsyncExitStack() as stack:
            scope = {
                "type": "http",
                "method": "GET",
                "path": "/tiles/x",
                "query_string": query.encode(),
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                "path_params": path,
                "client": ("127.0.0.1", 1),
                "state": {},
                "fastapi_middleware_astack": stack,
                "fastapi_inner_astack": stack,
                "fastapi_function_astack": stack,
            }

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            try:
                response: Response = await handler(Request(scope, receive))
            except ApiError as error:
                return ("error", error.status, error.code)
            return (response.status_code, bytes(response.body), dict(response.headers))

    assert client.portal is not None
    return client.portal.call(call)


def test_the_tile_handler_answers_as_fastapi_dependency_solving_did(
    client: TestClient, police: Dept
) -> None:
    """The same requests through TileRoute's handler and through a plain StrictQueryRoute of
    the same endpoint (FastAPI solving its parameters): the same answer, error or tile."""
    public = make_points_layer(client, police.editor, n=6)
    private = make_points_layer(client, police.editor, n=6, access="private")
    token = client.post("/tiles/token", json={"layers": [private]}, headers=police.editor).json()[
        "token"
    ]
    ours = _tile_route().get_route_handler()
    fastapi = StrictQueryRoute(
        PATH_FORMAT, tile_routes.get_tile, methods=["GET"], response_class=Response
    ).get_route_handler()
    xyz = {"z": str(TILE.z), "x": str(TILE.x), "y": str(TILE.y)}
    etag = client.get(f"/tiles/{public}/{TILE.z}/{TILE.x}/{TILE.y}.mvt").headers["etag"]
    cases: list[tuple[dict[str, str], str, dict[str, str]]] = [
        ({"layers": public, **xyz}, "", {}),
        ({"layers": public, **xyz}, "v=1", {}),
        ({"layers": public, **xyz}, "v=abc", {}),
        ({"layers": public, **xyz}, "v=", {}),
        ({"layers": public, **xyz}, "v=abc&v=1", {}),
        ({"layers": public, **xyz}, "v=1&v=abc", {}),
        ({"layers": public, **xyz}, "vv=1", {}),
        ({"layers": public, **xyz}, "f=mvt", {}),
        ({"layers": public, **xyz}, "", {"If-None-Match": etag}),
        ({"layers": public, **xyz}, "", {"If-None-Match": "not-an-etag"}),
        ({"layers": public, "z": "a", "x": "1", "y": "1"}, "", {}),
        ({"layers": public, "z": "30", "x": "1", "y": "1"}, "", {}),
        ({"layers": f"{public},{public}", **xyz}, "", {}),
        ({"layers": private, **xyz}, "", {}),
        ({"layers": private, **xyz}, "", police.viewer),
        ({"layers": private, **xyz}, f"token={token}", {}),
        ({"layers": public, **xyz}, f"token={token}", {}),
        ({"layers": private, **xyz}, f"token={token}", police.viewer),
        ({"layers": private, **xyz}, "token=tjt1.forged", {}),
        ({"layers": private, **xyz}, "key=wrong-key", {}),
    ]
    statuses = set()
    for path, query, headers in cases:
        mine = _answer(client, ours, path, query, headers)
        theirs = _answer(client, fastapi, path, query, headers)
        assert mine == theirs, (path, query, headers)
        statuses.add(mine[1] if mine[0] == "error" else mine[0])
    # The cases reach tiles, 304s and each kind of refusal.
    assert {200, 304, 400, 401, 403, 404} <= statuses

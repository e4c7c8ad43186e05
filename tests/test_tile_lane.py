"""tiles.lane: tile GETs answered ahead of the app's routing, exactly as the route answers them
without it, logged and counted as before."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from geo.app import create_app
from tests.conftest import Dept
from tests.layers_helpers import make_points_layer
from tests.tiles_fixtures import tile_at
from tiles.lane import TileLane
from tiles.routers import tiles as tile_routes

TILE = tile_at(117.21, 39.105, 11)
XYZ = f"{TILE.z}/{TILE.x}/{TILE.y}"
# Headers that differ between any two answers, and the rate limit's count of requests left,
# which each app keeps for itself.
UNIQUE = ("date", "x-request-id", "ratelimit")


def _app_without_lane() -> FastAPI:
    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if m.cls is not TileLane]
    return app


@pytest.fixture(scope="module")
def plain(client: TestClient) -> Iterator[TestClient]:
    """The app as it was before the lane: every tile request routed by FastAPI."""
    with TestClient(_app_without_lane()) as plain_client:
        yield plain_client


@pytest.fixture(scope="module")
def police(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


def _answer(client: TestClient, method: str, url: str, **kwargs: object) -> tuple[object, ...]:
    r = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    headers = {k: v for k, v in r.headers.items() if k not in UNIQUE}
    return r.status_code, r.content, headers


def test_the_lane_sits_inside_the_log_metrics_and_limits_and_outside_the_rest(
    app: FastAPI,
) -> None:
    names = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[union-attr]
    lane = names.index("TileLane")
    assert {"RequestLogMiddleware", "MetricsMiddleware"} <= set(names[:lane])
    assert set(names[lane + 1 :]) == {
        "PinnedReadsMiddleware",
        "BodyLimitMiddleware",
        "InputGuardMiddleware",
    }


def test_the_lane_answers_every_request_as_the_routed_app_does(
    client: TestClient, plain: TestClient, police: Dept
) -> None:
    """The same requests through the app (with its lane) and through the app without it: the
    same status, body and headers, tile or error."""
    public = make_points_layer(client, police.editor, n=6)
    private = make_points_layer(client, police.editor, n=6, access="private")
    token = client.post("/tiles/token", json={"layers": [private]}, headers=police.editor).json()[
        "token"
    ]
    etag = client.get(f"/tiles/{public}/{XYZ}.mvt").headers["etag"]
    cases: list[tuple[str, str, dict[str, object]]] = [
        ("GET", f"/tiles/{public}/{XYZ}.mvt", {}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt?v=1", {}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt?v=abc", {}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt?vv=1", {}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt?v=%00", {}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt?f=mvt", {}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt", {"headers": {"If-None-Match": etag}}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt", {"headers": {"If-None-Match": "no-quotes"}}),
        ("GET", f"/tiles/{public}/3/0/0.mvt", {}),
        ("GET", f"/tiles/{public}/a/1/1.mvt", {}),
        ("GET", f"/tiles/{public}/30/1/1.mvt", {}),
        ("GET", f"/tiles/{public},{public}/{XYZ}.mvt", {}),
        ("GET", f"/tiles/a%01b/{XYZ}.mvt", {}),
        ("GET", f"/tiles/no_such_layer/{XYZ}.mvt", {}),
        ("GET", f"/tiles/{private}/{XYZ}.mvt", {}),
        ("GET", f"/tiles/{private}/{XYZ}.mvt", {"headers": police.viewer}),
        ("GET", f"/tiles/{private}/{XYZ}.mvt?token={token}", {}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt?token={token}", {}),
        ("GET", f"/tiles/{private}/{XYZ}.mvt?token={token}", {"headers": police.viewer}),
        ("GET", f"/tiles/{private}/{XYZ}.mvt?token=tjt1.forged", {}),
        ("GET", f"/tiles/{private}/{XYZ}.mvt?key=wrong-key", {}),
        # Not the lane's: HEAD, a body, another route's .mvt path.
        ("HEAD", f"/tiles/{public}/{XYZ}.mvt", {}),
        ("GET", f"/tiles/{public}/{XYZ}.mvt", {"content": b"{}"}),
        ("GET", f"/collections/{public}/tiles/WebMercatorQuad/{XYZ}.mvt", {}),
    ]
    statuses = set()
    for method, url, kwargs in cases:
        mine = _answer(client, method, url, **kwargs)
        theirs = _answer(plain, method, url, **kwargs)
        assert mine == theirs, (method, url, kwargs)
        statuses.add(mine[0])
    # The cases reach tiles, empty tiles, 304s and each kind of refusal.
    assert {200, 204, 304, 400, 401, 403, 404} <= statuses


def test_tile_gets_are_answered_by_the_lane_not_the_router(client: TestClient) -> None:
    """With the tile route taken out of the app's routing, a GET still gets its tile (the
    lane's) and a HEAD, which the lane leaves to the app, finds no route."""
    app = create_app()
    routes = app.router.routes
    routes[:] = [r for r in routes if getattr(r, "original_router", None) is not tile_routes.router]
    with TestClient(app) as lane_only:
        assert lane_only.get(f"/tiles/districts/{XYZ}.mvt").status_code in (200, 204)
        assert lane_only.head(f"/tiles/districts/{XYZ}.mvt").status_code == 404


def test_a_tile_from_the_lane_is_logged_and_counted_under_its_route(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    route = tile_routes.TILE_ROUTE.path
    labels = {"method": "GET", "route": route, "status": "400"}
    count = "geo_http_request_duration_seconds_count"
    before = REGISTRY.get_sample_value(count, labels) or 0.0
    with caplog.at_level(logging.INFO, logger="geo.request"):
        r = client.get(f"/tiles/districts/{XYZ}.mvt?v=x", headers={"X-Request-ID": "lane-1"})
    assert r.status_code == 400 and r.headers["x-request-id"] == "lane-1"
    assert "ratelimit" in r.headers  # the rate limits, outside the lane, counted it
    (line,) = [x for x in caplog.records if x.name == "geo.request" and x.route == route]
    assert line.status == 400  # type: ignore[attr-defined]
    assert REGISTRY.get_sample_value(count, labels) == before + 1

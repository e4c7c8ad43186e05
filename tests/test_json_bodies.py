"""Every route that takes a JSON body parses it with the one parser, geo.http.parse_json.

The routes are read from the OpenAPI document, so a route added later is covered without
being listed here: a body nested deeper than GEO_MAX_JSON_DEPTH is a 400 `TooDeep`, a body
deeper than orjson reads and a truncated one are 400 `MalformedJSON`, never FastAPI's own
parse (no depth limit: 5,000 levels were a RecursionError, a 500) nor a route's copy.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo.settings import get_settings

JSON_TYPES = ("application/json", "application/geo+json", "application/merge-patch+json")


def _json_routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/api").json()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            if any(kind in content for kind in JSON_TYPES):
                found.append((method.upper(), path))
    return sorted(found)


def _deep(levels: int) -> bytes:
    return b'{"a": ' * levels + b"1" + b"}" * levels


def _send(client: TestClient, headers: dict[str, str], method: str, path: str, body: bytes) -> Any:
    url = re.sub(r"\{[^}]+\}", "1", path)
    return client.request(
        method,
        url,
        content=body,
        params={"from": "CRS84", "to": "EPSG:4490"} if path == "/crs/transform" else None,
        headers={**headers, "Content-Type": "application/json", "If-Match": '"1"'},
    )


def test_the_routes_are_found(client: TestClient) -> None:
    routes = _json_routes(client)
    for expected in [
        ("POST", "/crs/transform"),
        ("PATCH", "/departments/{code}"),
        ("POST", "/departments"),
        ("POST", "/addresses"),
        ("POST", "/overlay"),
        ("PUT", "/collections/{collection_id}/items/{feature_id}"),
        ("POST", "/tiles/token"),
    ]:
        assert expected in routes


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_deep(get_settings().max_json_depth + 1), "TooDeep"),
        (_deep(5_000), "MalformedJSON"),
        (b'{"a": [1, 2', "MalformedJSON"),
    ],
    ids=["deeper-than-the-limit", "deeper-than-orjson", "truncated"],
)
def test_every_json_route_uses_the_parser(
    client: TestClient, admin_headers: dict[str, str], body: bytes, code: str
) -> None:
    wrong = {}
    for method, path in _json_routes(client):
        response = _send(client, admin_headers, method, path, body)
        if response.status_code != 400 or response.json()["code"] != code:
            wrong[f"{method} {path}"] = (response.status_code, response.text[:200])
    assert not wrong, wrong


def test_a_body_within_the_limit_still_reaches_the_route(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    """The parsed document is the one the route's model validates."""
    response = client.post(
        "/departments", json={"name": "深度测试局", "code": "json-depth"}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    unknown = client.post(
        "/departments", json={"name": "x", "code": "json-depth2", "x": {}}, headers=admin_headers
    )
    assert unknown.status_code == 400, unknown.text

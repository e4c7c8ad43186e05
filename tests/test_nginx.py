"""The shipped nginx config (deploy/nginx/geo.conf) with Debian's nginx in front of a real
`geo serve`: versioned public tiles come from nginx's cache and stay correct after an edit;
anything private, or asked with a credential, is never stored (checked in the cache directory
too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.nginx_proxy import NginxProxy, nginx_proxy
from tests.conftest import Dept
from tests.layers_helpers import make_points_layer, point_features
from tests.live_server import live_server
from tests.tiles_fixtures import decode, tile_at

TILE = tile_at(117.21, 39.105, 11)
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def police(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


@pytest.fixture(scope="module")
def proxy() -> Iterator[NginxProxy]:
    with live_server() as server, nginx_proxy(server.base.removeprefix("http://")) as nginx:
        yield nginx


def tile_url(proxy: NginxProxy, layers: str, **kwargs: object) -> str:
    """The tile URL the TileJSON fetched through nginx hands out, for TILE."""
    doc = httpx.get(f"{proxy.base}/tiles/{layers}/tilejson.json", **kwargs)  # type: ignore[arg-type]
    assert doc.status_code == 200, doc.text
    (template,) = doc.json()["tiles"]
    return (
        template.replace("{z}", str(TILE.z)).replace("{x}", str(TILE.x)).replace("{y}", str(TILE.y))
    )


def features(response: httpx.Response) -> int:
    return sum(len(v["features"]) for v in decode(response.content).values())


def test_versioned_public_tiles_are_cached_and_an_edit_moves_the_url(
    client: TestClient, proxy: NginxProxy, police: Dept
) -> None:
    lid = make_points_layer(client, police.editor, n=10)
    before = tile_url(proxy, lid)
    # The service built the URL from nginx's Host: clients stay on the proxy.
    assert before.startswith(f"{proxy.base}/tiles/{lid}/") and "?v=" in before
    first, second = httpx.get(before), httpx.get(before)
    assert first.status_code == second.status_code == 200
    assert first.headers["cache-control"] == IMMUTABLE
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert features(second) == 10
    assert before in proxy.cached_keys()  # the cache key is the full URL

    feature = point_features(1, start=10)[0]
    created = httpx.post(
        f"{proxy.base}/collections/{lid}/items", json=feature, headers=police.editor
    )
    assert created.status_code == 201, created.text

    # TileJSON is not cached (the service marks it nothing): it names the new version at once.
    after = tile_url(proxy, lid)
    assert after != before
    fresh = httpx.get(after)
    assert fresh.headers["x-cache-status"] == "MISS"
    assert features(fresh) == 11
    again = httpx.get(after)
    assert again.headers["x-cache-status"] == "HIT" and features(again) == 11
    # The old URL still holds the old tile in nginx (immutable: that is its meaning), but no
    # current document points at it.
    old = httpx.get(before)
    assert old.headers["x-cache-status"] == "HIT" and features(old) == 10
    style = httpx.get(f"{proxy.base}/styles/{lid}.json").json()
    assert style["sources"]["geo"]["tiles"][0].replace("{z}/{x}/{y}", "") != before


def test_private_tiles_and_credentialed_requests_are_never_stored(
    client: TestClient, proxy: NginxProxy, police: Dept
) -> None:
    private = make_points_layer(client, police.editor, n=5, access="private")
    public = make_points_layer(client, police.editor, n=5)
    key = police.viewer["Authorization"].removeprefix("Bearer ")
    by_header = tile_url(proxy, private, headers=police.viewer)
    by_token = tile_url(proxy, private, params={"key": key})
    assert "token=" in by_token
    for _ in range(3):
        for response in (
            httpx.get(by_header, headers=police.viewer),
            httpx.get(by_token),
            httpx.get(by_header, params={"key": key}),
        ):
            assert response.status_code == 200, response.text
            assert response.headers["cache-control"] == "private, no-store"
            assert response.headers["x-cache-status"] == "BYPASS"
            assert features(response) == 5
        # Without a credential it does not exist, and the 404 is not stored either.
        missing = httpx.get(by_header)
        assert missing.status_code == 404
        assert missing.headers["x-cache-status"] == "MISS"

    # A public tile asked with a credential (a header, a cookie) is not stored: its answer is
    # for that caller; asked without one, it is.
    url = tile_url(proxy, public)
    assert httpx.get(url, headers=police.viewer).headers["x-cache-status"] == "BYPASS"
    assert httpx.get(url, headers={"Cookie": "s=1"}).headers["x-cache-status"] == "BYPASS"
    assert not any(public in key for key in proxy.cached_keys())
    assert httpx.get(url).headers["x-cache-status"] == "MISS"
    assert httpx.get(url).headers["x-cache-status"] == "HIT"

    keys = proxy.cached_keys()
    assert any(public in k for k in keys)
    assert not any(private in k for k in keys), keys
    assert not any("token=" in k or "key=" in k for k in keys), keys

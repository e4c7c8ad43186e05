"""Versioned tile URLs (issue 12 part 2): documents name the layers' data version, a tile at the
current version of public layers is immutable, an old version gets today's tile briefly, and a
non-public layer is never marked for a shared cache."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Dept
from tests.layers_helpers import make_points_layer, point_features
from tests.tiles_fixtures import decode, tile_at

TILE = tile_at(117.21, 39.105, 11)
PATH = f"{TILE.z}/{TILE.x}/{TILE.y}.mvt"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def police(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


@pytest.fixture(scope="module")
def health(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


def version_in(url: str) -> int:
    (value,) = parse_qs(urlsplit(url).query)["v"]
    return int(value)


def template_version(client: TestClient, layers: str, **kwargs: object) -> int:
    (template,) = client.get(f"/tiles/{layers}/tilejson.json", **kwargs).json()["tiles"]  # type: ignore[arg-type]
    return version_in(template)


def count(response: object) -> int:
    return sum(len(v["features"]) for v in decode(response.content).values())  # type: ignore[attr-defined]


def add_point(client: TestClient, who: Dept, lid: str, start: int) -> None:
    feature = point_features(1, start=start)[0]
    created = client.post(f"/collections/{lid}/items", json=feature, headers=who.editor)
    assert created.status_code == 201, created.text


def test_documents_name_the_current_version(client: TestClient, police: Dept) -> None:
    lid = make_points_layer(client, police.editor, n=4)
    version = template_version(client, lid)
    assert version >= 1
    style = client.get(f"/styles/{lid}.json").json()
    assert version_in(style["sources"]["geo"]["tiles"][0]) == version
    tileset = client.get(f"/collections/{lid}/tiles/WebMercatorQuad").json()
    item = next(link for link in tileset["links"] if link["rel"] == "item")
    assert version_in(item["href"]) == version
    # A template with a `?` still fills in as a URL MapLibre can request.
    assert item["href"].split("?")[0].endswith("/{tileMatrix}/{tileRow}/{tileCol}")

    add_point(client, police, lid, start=10)
    assert template_version(client, lid) > version


def test_current_version_is_immutable_and_an_edit_moves_the_url(
    client: TestClient, police: Dept
) -> None:
    lid = make_points_layer(client, police.editor, n=10)
    old = template_version(client, lid)
    at_old = client.get(f"/tiles/{lid}/{PATH}?v={old}")
    assert at_old.status_code == 200
    assert at_old.headers["cache-control"] == IMMUTABLE
    assert count(at_old) == 10
    unversioned = client.get(f"/tiles/{lid}/{PATH}")
    assert unversioned.headers["cache-control"] == "public, max-age=60"
    assert unversioned.headers["etag"] == at_old.headers["etag"]

    add_point(client, police, lid, start=11)
    new = template_version(client, lid)
    assert new > old
    current = client.get(f"/tiles/{lid}/{PATH}?v={new}")
    assert current.headers["cache-control"] == IMMUTABLE
    assert count(current) == 11
    # An old version: today's tile, kept briefly, never a redirect.
    stale = client.get(f"/tiles/{lid}/{PATH}?v={old}", follow_redirects=False)
    assert stale.status_code == 200
    assert stale.headers["cache-control"] == "public, max-age=10"
    assert count(stale) == 11
    assert stale.headers["etag"] == current.headers["etag"]
    # A version ahead of ours (a worker or replica behind the edit) is kept by no one.
    ahead = client.get(f"/tiles/{lid}/{PATH}?v={new + 1}")
    assert ahead.status_code == 200
    assert ahead.headers["cache-control"] == "no-store"
    # OGC API - Tiles answers alike.
    ogc = f"/collections/{lid}/tiles/WebMercatorQuad/{TILE.z}/{TILE.y}/{TILE.x}"
    assert client.get(f"{ogc}?v={new}").headers["cache-control"] == IMMUTABLE
    assert client.get(f"{ogc}?v={old}").headers["cache-control"] == "public, max-age=10"


def test_a_composite_version_changes_with_any_of_its_layers(
    client: TestClient, police: Dept
) -> None:
    a = make_points_layer(client, police.editor, n=3)
    b = make_points_layer(client, police.editor, n=3)
    both = template_version(client, f"{a},{b}")
    assert both == template_version(client, a) + template_version(client, b)
    composite = client.get(f"/tiles/{a},{b}/{PATH}?v={both}")
    assert composite.headers["cache-control"] == IMMUTABLE

    add_point(client, police, b, start=20)
    after = template_version(client, f"{a},{b}")
    assert after > both
    assert client.get(f"/tiles/{a},{b}/{PATH}?v={both}").headers["cache-control"] == (
        "public, max-age=10"
    )
    fresh = client.get(f"/tiles/{a},{b}/{PATH}?v={after}")
    assert fresh.headers["cache-control"] == IMMUTABLE
    assert [len(v["features"]) for v in decode(fresh.content).values()] == [3, 4]


def test_private_and_shared_layers_stay_private_at_any_version(
    client: TestClient, police: Dept, health: Dept
) -> None:
    private = make_points_layer(client, police.editor, n=3, access="private")
    shared = make_points_layer(client, police.editor, n=3, access="shared", shared_with=health.code)
    public = make_points_layer(client, police.editor, n=3)
    for layers, reader in ((private, police), (shared, health), (f"{public},{private}", police)):
        version = template_version(client, layers, headers=reader.viewer)
        for v in (version, version - 1, version + 1):
            tile = client.get(f"/tiles/{layers}/{PATH}?v={v}", headers=reader.viewer)
            assert tile.status_code == 200, tile.text
            assert tile.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize(
    "raw", ["abc", "1.5", "-1", "", " 1", "1e3", "0x10", "9223372036854775808", "1" * 20]
)
def test_a_version_that_is_not_a_number_is_a_400(client: TestClient, raw: str) -> None:
    for url in (
        f"/tiles/districts/{PATH}",
        f"/collections/districts/tiles/WebMercatorQuad/{TILE.z}/{TILE.y}/{TILE.x}",
    ):
        response = client.get(url, params={"v": raw})
        assert response.status_code == 400, (url, raw, response.text)
        body = response.json()
        assert body["code"] == "InvalidParameterValue"
        assert body["details"] == {"parameter": "v", "value": raw}


def test_the_largest_version_is_accepted(client: TestClient) -> None:
    response = client.get(f"/tiles/districts/{PATH}", params={"v": str(2**63 - 1)})
    assert response.status_code in (200, 204)
    assert response.headers["cache-control"] == "no-store"

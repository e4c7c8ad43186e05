"""Part 4 writes: POST / PUT / PATCH (merge patch) / DELETE with ETag and If-Match, history,
versions bumped for caches, audit entries, and refusals for callers who may not write."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo import crs, versions
from geo.db import session_scope
from tests.layers_helpers import make_points_layer


@pytest.fixture()
def setup(client: TestClient, make_department):
    dept = make_department()
    lid = make_points_layer(client, dept.editor, 3, access="public")
    return dept, lid


def _version(lid: str) -> int:
    with session_scope() as s:
        return versions.versions(s, [f"layer:{lid}"])[f"layer:{lid}"]


def _feature(x=117.25, y=39.12, **props):
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [x, y]},
        "properties": {"name": "new", "pop": 1, "score": 0.5, **props},
    }


def test_create_replace_patch_delete_with_history(client: TestClient, setup) -> None:
    dept, lid = setup
    before = _version(lid)
    r = client.post(f"/collections/{lid}/items", json=_feature(), headers=dept.editor)
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    assert r.headers["etag"] == '"1"' and r.headers["location"].endswith(f"/items/{fid}")
    assert _version(lid) == before + 1

    r = client.put(
        f"/collections/{lid}/items/{fid}",
        json=_feature(name="renamed"),
        headers={**dept.editor, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"' and r.json()["properties"]["name"] == "renamed"

    r = client.patch(
        f"/collections/{lid}/items/{fid}",
        json={"properties": {"pop": 7, "score": None}},
        headers={**dept.editor, "If-Match": '"2"', "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["properties"] == {"name": "renamed", "pop": 7, "score": None}
    assert r.headers["etag"] == '"3"'

    history = client.get(f"/collections/{lid}/items/{fid}/history").json()["versions"]
    assert [v["version"] for v in history] == [3, 2, 1]
    assert history[0]["current"] and history[2]["properties"]["name"] == "new"
    assert history[1]["superseded_by"] == "update"

    r = client.delete(f"/collections/{lid}/items/{fid}", headers={**dept.editor, "If-Match": '"3"'})
    assert r.status_code == 204
    assert client.get(f"/collections/{lid}/items/{fid}").status_code == 404
    history = client.get(f"/collections/{lid}/items/{fid}/history").json()["versions"]
    assert [v["superseded_by"] for v in history] == ["delete", "update", "update"]
    with session_scope() as s:
        actions = (
            s.execute(
                text("SELECT action FROM audit_log WHERE target = :t ORDER BY id"),
                {"t": f"{lid}/{fid}"},
            )
            .scalars()
            .all()
        )
    assert actions == ["feature.create", "feature.update", "feature.update", "feature.delete"]


def test_stale_if_match_is_412_and_changes_nothing(client: TestClient, setup) -> None:
    dept, lid = setup
    fid = client.get(f"/collections/{lid}/items").json()["features"][0]["id"]
    ok = client.patch(
        f"/collections/{lid}/items/{fid}", json={"properties": {"pop": 5}}, headers=dept.editor
    )
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    for method in ("put", "patch", "delete"):
        kwargs = (
            {}
            if method == "delete"
            else {"json": _feature() if method == "put" else {"properties": {"pop": 9}}}
        )
        r = getattr(client, method)(
            f"/collections/{lid}/items/{fid}", headers={**dept.editor, "If-Match": '"1"'}, **kwargs
        )
        assert r.status_code == 412, (method, r.text)
        assert r.json()["code"] == "PreconditionFailed" and r.headers["etag"] == '"2"'
    assert client.get(f"/collections/{lid}/items/{fid}").json()["properties"]["pop"] == 5


def test_content_crs_input(client: TestClient, setup) -> None:
    dept, lid = setup
    gx, gy = crs.transform_xy([117.25], [39.12], "EPSG:4490", "GCJ02")
    r = client.post(
        f"/collections/{lid}/items",
        json=_feature(float(gx[0]), float(gy[0])),
        headers={**dept.editor, "Content-Crs": "<GCJ02>"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["geometry"]["coordinates"] == pytest.approx([117.25, 39.12], abs=1e-7)


def test_bad_writes(client: TestClient, setup, make_department) -> None:
    dept, lid = setup
    url = f"/collections/{lid}/items"
    point = b'"geometry": {"type": "Point", "coordinates": [117.2, 39.1]}'
    open_ring = b"[[[117.2,39.1],[117.3,39.1],[117.3,39.2],[117.2,39.15]]]"
    cases = [
        (b'{"type": "Feature",', 400),
        (b'{"type": "FeatureCollection", "features": []}', 400),
        (
            b'{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
            + open_ring
            + b'}, "properties": {}}',
            422,
        ),
        (b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [39.1, 117.2]}}', 422),
        (b'{"type": "Feature", ' + point + b', "properties": {"pop": "x"}}', 422),
        (b'{"type": "Feature", ' + point + b', "properties": {"nope": 1}}', 422),
        (
            b'{"type": "Feature", '
            + point
            + b', "properties": {"a": '
            + b"[" * 50
            + b"]" * 50
            + b"}}",
            400,
        ),
    ]
    with session_scope() as s:
        before = s.execute(text(f'SELECT count(*) FROM layerdata."l_{lid}"')).scalar()
    for body, status in cases:
        r = client.post(
            url, content=body, headers={**dept.editor, "Content-Type": "application/geo+json"}
        )
        assert r.status_code == status, (body[:60], r.text)
        assert set(r.json()) == {"code", "message", "details"}
    r = client.post(url, json=_feature(), headers={**dept.editor, "Content-Crs": "<EPSG:12345>"})
    assert r.status_code == 400 and r.json()["code"] == "UnknownCRS"
    other = make_department()
    assert client.post(url, json=_feature(), headers=other.editor).status_code == 403
    assert client.post(url, json=_feature(), headers=dept.viewer).status_code == 403
    assert client.post(url, json=_feature()).status_code == 401
    with session_scope() as s:
        assert s.execute(text(f'SELECT count(*) FROM layerdata."l_{lid}"')).scalar() == before


def test_private_layer_writes_are_404_for_others(client: TestClient, make_department) -> None:
    owner, other = make_department(), make_department()
    lid = make_points_layer(client, owner.editor, 2, access="private")
    url = f"/collections/{lid}/items"
    assert client.post(url, json=_feature(), headers=other.editor).status_code == 404
    assert client.put(f"{url}/1", json=_feature(), headers=other.editor).status_code == 404
    assert (
        client.patch(f"{url}/1", json={"properties": {}}, headers=other.editor).status_code == 404
    )
    assert client.delete(f"{url}/1", headers=other.editor).status_code == 404
    assert client.get(f"{url}/1/history", headers=other.editor).status_code == 404

"""A layer's changes (GET /collections/{id}/changes): uploads, feature writes and catalogue
edits from the audit trail, newest first, paged; all for the owner, its own for a grantee."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from geo.audit.listing import layer_events
from geo.db import session_scope
from layers.changes import ACTIONS
from tests.address_library import plans, statements
from tests.conftest import Dept
from tests.layers_helpers import collection, make_points_layer, point_features, upload


def feature(x: float = 117.25, y: float = 39.12, name: str = "new") -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [x, y]},
        "properties": {"name": name, "pop": 1, "score": 0.5},
    }


def changes_of(client: TestClient, lid: str, headers: dict[str, str], **params: Any) -> Any:
    r = client.get(f"/collections/{lid}/changes", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_uploads_and_feature_writes_newest_first(client: TestClient, make_department) -> None:
    dept = make_department()
    lid = make_points_layer(client, dept.editor, 5, access="private")
    r = upload(client, dept.editor, lid, collection(point_features(3, start=5)), mode="append")
    assert r.status_code == 200, r.text
    fid = client.post(f"/collections/{lid}/items", json=feature(), headers=dept.editor).json()["id"]
    r = client.patch(
        f"/collections/{lid}/items/{fid}",
        json={"properties": {"pop": 7}},
        headers={**dept.editor, "If-Match": '"1"', "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    r = client.delete(f"/collections/{lid}/items/{fid}", headers={**dept.editor, "If-Match": '"2"'})
    assert r.status_code == 204
    # Reads of the private layer are audited too, and are no change.
    assert client.get(f"/collections/{lid}/items", headers=dept.viewer).status_code == 200

    page = changes_of(client, lid, dept.viewer)
    assert page["scope"] == "all" and page["more"] is False
    found = [(c["action"], c["feature"]) for c in page["changes"]]
    assert found[:3] == [("feature.delete", fid), ("feature.update", fid), ("feature.create", fid)]
    uploads = [c for c in page["changes"] if c["action"] == "layer.upload"]
    assert [u["details"]["mode"] for u in uploads] == ["append", "create"]
    assert [u["details"]["features"] for u in uploads] == [3, 5]
    assert all(c["department"] == dept.code for c in page["changes"])
    assert "layer.read" not in {c["action"] for c in page["changes"]}

    # Paged: two at a time, `more` until the last.
    first = changes_of(client, lid, dept.viewer, limit=2)
    second = changes_of(client, lid, dept.viewer, limit=2, offset=2)
    assert first["more"] and [c["id"] for c in first["changes"] + second["changes"]] == [
        c["id"] for c in page["changes"][:4]
    ]


def test_a_grantee_sees_its_own_changes_only(
    client: TestClient, make_department: Callable[..., Dept]
) -> None:
    owner, friend, stranger = make_department(), make_department(), make_department()
    lid = make_points_layer(client, owner.editor, 3, access="private")
    r = client.post(
        f"/collections/{lid}/grants",
        json={"grantee": friend.code, "level": "edit"},
        headers=owner.editor,
    )
    assert r.status_code == 201, r.text
    assert changes_of(client, lid, friend.viewer)["changes"] == []
    r = client.post(f"/collections/{lid}/items", json=feature(), headers=friend.editor)
    assert r.status_code == 201, r.text
    mine = changes_of(client, lid, friend.viewer)
    assert mine["scope"] == "own-department"
    assert [(c["action"], c["department"]) for c in mine["changes"]] == [
        ("feature.create", friend.code)
    ]
    # The owner sees both departments' changes.
    everything = changes_of(client, lid, owner.viewer)["changes"]
    assert {c["department"] for c in everything} == {owner.code, friend.code}
    # No grant: the layer is not there, as for its items.
    r = client.get(f"/collections/{lid}/changes", headers=stranger.viewer)
    assert r.status_code == 404 and r.json()["code"] == "NotFound"


def test_bad_paging_and_anonymous_callers(client: TestClient, make_department) -> None:
    dept = make_department()
    lid = make_points_layer(client, dept.editor, 2)
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "x"}):
        r = client.get(f"/collections/{lid}/changes", params=params, headers=dept.viewer)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["code"] == "InvalidParameterValue"
    assert client.get(f"/collections/{lid}/changes").status_code == 401
    r = client.get("/collections/no_such_layer/changes", headers=dept.viewer)
    assert r.status_code == 404


def test_a_page_of_changes_walks_the_layer_index() -> None:
    """The statement layer_events sends, explained: the layer's index, read newest first in the
    page's order, no sort of every entry of the layer."""
    with statements() as seen, session_scope() as session:
        layer_events(session, "roads", ACTIONS, None, 10, 0)
    sql, params = next((s, p) for s, p in seen if "audit_log" in s)
    plan = plans(sql, params)
    assert "ix_audit_log_layer_at" in plan, plan
    assert "Backward" in plan and "Sort" not in plan, plan

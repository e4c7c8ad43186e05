"""The catalogue: registering layers, graded access (404 for what a caller may not see),
owners changing metadata and access, admins seeing everything, audit of writes and reads."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.db import session_scope
from tests.layers_helpers import layer_id, make_points_layer


def _register(client, headers, lid, access="private", shared_with=(), **extra):
    body = {
        "id": lid,
        "title": f"图层 {lid}",
        "geometry_type": "Point",
        "properties": [
            {"name": "名称", "type": "string", "required": True},
            {"name": "人数", "type": "integer"},
        ],
        "access": access,
        "shared_with": list(shared_with),
        **extra,
    }
    return client.post("/collections", json=body, headers=headers)


def test_register_creates_typed_table_and_history(client: TestClient, make_department) -> None:
    dept = make_department()
    lid = layer_id()
    r = _register(client, dept.editor, lid)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["owner"] == dept.code and doc["access"] == "private"
    assert r.headers["location"].endswith(f"/collections/{lid}")
    with session_scope() as s:
        cols = dict(
            s.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'layerdata' AND table_name = :t"
                ),
                {"t": f"l_{lid}"},
            ).all()
        )
        assert cols["名称"] == "text" and cols["人数"] == "bigint"
        assert {"id", "geom", "geom_3857", "version", "updated_by", "updated_at"} <= set(cols)
        gist = s.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE schemaname='layerdata' AND tablename=:t "
                "AND indexdef LIKE '%gist%'"
            ),
            {"t": f"l_{lid}"},
        ).scalars()
        # The stored geometry, and its Web Mercator copy that tiles read (layers.storage).
        assert sorted(d.split("USING ")[1] for d in gist) == ["gist (geom)", "gist (geom_3857)"]
        assert s.execute(text(f'SELECT count(*) FROM layerdata."l_{lid}__history"')).scalar() == 0
        srid = s.execute(
            text("SELECT Find_SRID('layerdata', :t, 'geom')"), {"t": f"l_{lid}"}
        ).scalar()
        assert srid == 4490


def test_private_and_shared_layers_are_invisible_to_others(
    client: TestClient, make_department, admin_headers
) -> None:
    owner, friend, stranger = make_department(), make_department(), make_department()
    private, shared = layer_id(), layer_id()
    assert _register(client, owner.editor, private).status_code == 201
    assert _register(client, owner.editor, shared, "shared", [friend.code]).status_code == 201

    def ids(headers):
        r = client.get("/collections", headers=headers)
        assert r.status_code == 200
        return {c["id"] for c in r.json()["collections"]}

    assert {private, shared} <= ids(owner.viewer)
    assert shared in ids(friend.viewer) and private not in ids(friend.viewer)
    assert not {private, shared} & ids(stranger.viewer)
    assert not {private, shared} & ids({})
    assert {private, shared} <= ids(admin_headers)
    for headers in (stranger.viewer, stranger.editor, {}):
        for path in ("", "/items", "/queryables", "/items/1", "/stats?by=district", "/export"):
            r = client.get(f"/collections/{private}{path}", headers=headers)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["code"] == "NotFound"
    assert client.get(f"/collections/{shared}", headers=friend.viewer).status_code == 200
    assert client.get(f"/collections/{shared}", headers=stranger.viewer).status_code == 404


def test_owner_changes_access_others_cannot(client: TestClient, make_department) -> None:
    owner, other = make_department(), make_department()
    lid = layer_id()
    assert _register(client, owner.editor, lid).status_code == 201
    r = client.patch(f"/collections/{lid}", json={"access": "public"}, headers=other.editor)
    assert r.status_code == 404  # private: the other department cannot even see it
    r = client.patch(
        f"/collections/{lid}", json={"access": "public", "title": "新标题"}, headers=owner.editor
    )
    assert r.status_code == 200, r.text
    assert r.json()["access"] == "public" and r.json()["title"] == "新标题"
    r = client.patch(f"/collections/{lid}", json={"title": "x"}, headers=other.editor)
    assert r.status_code == 403  # now visible, still not theirs
    r = client.patch(f"/collections/{lid}", json={"title": "x"}, headers=owner.viewer)
    assert r.status_code == 403
    r = client.patch(f"/collections/{lid}", json={"access": "secret"}, headers=owner.editor)
    assert r.status_code == 400
    r = client.patch(f"/collections/{lid}", json={"shared_with": ["x"]}, headers=owner.editor)
    assert r.status_code == 400 and "shared" in r.json()["message"]
    with session_scope() as s:
        actions = (
            s.execute(
                text("SELECT action FROM audit_log WHERE target = :t ORDER BY id"), {"t": lid}
            )
            .scalars()
            .all()
        )
    assert actions == ["layer.create", "layer.update"]


def test_nulls_in_a_metadata_patch_clear_members(client: TestClient, make_department) -> None:
    """Found by the schemathesis run: null keywords, shared_with or title were a 500."""
    dept = make_department()
    lid = layer_id()
    assert _register(client, dept.editor, lid, keywords=["应急"]).status_code == 201
    r = client.patch(
        f"/collections/{lid}",
        json={"title": None, "keywords": None, "shared_with": None},
        headers=dept.editor,
    )
    assert r.status_code == 200, r.text
    assert r.json()["title"] == lid and r.json()["keywords"] == []
    r = client.patch(
        f"/collections/{lid}", json={"access": "shared", "shared_with": None}, headers=dept.editor
    )
    assert r.status_code == 200, r.text
    # Longer than the catalogue's columns: refused, not a database error.
    for body in ({"keywords": ["长" * 101]}, {"access": "shared", "shared_with": ["x" * 65]}):
        r = client.patch(f"/collections/{lid}", json=body, headers=dept.editor)
        assert r.status_code == 400, (body, r.text)
    r = _register(client, dept.editor, layer_id(), access="shared", shared_with=["x" * 65])
    assert r.status_code == 400, r.text


def test_bad_registrations(client: TestClient, make_department) -> None:
    dept = make_department()
    lid = layer_id()
    cases = [
        ({"id": "Bad Id", "geometry_type": "Point"}, 400),
        ({"id": lid, "geometry_type": "Circle"}, 400),
        (
            {"id": lid, "geometry_type": "Point", "properties": [{"name": "id", "type": "string"}]},
            400,
        ),
        (
            {
                "id": lid,
                "geometry_type": "Point",
                "properties": [{"name": "a b", "type": "string"}],
            },
            400,
        ),
        (
            {"id": lid, "geometry_type": "Point", "properties": [{"name": "n", "type": "money"}]},
            400,
        ),
        ({"id": lid, "geometry_type": "Point", "extra": 1}, 400),
        ({"id": "districts", "geometry_type": "Point"}, 409),
    ]
    for body, status in cases:
        r = client.post("/collections", json=body, headers=dept.editor)
        assert r.status_code == status, (body, r.text)
        assert set(r.json()) == {"code", "message", "details"}
    r = client.post(
        "/collections",
        content=b'{"id": ',
        headers={**dept.editor, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["code"] == "MalformedJSON"
    deep = b'{"id":' + b"[" * 100 + b"]" * 100 + b"}"
    r = client.post("/collections", content=deep, headers=dept.editor)
    assert r.status_code == 400 and r.json()["code"] == "TooDeep"
    assert (
        client.post("/collections", json={"id": lid, "geometry_type": "Point"}).status_code == 401
    )
    r = client.post("/collections", json={"id": lid, "geometry_type": "Point"}, headers=dept.viewer)
    assert r.status_code == 403
    assert _register(client, dept.editor, lid).status_code == 201
    assert _register(client, dept.editor, lid).status_code == 409
    with session_scope() as s:
        assert s.execute(text("SELECT count(*) FROM layers WHERE id = 'Bad Id'")).scalar() == 0


def test_system_collections_are_listed_and_read_only(client: TestClient, make_department) -> None:
    ids = {c["id"] for c in client.get("/collections").json()["collections"]}
    assert {"addresses", "districts", "subdistricts", "communities", "grids"} <= ids
    r = client.get("/collections/districts/items")
    assert r.status_code == 200 and r.json()["type"] == "FeatureCollection"
    dept = make_department()
    r = client.post(
        "/collections/districts/items",
        json={"type": "Feature", "geometry": None, "properties": {}},
        headers=dept.editor,
    )
    assert r.status_code == 405


def test_delete_layer_drops_tables(client: TestClient, make_department) -> None:
    dept = make_department()
    lid = make_points_layer(client, dept.editor, 3)
    assert client.delete(f"/collections/{lid}", headers=dept.viewer).status_code == 403
    assert client.delete(f"/collections/{lid}", headers=dept.editor).status_code == 204
    assert client.get(f"/collections/{lid}").status_code == 404
    with session_scope() as s:
        assert (
            s.execute(text("SELECT to_regclass(:t)"), {"t": f'layerdata."l_{lid}"'}).scalar()
            is None
        )


def test_reads_of_non_public_layers_are_audited(client: TestClient, make_department) -> None:
    dept = make_department()
    lid = make_points_layer(client, dept.editor, 3, access="private")
    assert client.get(f"/collections/{lid}/items", headers=dept.viewer).status_code == 200
    public = make_points_layer(client, dept.editor, 3, access="public")
    assert client.get(f"/collections/{public}/items").status_code == 200
    with session_scope() as s:
        rows = s.execute(
            text("SELECT target, department_code FROM audit_log WHERE action = 'layer.read'")
        ).all()
    assert (lid, dept.code) in rows
    assert not [r for r in rows if r[0] == public]

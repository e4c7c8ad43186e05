"""The sharing catalogue (issue 11, part 4): OGC API - Records at /catalogue, who sees which
records, search by text (Chinese), department, theme, sharing type and bbox, paging, the owner's
catalogue entry, and the trigram index serving the text search."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.auth import Principal
from geo.db import session_scope
from layers import records_query
from layers.records_query import RecordQuery
from tests.layers_helpers import layer_id

ITEMS = "/catalogue/collections/layers/items"


def _layer(client: TestClient, headers: dict[str, str], title: str, **entry: Any) -> str:
    lid = layer_id("c")
    body = {
        "id": lid,
        "title": title,
        "geometry_type": "Point",
        "properties": [{"name": "名称", "type": "string"}, {"name": "人数", "type": "integer"}],
    }
    r = client.post("/collections", json=body, headers=headers)
    assert r.status_code == 201, r.text
    if entry:
        r = client.patch(f"/collections/{lid}/catalogue-entry", json=entry, headers=headers)
        assert r.status_code == 200, r.text
    return lid


def _ids(client: TestClient, headers: dict[str, str] | None = None, **params: Any) -> list[str]:
    r = client.get(ITEMS, params={"limit": 100, **params}, headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    return [f["id"] for f in r.json()["features"]]


def test_landing_conformance_and_collection(client: TestClient) -> None:
    landing = client.get("/catalogue").json()
    assert {link["rel"] for link in landing["links"]} >= {"self", "conformance", "data"}
    classes = client.get("/catalogue/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/record-core" in classes
    collections = client.get("/catalogue/collections").json()["collections"]
    assert [c["id"] for c in collections] == ["layers"]
    assert client.get("/catalogue/collections/layers").json()["itemType"] == "record"


def test_who_sees_which_records(client: TestClient, make_department, admin_headers) -> None:
    owner, other = make_department(), make_department()
    tag = secrets.token_hex(3)
    none = _layer(client, owner.editor, f"内部 {tag}")
    conditional = _layer(client, owner.editor, f"有条件 {tag}", sharing_type="conditional")
    unconditional = _layer(client, owner.editor, f"无条件 {tag}", sharing_type="unconditional")
    open_ = _layer(client, owner.editor, f"开放 {tag}", open_data=True)

    assert set(_ids(client, q=tag)) == {open_}
    assert set(_ids(client, other.viewer, q=tag)) == {conditional, unconditional, open_}
    assert set(_ids(client, owner.viewer, q=tag)) == {none, conditional, unconditional, open_}
    assert set(_ids(client, admin_headers, q=tag)) == {none, conditional, unconditional, open_}

    found = {
        f["id"]: f
        for f in client.get(ITEMS, params={"q": tag}, headers=other.viewer).json()["features"]
    }
    record = found[conditional]
    assert record["type"] == "Feature" and record["properties"]["type"] == "dataset"
    assert record["properties"]["access"] == "request"
    assert record["properties"]["sharingType"] == "conditional"
    assert record["properties"]["provider"]["code"] == owner.code
    assert [a["name"] for a in record["properties"]["attributes"]] == ["名称", "人数"]
    rels = {link["rel"] for link in record["links"]}
    assert "request-access" in rels and "items" not in rels
    assert found[unconditional]["properties"]["access"] == "unconditional"
    assert "items" in {link["rel"] for link in found[unconditional]["links"]}
    assert found[open_]["properties"]["openData"] is True

    # One record: the same rule; a 不予共享 layer of another department does not exist.
    assert client.get(f"{ITEMS}/{none}", headers=other.viewer).status_code == 404
    assert client.get(f"{ITEMS}/{conditional}").status_code == 404
    r = client.get(f"{ITEMS}/{conditional}", headers=other.viewer)
    assert r.status_code == 200 and r.json()["properties"]["access"] == "request"
    assert (
        client.get(f"{ITEMS}/{none}", headers=owner.viewer).json()["properties"]["access"] == "own"
    )


def test_search_filters(client: TestClient, make_department) -> None:
    owner, other = make_department(name="规划和自然资源局"), make_department()
    tag = secrets.token_hex(3)
    roads = _layer(
        client,
        owner.editor,
        f"城市道路中心线 {tag}",
        sharing_type="unconditional",
        theme="交通",
        keywords=["道路", "路网"],
        coverage=[117.1, 39.0, 117.3, 39.2],
        update_cycle="monthly",
        contact={"name": "王工", "phone": "022-12345678", "email": "wang@example.cn"},
    )
    schools = _layer(
        client,
        other.editor,
        f"中小学校 {tag}",
        sharing_type="conditional",
        theme="教育",
        description="全市中小学校位置",
    )
    everywhere = _layer(client, other.editor, f"全市网格 {tag}", sharing_type="unconditional")
    viewer = other.viewer

    assert _ids(client, viewer, q=f"道路中心,{tag}x") == [roads]
    assert _ids(client, viewer, q="中小学校位置") == [schools]
    assert _ids(client, viewer, q="路网", department=owner.code) == [roads]
    assert set(_ids(client, viewer, q=tag, theme="交通,教育")) == {roads, schools}
    assert _ids(client, viewer, q=tag, sharing_type="conditional") == [schools]
    assert set(_ids(client, viewer, q=tag, type="dataset")) == {roads, schools, everywhere}
    assert _ids(client, viewer, q=tag, type="service") == []
    assert set(_ids(client, viewer, ids=f"{roads},{everywhere}", q=tag)) == {roads, everywhere}
    # The declared coverage of the roads is far from 117.6,39.6; undeclared layers cover the city.
    assert set(_ids(client, viewer, q=tag, bbox="117.6,39.6,117.7,39.7")) == {schools, everywhere}
    assert set(_ids(client, viewer, q=tag, bbox="117.2,39.1,117.25,39.15")) == {
        roads,
        schools,
        everywhere,
    }
    assert _ids(client, viewer, q=tag, bbox="100,20,101,21") == []
    # A LIKE wildcard in q is a character, not a wildcard.
    assert roads not in _ids(client, viewer, q="%,_")

    record = client.get(f"{ITEMS}/{roads}", headers=viewer).json()
    props = record["properties"]
    assert props["provider"] == {"code": owner.code, "name": "规划和自然资源局"}
    assert props["updateCycle"] == "monthly" and props["theme"] == "交通"
    assert props["themes"][0]["concepts"] == [{"id": "交通"}]
    contact = next(c for c in props["contacts"] if "pointOfContact" in c["roles"])
    assert contact["phones"] == [{"value": "022-12345678"}]
    assert record["geometry"]["coordinates"][0][0] == [117.1, 39.0]


def test_paging_links(client: TestClient, make_department) -> None:
    dept = make_department()
    tag = secrets.token_hex(3)
    made = {_layer(client, dept.editor, f"分页 {tag} {i}") for i in range(5)}
    seen: list[str] = []
    url: str | None = ITEMS + f"?q={tag}&limit=2"
    while url:
        page = client.get(url, headers=dept.viewer).json()
        assert page["numberMatched"] == 5
        seen += [f["id"] for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert len(seen) == 5 and set(seen) == made


def test_bad_search_parameters(client: TestClient) -> None:
    for params, where in (
        ({"sharing_type": "public"}, "sharing_type"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"q": ",".join(["x"] * 11)}, "q"),
        ({"q": "长" * 101}, "q"),
        ({"colour": "red"}, "colour"),
    ):
        r = client.get(ITEMS, params=params)
        assert r.status_code == 400, (params, r.text)
        assert where in r.text, r.text


def test_catalogue_entry_changes(client: TestClient, make_department, admin_headers) -> None:
    owner, other = make_department(), make_department()
    lid = _layer(client, owner.editor, f"目录 {secrets.token_hex(3)}")
    url = f"/collections/{lid}/catalogue-entry"

    r = client.patch(url, json={"open_data": True}, headers=owner.editor)
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["sharingType"] == "unconditional"
    assert client.get(f"/collections/{lid}").json()["access"] == "public"
    # Narrowing an open layer's sharing without closing it is incoherent.
    r = client.patch(url, json={"sharing_type": "conditional"}, headers=owner.editor)
    assert r.status_code == 400 and r.json()["code"] == "IncoherentSharing"
    r = client.patch(
        url, json={"sharing_type": "conditional", "open_data": False}, headers=owner.editor
    )
    assert r.status_code == 200, r.text
    assert client.get(f"/collections/{lid}").status_code == 404  # no longer anonymous

    bad_bodies = (
        {"sharing_type": "shared"},
        {"update_cycle": "sometimes"},
        {"coverage": [118, 39, 117, 40]},
        {"coverage": [1, 2, 3]},
        {"contact": {"email": "nobody"}},
        {"contact": {"fax": "1"}},
        {"keywords": ["x" * 101]},
        {"owner": "someone"},
    )
    for body in bad_bodies:
        r = client.patch(url, json=body, headers=owner.editor)
        assert r.status_code == 400, (body, r.text)
    # Others may not change it: a viewer key, another department's editor (which reads only
    # the record of this 有条件共享 layer, not the layer: 404 as everywhere), anonymous.
    assert client.patch(url, json={"theme": "x"}, headers=owner.viewer).status_code == 403
    assert client.patch(url, json={"theme": "x"}, headers=other.editor).status_code == 404
    assert client.patch(url, json={"theme": "x"}).status_code == 401
    r = client.patch(url, json={"theme": "国土"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["properties"]["theme"] == "国土"

    with session_scope() as s:
        actions = (
            s.execute(
                text(
                    "SELECT details FROM audit_log WHERE action = 'layer.catalogue' AND target = :t"
                ),
                {"t": lid},
            )
            .scalars()
            .all()
        )
    assert len(actions) == 3


def test_text_search_uses_the_trigram_index(client: TestClient) -> None:
    """Written against the generated column, the search is one the GIN index can serve (with
    sequential scans off, as on a catalogue too large to read whole)."""
    who = Principal("somewhere", "viewer", None)
    stmt = records_query.statement(who, RecordQuery(q=["城市道路"]))
    with session_scope() as s:
        sql = str(stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
        s.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(s.execute(text(f"EXPLAIN {sql}")).scalars())
    assert "ix_layers_search_trgm" in plan, plan


def test_opening_a_shared_layer_ends_its_shared_with_grants(
    client: TestClient, make_department
) -> None:
    owner, other = make_department(), make_department()
    lid = layer_id("c")
    body = {
        "id": lid,
        "geometry_type": "Point",
        "access": "shared",
        "shared_with": [other.code],
    }
    assert client.post("/collections", json=body, headers=owner.editor).status_code == 201
    r = client.patch(
        f"/collections/{lid}/catalogue-entry", json={"open_data": True}, headers=owner.editor
    )
    assert r.status_code == 200, r.text
    doc = client.get(f"/collections/{lid}").json()
    assert doc["access"] == "public" and doc["shared_with"] == []
    grants = client.get(f"/collections/{lid}/grants", headers=owner.editor).json()["grants"]
    assert [g["active"] for g in grants if g["grantee"] == other.code] == [False]


def test_access_given_at_creation_or_by_patch_sets_the_sharing_type(
    client: TestClient, make_department
) -> None:
    """An access level set through /collections (not the catalogue entry) moves the sharing
    type with it, so a record never reads 不予共享 and 开放 at once."""
    owner = make_department()
    lid = layer_id("c")
    body = {"id": lid, "geometry_type": "Point", "access": "public", "properties": []}
    assert client.post("/collections", json=body, headers=owner.editor).status_code == 201

    def sharing() -> tuple[str, bool]:
        record = client.get(f"{ITEMS}/{lid}", headers=owner.editor).json()["properties"]
        return record["sharingType"], record["openData"]

    assert sharing() == ("unconditional", True)
    for access, expected in (("shared", "conditional"), ("private", "none")):
        r = client.patch(f"/collections/{lid}", json={"access": access}, headers=owner.editor)
        assert r.status_code == 200, r.text
        assert sharing() == (expected, False)
    r = client.patch(f"/collections/{lid}", json={"title": "只改标题"}, headers=owner.editor)
    assert r.status_code == 200 and sharing() == ("none", False)

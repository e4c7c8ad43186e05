"""A grant's area reaches the SQL as a predicate the layer's GiST index serves (layers.scope):
the plans of an items query and of a tile for an area-scoped grantee use the index, and the
area is read once per statement (an InitPlan), never per row."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.auth import Principal
from geo.db import libpq_url, session_scope
from layers import catalogue, features
from tests.layers_helpers import collection, layer_id, point_features, square, upload
from tiles.sql import build_query, query_params
from tiles.tms import Tile

N = 5000
# Points i lie at (117.2 + i/50000, 39.1 + i/100000): this square holds about 100 of them.
SMALL = square(117.1999, 39.0999, 0.002)


@pytest.fixture(scope="module")
def scoped(client: TestClient, make_department):
    owner, friend = make_department(), make_department()
    lid = layer_id()
    data = collection(point_features(N, step=0.00002))
    assert upload(client, owner.editor, lid, data, access="private").status_code == 201
    r = client.post(
        f"/collections/{lid}/grants",
        json={"grantee": friend.code, "level": "view", "area": SMALL},
        headers=owner.editor,
    )
    assert r.status_code == 201, r.text
    with session_scope() as s:
        source = catalogue.readable_source(s, Principal(friend.code, "viewer", "t"), lid)
        s.execute(text(f"ANALYZE {source.table}"))
    return source


def _plan(sql: str, params: dict[str, object]) -> str:
    with session_scope() as s:
        return "\n".join(r[0] for r in s.execute(text("EXPLAIN " + sql), params))


def test_items_plan_uses_the_gist_index(scoped) -> None:
    query = features.Query(limit=100)
    clause, params = features.where(scoped, query)
    plan = _plan(f"SELECT t.id FROM {scoped.relation()} t WHERE {clause} LIMIT 100", params)
    table = scoped.table.split(".")[-1].strip('"')
    assert f"Seq Scan on {table}" not in plan, plan
    assert "Index" in plan and "geom &&" in plan, plan
    # The area comes from the grant's row once per statement, then is a parameter.
    assert "InitPlan" in plan, plan


def test_items_through_the_grant_match_the_area(client: TestClient, scoped) -> None:
    with session_scope() as s:
        found = features.count(s, scoped, features.Query())
    assert 90 <= found <= 100


def test_tile_plan_uses_the_gist_index(database_url: str, scoped) -> None:
    query = build_query(scoped, "bigint", 10_000)
    tile = Tile(14, 13526, 6273)
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute("EXPLAIN " + query.text, query_params(query, tile)).fetchall()
    plan = "\n".join(r[0] for r in rows)
    table = scoped.table.split(".")[-1].strip('"')
    assert f"Seq Scan on {table}" not in plan, plan
    assert "InitPlan" in plan, plan

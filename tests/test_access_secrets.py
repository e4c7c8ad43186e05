"""Access and secrets ("Robustness first"): each test here fails on the code before the fix.

1. An admin key of an ordinary department administers that department only; the platform
   administrator is an admin key of the platform department.
2. Keys never travel in URLs we hand out, nor in the server's log lines; map clients get
   short-lived, read-only, layer-scoped tile tokens instead; at most 8 characters of a key are
   stored anywhere (and a migration cuts what older versions stored).
3. Grid staff contacts (personal data) are shown to keyed callers only.
4. Only the address authority (and the platform department) writes the standard address library.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from geo.auth import KEY_PREFIX_LEN, Principal
from geo.db import ensure_extensions, get_engine, session_scope
from geo.migrations import upgrade
from geo.redact import redact
from geo.state import get_state
from geo.versions import bump
from tests.address_library import HOUSES, pick
from tests.conftest import ADMIN_KEY, Dept, bearer
from tests.layers_helpers import collection, make_points_layer, point_features, square, upload
from tests.live_server import live_server
from tests.tiles_fixtures import decode, tile_at
from tiles import tokens

# --- fixtures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminDept:
    """A department with editor, viewer and admin keys (as headers)."""

    dept: Dept
    admin: dict[str, str]

    @property
    def code(self) -> str:
        return self.dept.code


def key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _with_admin(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable[..., Dept]
) -> AdminDept:
    dept = make_department()
    r = client.post(f"/departments/{dept.code}/keys", json={"role": "admin"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    return AdminDept(dept, bearer(r.json()["key"]))


@pytest.fixture(scope="module")
def police(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable[..., Dept]
) -> AdminDept:
    return _with_admin(client, admin_headers, make_department)


@pytest.fixture(scope="module")
def health(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable[..., Dept]
) -> AdminDept:
    return _with_admin(client, admin_headers, make_department)


# --- 1. department admins stay in their department ----------------------------------------------


def test_only_the_platform_departments_admin_is_the_platform_admin() -> None:
    assert Principal("platform", "admin", "x").is_admin
    police_admin = Principal("police", "admin", "x")
    assert not police_admin.is_admin
    assert police_admin.administers("police") and not police_admin.administers("health")
    assert not Principal("police", "editor", "x").administers("police")


def test_department_admin_cannot_create_or_list_departments(
    client: TestClient, police: AdminDept, admin_headers: dict[str, str]
) -> None:
    code = "d-" + secrets.token_hex(4)
    r = client.post("/departments", json={"name": "越权部门", "code": code}, headers=police.admin)
    assert r.status_code == 403, r.text
    assert r.json()["details"]["rule"] == "platform-admin"
    assert client.get("/departments", headers=police.admin).status_code == 403
    assert client.get("/departments", headers=admin_headers).status_code == 200
    listed = {
        d["code"] for d in client.get("/departments", headers=admin_headers).json()["departments"]
    }
    assert code not in listed


def test_department_admin_manages_only_its_own_keys(
    client: TestClient, police: AdminDept, health: AdminDept
) -> None:
    other = f"/departments/{health.code}"
    issued = client.post(f"{other}/keys", json={"role": "admin"}, headers=police.admin)
    assert issued.status_code == 403, issued.text
    assert issued.json()["details"]["rule"] == "own-department"
    health_keys = client.get(f"{other}/keys", headers=health.admin).json()["keys"]
    assert client.get(f"{other}/keys", headers=police.admin).status_code == 403
    assert client.get(other, headers=police.admin).status_code == 403
    revoke = client.delete(f"{other}/keys/{health_keys[0]['id']}", headers=police.admin)
    assert revoke.status_code == 403
    # health_keys[0] is the editor key: still valid (a revoked key is a 401).
    assert client.get("/collections", headers=health.dept.editor).status_code == 200
    # Within its own department it administers keys.
    own = f"/departments/{police.code}"
    made = client.post(f"{own}/keys", json={"role": "viewer"}, headers=police.admin)
    assert made.status_code == 201, made.text
    assert client.get(f"{own}/keys", headers=police.admin).status_code == 200
    gone = client.delete(f"{own}/keys/{made.json()['id']}", headers=police.admin)
    assert gone.status_code == 200 and gone.json()["revoked_at"]
    # Editors and viewers administer nothing, not even their own department.
    assert client.get(f"{own}/keys", headers=police.dept.editor).status_code == 403


def test_department_admin_reads_only_its_own_audit(
    client: TestClient, police: AdminDept, health: AdminDept, admin_headers: dict[str, str]
) -> None:
    make_points_layer(client, health.dept.editor, n=1, access="private")
    make_points_layer(client, police.dept.editor, n=1, access="private")
    refused = client.get("/audit", params={"department": health.code}, headers=police.admin)
    assert refused.status_code == 403, refused.text
    own = client.get("/audit", params={"limit": 1000}, headers=police.admin)
    assert own.status_code == 200, own.text
    departments = {e["department"] for e in own.json()["events"]}
    assert departments == {police.code}
    everything = client.get("/audit", params={"department": health.code}, headers=admin_headers)
    assert {e["department"] for e in everything.json()["events"]} == {health.code}


def test_department_admin_cannot_read_or_edit_other_departments_layers(
    client: TestClient, police: AdminDept, health: AdminDept, admin_headers: dict[str, str]
) -> None:
    private = make_points_layer(client, health.dept.editor, n=2, access="private")
    public = make_points_layer(client, health.dept.editor, n=2, access="public")
    assert client.get(f"/collections/{private}", headers=police.admin).status_code == 404
    assert client.get(f"/collections/{private}/items", headers=police.admin).status_code == 404
    listed = client.get("/collections", headers=police.admin).json()["collections"]
    assert private not in {c["id"] for c in listed}
    assert (
        client.get(f"/tiles/{private}/14/13492/6210.mvt", headers=police.admin).status_code == 404
    )
    # Readable (public) but not theirs to change.
    patched = client.patch(f"/collections/{public}", json={"title": "改"}, headers=police.admin)
    assert patched.status_code == 403, patched.text
    feature = point_features(1, start=50)[0]
    added = client.post(f"/collections/{public}/items", json=feature, headers=police.admin)
    assert added.status_code == 403
    assert client.delete(f"/collections/{public}/items/1", headers=police.admin).status_code == 403
    assert client.delete(f"/collections/{public}", headers=police.admin).status_code == 403
    # Its own department's layers it manages; the platform admin sees every layer.
    own = make_points_layer(client, police.dept.editor, n=1, access="private")
    assert (
        client.patch(
            f"/collections/{own}", json={"title": "自己的"}, headers=police.admin
        ).status_code
        == 200
    )
    assert client.get(f"/collections/{private}", headers=admin_headers).status_code == 200
    listed = client.get("/collections", headers=admin_headers).json()["collections"]
    assert private in {c["id"] for c in listed}


# --- 2. keys never travel in URLs or logs; tile tokens -------------------------------------------


@pytest.fixture(scope="module")
def private_layer(client: TestClient, police: AdminDept) -> str:
    return make_points_layer(client, police.dept.editor, n=5, access="private")


TILE = tile_at(117.2, 39.1, 14)
TILE_PATH = f"{TILE.z}/{TILE.x}/{TILE.y}.mvt"


def local(url: str) -> str:
    """An absolute URL of ours as a path the TestClient can ask."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def has_token(url: str) -> bool:
    """A tile token in the URL's query (beside the data version `v` of versioned URLs)."""
    return bool(parse_qs(urlsplit(url).query).get("token"))


def test_documents_for_a_query_key_carry_a_token_never_the_key(
    client: TestClient, police: AdminDept, private_layer: str
) -> None:
    key = key_of(police.dept.viewer)
    documents = {
        "tilejson": f"/tiles/{private_layer}/tilejson.json?key={key}",
        "style": f"/styles/districts,{private_layer}.json?key={key}",
        "tileset": f"/collections/{private_layer}/tiles/WebMercatorQuad?key={key}",
        "tilesets": f"/collections/{private_layer}/tiles?key={key}",
    }
    bodies = {}
    for name, url in documents.items():
        r = client.get(url)
        assert r.status_code == 200, (name, r.text)
        assert key not in r.text and "key=" not in r.text, name
        bodies[name] = r.json()
    tile_url = bodies["tilejson"]["tiles"][0]
    assert has_token(tile_url)
    tile = client.get(local(tile_url.format(z=TILE.z, x=TILE.x, y=TILE.y)))
    assert tile.status_code == 200, tile.text
    assert sum(len(v["features"]) for v in decode(tile.content).values()) > 0
    assert client.get(f"/tiles/{private_layer}/{TILE_PATH}").status_code == 404  # no credentials
    style = bodies["style"]
    labels = style["sources"]["geo-labels"]["data"]
    assert has_token(labels) and has_token(style["sources"]["geo"]["tiles"][0])
    assert client.get(local(labels)).status_code == 200
    item_link = next(lk for lk in bodies["tileset"]["links"] if lk["rel"] == "item")
    templated = item_link["href"].format(tileMatrix=TILE.z, tileRow=TILE.y, tileCol=TILE.x)
    assert has_token(templated)
    assert client.get(local(templated)).status_code == 200


def test_item_links_and_html_never_carry_the_key(
    client: TestClient, police: AdminDept, private_layer: str
) -> None:
    key = key_of(police.dept.viewer)
    page = client.get(f"/collections/{private_layer}/items", params={"key": key, "limit": 2})
    assert page.status_code == 200, page.text
    links = page.json()["links"]
    assert {"self", "next"} <= {lk["rel"] for lk in links}
    assert key not in page.text
    assert all("key=" not in lk["href"] for lk in links)
    html = client.get(
        f"/collections/{private_layer}/items", params={"key": key, "limit": 2, "f": "html"}
    )
    assert html.status_code == 200 and "<a href" in html.text
    assert key not in html.text and "key=" not in html.text
    one = client.get(f"/collections/{private_layer}/items/1", params={"key": key})
    assert one.status_code == 200 and key not in one.text


def test_tile_token_endpoint_scope_expiry_and_tampering(
    client: TestClient, police: AdminDept, health: AdminDept, private_layer: str
) -> None:
    url = f"/tiles/{private_layer}/{TILE_PATH}"
    body = {"layers": [private_layer]}
    anonymous = client.post("/tiles/token", json=body)
    assert anonymous.status_code == 401
    issued = client.post("/tiles/token", json=body, headers=police.dept.viewer)
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    assert issued.json()["layers"] == [private_layer] and issued.json()["expires_in"] == 3600
    assert key_of(police.dept.viewer) not in token
    assert client.get(url, params={"token": token}).status_code == 200
    # Only the layers it names.
    outside = client.get(f"/tiles/districts/{TILE_PATH}", params={"token": token})
    assert outside.status_code == 403 and outside.json()["code"] == "TokenScope"
    composite = client.get(f"/tiles/districts,{private_layer}/{TILE_PATH}", params={"token": token})
    assert composite.status_code == 403
    # Tampered: another layer list under the same signature.
    version, payload, signature = token.split(".")
    forged_claims = tokens._b64(tokens._unb64(payload).replace(b'"r":"viewer"', b'"r":"admin"'))
    for forged in (f"{version}.{forged_claims}.{signature}", token[:-2] + "AA", "tjt1.x.y", "x"):
        r = client.get(url, params={"token": forged})
        assert r.status_code == 401 and r.json()["code"] == "InvalidToken", forged
    # Expired.
    who = Principal(police.code, "viewer", "tjg_test")
    old, _ = tokens.mint(who, [private_layer], now=time.time() - 7200)
    expired = client.get(url, params={"token": old})
    assert expired.status_code == 401 and expired.json()["code"] == "TokenExpired"
    # Another department's private layer: no token for it (404, as everywhere).
    theirs = make_points_layer(client, health.dept.editor, n=1, access="private")
    denied = client.post("/tiles/token", json={"layers": [theirs]}, headers=police.dept.viewer)
    assert denied.status_code == 404
    # A key and a token at once is ambiguous.
    both = client.get(url, params={"token": token}, headers=police.dept.viewer)
    assert both.status_code == 400 and both.json()["code"] == "AmbiguousCredentials"


def test_a_tile_token_is_read_only_and_for_tile_routes_only(
    client: TestClient, police: AdminDept, private_layer: str
) -> None:
    admin_token = client.post(
        "/tiles/token", json={"layers": [private_layer]}, headers=police.dept.editor
    ).json()["token"]
    # Not a credential outside the tile routes: the private layer stays invisible.
    items = client.get(f"/collections/{private_layer}/items", params={"token": admin_token})
    assert items.status_code == 404
    listed = client.get("/collections", params={"token": admin_token})
    assert listed.status_code == 400 and listed.json()["code"] == "UnknownParameter"
    feature = point_features(1, start=60)[0]
    write = client.post(
        f"/collections/{private_layer}/items", params={"token": admin_token}, json=feature
    )
    assert write.status_code in (400, 401)
    count = client.get(f"/collections/{private_layer}/items", headers=police.dept.viewer).json()
    assert count["numberMatched"] == 5


def test_the_token_secret_is_kept_in_the_database_for_every_worker(
    client: TestClient, police: AdminDept, private_layer: str
) -> None:
    client.post("/tiles/token", json={"layers": [private_layer]}, headers=police.dept.viewer)
    with session_scope() as session:
        stored = get_state(session, tokens.SECRET_STATE_KEY)
    assert stored and len(stored) >= 32
    assert tokens.secret() == str(stored).encode()


def test_redact_removes_keys_and_tokens_from_log_text() -> None:
    line = '127.0.0.1:5 - "GET /tiles/a/tilejson.json?f=json&key=SECRET1&token=SECRET2 HTTP/1.1"'
    assert "SECRET" not in redact(line)
    assert "f=json" in redact(line)
    for sneaky in ("?%6Bey=SECRET3", "?KEY=SECRET3", "?x=1&%74oken=SECRET3"):
        assert "SECRET3" not in redact(f"GET /map{sneaky} HTTP/1.1")
    assert redact("no query here") == "no query here"


def test_the_server_log_holds_no_key_and_no_token(
    client: TestClient, police: AdminDept, private_layer: str
) -> None:
    key = key_of(police.dept.viewer)
    token = client.post(
        "/tiles/token", json={"layers": [private_layer]}, headers=police.dept.viewer
    ).json()["token"]
    wrong = "tjg_WRONGSECRET" + secrets.token_hex(8)
    with live_server() as server:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            tilejson = http.get(f"/tiles/{private_layer}/tilejson.json", params={"key": key})
            assert tilejson.status_code == 200
            assert http.get("/collections", params={"key": key}).status_code == 200
            assert http.get("/collections", params={"key": wrong}).status_code == 401
            # A token made by this process is good in the server's: the secret is shared.
            tile = http.get(f"/tiles/{private_layer}/{TILE_PATH}", params={"token": token})
            assert tile.status_code == 200
            issued = urlsplit(tilejson.json()["tiles"][0]).query.removeprefix("token=")
        deadline = time.monotonic() + 10
        while server.log().count("[redacted]") < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.log()
    assert log.count("key=[redacted]") >= 3, log[-2000:]
    for secret in (key, key[KEY_PREFIX_LEN:], wrong, token, issued):
        assert secret not in log


def test_at_most_eight_characters_of_a_key_are_stored(
    client: TestClient, police: AdminDept, admin_headers: dict[str, str]
) -> None:
    r = client.post(
        f"/departments/{police.code}/keys", json={"role": "viewer"}, headers=admin_headers
    )
    key, key_id = r.json()["key"], r.json()["id"]
    assert r.json()["prefix"] == key[:8]
    with session_scope() as session:
        stored = session.execute(text("SELECT prefix FROM api_keys WHERE id = :i"), {"i": key_id})
        assert stored.scalar_one() == key[:8]
        longest = session.execute(
            text("SELECT max(length(prefix)) FROM api_keys WHERE key_hash IS NOT NULL")
        ).scalar_one()
        admin_prefix = session.execute(
            text("SELECT prefix FROM api_keys WHERE prefix = :p"), {"p": ADMIN_KEY[:8]}
        ).scalar()
    assert longest <= 8 and admin_prefix == ADMIN_KEY[:8]
    events = client.get(
        "/audit", params={"action": "key.create", "department": "platform"}, headers=admin_headers
    ).json()["events"]
    assert f"{police.code}/{key[:8]}" in {e["target"] for e in events}
    assert all(len(e["key"] or "") <= 8 for e in events)


def test_migration_cuts_longer_stored_prefixes(scratch_database: str) -> None:
    """A database as the previous version left it (12-character prefixes everywhere), migrated."""
    url = scratch_database
    engine = create_engine(url)
    try:
        ensure_extensions(engine)
        upgrade(url, "9b1e6c3d2a70")
        long, named = "tjg_abcdefgh", "police/tjg_abcdefgh"
        with engine.begin() as conn:
            dept = conn.execute(
                text("INSERT INTO departments (code, name) VALUES ('police', '公安') RETURNING id")
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO api_keys (department_id, role, prefix, key_hash) "
                    "VALUES (:d, 'editor', :p, 'h1')"
                ),
                {"d": dept, "p": long},
            )
            conn.execute(
                text(
                    "INSERT INTO audit_log (department_code, key_prefix, role, action, target) "
                    "VALUES ('platform', :p, 'admin', 'key.create', :t), "
                    "('police', :p, 'editor', 'layer.create', 'a_layer_with_a_long_name'), "
                    "('platform', 'console', 'admin', 'key.revoke', 'police/console')"
                ),
                {"p": long, "t": named},
            )
            conn.execute(
                text(
                    "INSERT INTO layers (id, title, geometry_type, owner, table_name, created_by) "
                    "VALUES ('old_layer', 'old', 'Point', 'police', 'l_old_layer', :p)"
                ),
                {"p": long},
            )
            conn.execute(
                text(
                    "INSERT INTO addresses (code, full_address, geom, updated_by) VALUES "
                    "('X1', '测试', ST_SetSRID(ST_MakePoint(117.2, 39.1), 4490), :n)"
                ),
                {"n": named},
            )
            conn.execute(
                text(
                    "INSERT INTO address_history (address_id, version, action, data, changed_by)"
                    " VALUES (1, 1, 'create', '{}', :n), (1, 2, 'update', '{}', 'platform/sample')"
                ),
                {"n": named},
            )
            conn.execute(text("CREATE SCHEMA layerdata"))
            conn.execute(text("CREATE TABLE layerdata.l_old_layer (id int, updated_by text)"))
            conn.execute(
                text(
                    "CREATE TABLE layerdata.l_old_layer__history "
                    "(updated_by text, archived_by text)"
                )
            )
            conn.execute(text("INSERT INTO layerdata.l_old_layer VALUES (1, :n)"), {"n": named})
            conn.execute(
                text("INSERT INTO layerdata.l_old_layer__history VALUES (:n, :n)"), {"n": named}
            )
        upgrade(url)
        short, short_named = "tjg_abcd", "police/tjg_abcd"
        with engine.connect() as conn:

            def column(sql: str) -> list[object]:
                return list(conn.execute(text(sql)).scalars())

            assert column("SELECT prefix FROM api_keys") == [short]
            assert column("SELECT key_prefix FROM audit_log ORDER BY id") == [
                short,
                short,
                "console",
            ]
            assert column("SELECT target FROM audit_log ORDER BY id") == [
                short_named,
                "a_layer_with_a_long_name",  # not a key event: left alone
                "police/console",
            ]
            assert column("SELECT created_by FROM layers") == [short]
            assert column("SELECT updated_by FROM addresses") == [short_named]
            assert column("SELECT changed_by FROM address_history ORDER BY version") == [
                short_named,
                "platform/sample",
            ]
            assert column("SELECT updated_by FROM layerdata.l_old_layer") == [short_named]
            history = conn.execute(
                text("SELECT updated_by, archived_by FROM layerdata.l_old_layer__history")
            ).one()
            assert tuple(history) == (short_named, short_named)
            assert column("SELECT address_authority FROM departments") == [False]
    finally:
        engine.dispose()


# --- 3. grid staff contacts need a key -----------------------------------------------------------

STAFF_NAME = "网格员测试甲"
STAFF_PHONE = "13900001111"
GRID_CODE = "TSTSTAFF01"
# Inside the accepted extent, north of the city: no real or demo grid lies here.
GRID_AT = (117.935, 40.455)


@pytest.fixture(scope="module")
def staff_grid(database_url: str) -> Iterator[str]:
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO grids (code, name, staff_name, staff_phone, geom, source) VALUES "
                "(:code, '测试网格', :name, :phone, ST_Multi(ST_MakeEnvelope(117.93, 40.45, "
                "117.94, 40.46, 4490)), 'test-staff')"
            ),
            {"code": GRID_CODE, "name": STAFF_NAME, "phone": STAFF_PHONE},
        )
    with session_scope() as session:
        bump(session, "grids")
    yield GRID_CODE
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM grids WHERE source = 'test-staff'"))
    with session_scope() as session:
        bump(session, "grids")


def assert_no_staff(text_: str | bytes, what: str) -> None:
    data = text_.encode() if isinstance(text_, str) else text_
    assert STAFF_PHONE.encode() not in data, what
    assert STAFF_NAME.encode() not in data, what
    assert b"staff_" not in data, what


def test_grid_staff_only_for_keyed_callers(
    client: TestClient, staff_grid: str, police: AdminDept
) -> None:
    lon, lat = GRID_AT
    for path, params in (("/grids/at", {"lon": lon, "lat": lat}), (f"/grids/{staff_grid}", {})):
        anonymous = client.get(path, params=params)
        assert anonymous.status_code == 200, anonymous.text
        assert anonymous.json()["code"] == staff_grid
        assert_no_staff(anonymous.text, path)
        keyed = client.get(path, params=params, headers=police.dept.viewer).json()
        assert (keyed["staff_name"], keyed["staff_phone"]) == (STAFF_NAME, STAFF_PHONE)
    reverse = client.get("/addresses/reverse", params={"lon": lon, "lat": lat})
    assert reverse.status_code == 200, reverse.text
    assert reverse.json()["grid"]["code"] == staff_grid
    assert_no_staff(reverse.text, "reverse")
    keyed = client.get(
        "/addresses/reverse", params={"lon": lon, "lat": lat}, headers=police.dept.viewer
    ).json()
    assert keyed["grid"]["staff_phone"] == STAFF_PHONE
    grids_collection_has_no_staff(client, staff_grid, police)


def grids_collection_has_no_staff(client: TestClient, staff_grid: str, police: AdminDept) -> None:
    """The grids collection (layers.catalogue) through features, tiles, identify and overlay:
    no staff contacts for anyone (their properties are declared without them)."""
    lon, lat = GRID_AT
    bbox = f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}"
    items = client.get("/collections/grids/items", params={"bbox": bbox})
    assert items.status_code == 200 and staff_grid in items.text
    assert_no_staff(items.text, "items")
    csv = client.get("/collections/grids/items", params={"bbox": bbox, "f": "csv"})
    assert csv.status_code == 200 and staff_grid in csv.text
    assert_no_staff(csv.text, "items csv")
    assert_no_staff(client.get("/collections/grids/queryables").text, "queryables")
    assert_no_staff(client.get("/tiles/grids/tilejson.json").text, "tilejson")
    tile = tile_at(lon, lat, 14)
    mvt = client.get(f"/tiles/grids/{tile.z}/{tile.x}/{tile.y}.mvt")
    assert mvt.status_code == 200
    assert staff_grid in {
        f["properties"].get("code") for f in decode(mvt.content)["grids"]["features"]
    }
    assert_no_staff(mvt.content, "tile")
    identify = client.get(
        "/identify", params={"lon": lon, "lat": lat, "radius": 10, "layers": "grids"}
    )
    assert identify.status_code == 200 and staff_grid in identify.text
    assert_no_staff(identify.text, "identify")
    polygon = square(lon - 0.001, lat - 0.001, 0.002)
    identify_in = client.post("/identify", json={"geometry": polygon, "layers": ["grids"]})
    assert identify_in.status_code == 200 and staff_grid in identify_in.text, identify_in.text
    assert_no_staff(identify_in.text, "identify polygon")
    inside = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"name": "点"},
        }
    ]
    lid = f"staff_{secrets.token_hex(4)}"
    made = upload(client, police.dept.editor, lid, collection(inside), access="public")
    assert made.status_code == 201, made.text
    for output in ("features", "aggregate"):
        overlay = client.post(
            "/overlay",
            json={"layer": lid, "other": "grids", "predicate": "within", "output": output},
        )
        assert overlay.status_code == 200 and staff_grid in overlay.text, overlay.text
        assert_no_staff(overlay.text, f"overlay {output}")


# --- 4. only the address authority writes the library --------------------------------------------


def test_only_the_address_authority_writes_addresses(
    client: TestClient,
    generated_library: None,
    make_department: Callable[..., Dept],
    admin_headers: dict[str, str],
) -> None:
    dept = make_department()
    with session_scope() as session:
        (house,) = pick(session, HOUSES)
    body = {
        "district": house.district,
        "road": "权限测试路",
        "house_number": "9",
        "lon": house.lon + 0.0004,
        "lat": house.lat,
    }
    rename = {"district": house.district, "old": house.road, "new": "不许改名路"}
    attempts = {
        "create": client.post("/addresses", json=body, headers=dept.editor),
        "patch": client.patch(
            f"/addresses/{house.id}", json={"room": "1"}, headers={**dept.editor, "If-Match": '"1"'}
        ),
        "retire": client.post(f"/addresses/{house.id}/retire", json={}, headers=dept.editor),
        "rename": client.post("/addresses/roads/rename", json=rename, headers=dept.editor),
        "import": client.post(
            "/addresses/import",
            files={"file": ("a.csv", b"district,road,house_number,lon,lat\n", "text/csv")},
            headers=dept.editor,
        ),
    }
    for what, r in attempts.items():
        assert r.status_code == 403, (what, r.text)
        assert r.json()["code"] == "NotAddressAuthority", what
        assert r.json()["details"]["rule"] == "address-authority", what
    assert client.get(f"/addresses/{house.id}").json()["status"] == "active"
    # The platform administrator names the department the authority; then it may write.
    named = client.patch(
        f"/departments/{dept.code}", json={"address_authority": True}, headers=admin_headers
    )
    assert named.status_code == 200 and named.json()["address_authority"] is True
    created = client.post("/addresses", json=body, headers=dept.editor)
    assert created.status_code == 201, created.text
    events = client.get(
        "/audit", params={"action": "department.update"}, headers=admin_headers
    ).json()["events"]
    assert any(e["target"] == dept.code for e in events)
    off = client.patch(
        f"/departments/{dept.code}", json={"address_authority": False}, headers=admin_headers
    )
    assert off.json()["address_authority"] is False
    again = client.post("/addresses", json={**body, "house_number": "10"}, headers=dept.editor)
    assert again.status_code == 403


def test_only_the_platform_admin_names_the_address_authority(
    client: TestClient, police: AdminDept, admin_headers: dict[str, str]
) -> None:
    url = f"/departments/{police.code}"
    for headers in (police.admin, police.dept.editor):
        assert (
            client.patch(url, json={"address_authority": True}, headers=headers).status_code == 403
        )
    assert client.get(url, headers=police.admin).json()["address_authority"] is False
    bad = client.patch(url, json={"address_authority": "yes", "x": 1}, headers=admin_headers)
    assert bad.status_code == 400
    platform = client.get("/departments/platform", headers=admin_headers).json()
    assert platform["address_authority"] is True
    refused = client.patch(
        "/departments/platform", json={"address_authority": False}, headers=admin_headers
    )
    assert refused.status_code == 400


def geo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


def test_cli_sets_the_address_authority(client: TestClient, admin_headers: dict[str, str]) -> None:
    code = "addr-" + secrets.token_hex(3)
    made = geo("department", "create", "地址管理中心", "--code", code, "--address-authority")
    assert made.returncode == 0, made.stderr
    url = f"/departments/{code}"
    assert client.get(url, headers=admin_headers).json()["address_authority"] is True
    off = geo("department", "authority", code, "--off")
    assert off.returncode == 0, off.stderr
    assert client.get(url, headers=admin_headers).json()["address_authority"] is False
    assert geo("department", "authority", code, "--on").returncode == 0
    assert client.get(url, headers=admin_headers).json()["address_authority"] is True
    assert geo("department", "authority", "platform", "--off").returncode == 2

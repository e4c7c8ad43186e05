"""No acknowledged write is lost when the server dies: `kill -9` during every kind of write.

A real `geo serve` process (tests/fault_server.py: every commit waits a moment first, widening
the window between the work and the commit) takes concurrent writes of every kind: single
features, layer registrations, uploads (create and append), addresses, departments and keys.
It is killed with SIGKILL while they run. Afterwards every write a client saw acknowledged must
be in the database, and what is there beyond that is only the writes still in flight at the kill
(committed, but the answer lost with the process).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.db import session_scope
from tests.address_library import load
from tests.layers_helpers import collection, layer_id, point_features
from tests.live_server import live_server

FAULT_SERVER = Path(__file__).with_name("fault_server.py")
WRITERS_PER_KIND = 2
RUN_SECONDS = 4.0


@dataclass
class Kind:
    """One kind of write: ``send`` makes the i-th write and returns what identifies it when it
    was acknowledged (None when the answer was not a success); ``stored`` lists what the
    database holds afterwards, in the same terms."""

    name: str
    send: Callable[[httpx.Client, int], str | None]
    stored: Callable[[], set[str]]
    acknowledged: set[str] = field(default_factory=set)
    in_flight: int = 0


def _ok(response: httpx.Response) -> bool:
    return response.status_code in (200, 201)


@pytest.fixture(scope="module")
def kinds(client: TestClient, admin_headers: dict[str, str], make_department) -> list[Kind]:
    load()  # admin areas and a few addresses, for address writes
    dept = make_department()
    editor, admin = dept.editor, admin_headers
    tag = secrets.token_hex(3)

    features_layer, append_layer = layer_id("crash"), layer_id("crash")
    for lid in (features_layer, append_layer):
        r = client.post(
            f"/collections/{lid}/upload",
            params={"access": "private"},
            files={"file": ("seed.geojson", collection(point_features(1)))},
            headers=editor,
        )
        assert r.status_code == 201, r.text
    with session_scope() as session:
        lon, lat = session.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p "
                "FROM current_admin_areas WHERE level = 'district' AND name = '和平区') s"
            )
        ).one()

    def items(lid: str) -> list[dict[str, Any]]:
        r = client.get(f"/collections/{lid}/items", params={"limit": 10000}, headers=editor)
        assert r.status_code == 200, r.text
        return list(r.json()["features"])

    def collections(prefix: str) -> set[str]:
        r = client.get("/collections", headers=editor)
        assert r.status_code == 200, r.text
        return {c["id"] for c in r.json()["collections"] if c["id"].startswith(prefix)}

    def feature(http: httpx.Client, i: int) -> str | None:
        body = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [117.2 + i * 1e-5, 39.1]},
            "properties": {"name": f"f{i}"},
        }
        r = http.post(f"/collections/{features_layer}/items", json=body, headers=editor)
        return str(r.json()["id"]) if _ok(r) else None

    def layer(http: httpx.Client, i: int) -> str | None:
        lid = f"crash_{tag}_layer_{i}"
        r = http.post("/collections", json={"id": lid, "geometry_type": "Point"}, headers=editor)
        return lid if _ok(r) else None

    def upload_create(http: httpx.Client, i: int) -> str | None:
        lid = f"crash_{tag}_upload_{i}"
        r = http.post(
            f"/collections/{lid}/upload",
            files={"file": ("u.geojson", collection(point_features(50)))},
            headers=editor,
        )
        return lid if _ok(r) else None

    def upload_append(http: httpx.Client, i: int) -> str | None:
        batch = point_features(10)
        for k, f in enumerate(batch):
            f["properties"]["name"] = f"a{i}-{k}"
        r = http.post(
            f"/collections/{append_layer}/upload",
            params={"mode": "append"},
            files={"file": ("a.geojson", collection(batch))},
            headers=editor,
        )
        return str(i) if _ok(r) else None

    def appended() -> set[str]:
        names = [f["properties"]["name"] for f in items(append_layer)]
        batches: dict[str, int] = {}
        for name in names:
            if name.startswith("a"):
                batches[name[1:].split("-")[0]] = batches.get(name[1:].split("-")[0], 0) + 1
        # All or nothing: a batch is stored whole or not at all.
        assert set(batches.values()) <= {10}, batches
        return set(batches)

    def address(http: httpx.Client, i: int) -> str | None:
        body = {
            "district": "和平区",
            "road": f"崩溃测试{tag}路",
            "house_number": str(i + 1),
            "lon": lon,
            "lat": lat,
        }
        r = http.post("/addresses", json=body, headers=admin)
        return str(r.json()["id"]) if _ok(r) else None

    def addresses() -> set[str]:
        with session_scope() as session:
            rows = session.execute(
                text("SELECT id FROM addresses WHERE road = :road"), {"road": f"崩溃测试{tag}路"}
            )
            return {str(row[0]) for row in rows}

    def department(http: httpx.Client, i: int) -> str | None:
        code = f"crash-{tag}-{i}"
        r = http.post("/departments", json={"name": f"崩溃 {i}", "code": code}, headers=admin)
        return code if _ok(r) else None

    def departments() -> set[str]:
        r = client.get("/departments", headers=admin)
        assert r.status_code == 200, r.text
        return {d["code"] for d in r.json()["departments"] if d["code"].startswith(f"crash-{tag}-")}

    def key(http: httpx.Client, i: int) -> str | None:
        r = http.post(f"/departments/{dept.code}/keys", json={"role": "viewer"}, headers=admin)
        return str(r.json()["id"]) if _ok(r) else None

    def keys() -> set[str]:
        r = client.get(f"/departments/{dept.code}/keys", headers=admin)
        assert r.status_code == 200, r.text
        return {str(k["id"]) for k in r.json()["keys"]}

    seeded = {str(f["id"]) for f in items(features_layer)}
    seeded_keys = keys()
    return [
        Kind("feature", feature, lambda: {str(f["id"]) for f in items(features_layer)} - seeded),
        Kind("layer", layer, lambda: collections(f"crash_{tag}_layer_")),
        Kind("upload", upload_create, lambda: collections(f"crash_{tag}_upload_")),
        Kind("append", upload_append, appended),
        Kind("address", address, addresses),
        Kind("department", department, departments),
        Kind("key", key, lambda: keys() - seeded_keys),
    ]


def _writer(base: str, kind: Kind, first: int, stop: threading.Event, lock: threading.Lock) -> None:
    i = first
    with httpx.Client(base_url=base, timeout=30) as http:
        while not stop.is_set():
            with lock:
                kind.in_flight += 1
            try:
                acknowledged = kind.send(http, i)
            except (httpx.HTTPError, orjson.JSONDecodeError, ValueError):
                return  # the server died under this request: not acknowledged
            with lock:
                kind.in_flight -= 1
                if acknowledged is not None:
                    kind.acknowledged.add(acknowledged)
            i += 1


def test_kill_9_loses_no_acknowledged_write(kinds: list[Kind]) -> None:
    env = {"GEO_TEST_COMMIT_DELAY_S": "0.3", "GEO_RATE_LIMITS": "off"}  # writes, not 429s
    with live_server(launcher=FAULT_SERVER, env=env) as server:
        # One write of each kind first: the first address write loads the gazetteer, which may
        # take longer than the run itself on a busy machine.
        with httpx.Client(base_url=server.base, timeout=120) as http:
            for kind in kinds:
                warm = kind.send(http, 500)  # the writers use n * 1000 + 0..~100
                assert warm is not None, f"{kind.name}: the warm-up write failed"
                kind.acknowledged.add(warm)
        stop, lock = threading.Event(), threading.Lock()
        threads = [
            threading.Thread(target=_writer, args=(server.base, kind, n * 1000, stop, lock))
            for kind in kinds
            for n in range(WRITERS_PER_KIND)
        ]
        for t in threads:
            t.start()
        time.sleep(RUN_SECONDS)
        server.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=60)
    for kind in kinds:
        stored = kind.stored()
        assert len(kind.acknowledged) > 1, f"{kind.name}: no write acknowledged during the run"
        lost = kind.acknowledged - stored
        assert not lost, f"{kind.name}: acknowledged but not stored after kill -9: {sorted(lost)}"
        unacknowledged = stored - kind.acknowledged
        assert len(unacknowledged) <= kind.in_flight, (
            f"{kind.name}: stored without an acknowledgement beyond the writes in flight",
            sorted(unacknowledged),
            kind.in_flight,
        )

"""Sixteen writers on one layer for 30 s do not freeze the server (bench/write_load.py).

A real server process with one worker, as the issue was found (rate limits off): meanwhile
`/health` and a tile of the layer must answer within a second every time, and every acknowledged
write must be stored.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from bench.write_load import run_write_load
from tests.layers_helpers import make_points_layer
from tests.live_server import live_server

WRITERS = 16
SECONDS = 30.0
WORST_S = 1.0


def test_sixteen_writers_do_not_stall_reads(client: TestClient, make_department) -> None:
    dept = make_department()
    layer = make_points_layer(client, dept.editor, n=10, access="private")
    # 16 writers with one key exceed the default rate limit on purpose: limits off here.
    with live_server(workers=1, env={"GEO_RATE_LIMITS": "off"}) as server:
        load = run_write_load(server.base, layer, dept.editor, WRITERS, SECONDS)
        assert server.alive()
    # A frozen worker answers no probe at all: the prober must have run throughout.
    assert len(load.health_s) > SECONDS / 1.5, f"{len(load.health_s)} /health probes answered"
    print(
        f"\n{WRITERS} writers x {SECONDS:.0f} s: {len(load.acknowledged)} writes "
        f"({load.writes_per_s:.0f}/s); worst /health {max(load.health_s) * 1000:.0f} ms, "
        f"worst tile {max(load.tile_s) * 1000:.0f} ms over {len(load.health_s)} probes"
    )
    assert not load.failures, load.failures[:5]
    assert max(load.health_s) < WORST_S, sorted(load.health_s)[-5:]
    assert max(load.tile_s) < WORST_S, sorted(load.tile_s)[-5:]
    r = client.get(f"/collections/{layer}/items", params={"limit": 10000}, headers=dept.editor)
    stored = {f["id"] for f in r.json()["features"]}
    missing = load.acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged writes are not stored"

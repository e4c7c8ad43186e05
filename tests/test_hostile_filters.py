"""Filters built to crash or stall the parser are refused before any parser sees them.

The ``cql2`` library is native code: about 1,900 nested brackets (4 KB of text) overflow its
stack, a segmentation fault that takes the whole server process down, and text that fails to
parse a dozen brackets deep keeps it busy for seconds with the GIL held. These tests send such
filters on every route that takes one, to the in-process app and to a real ``geo serve``
process, and show that the unguarded library really does crash.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from geo.settings import get_settings
from layers.cql import FULL_SIZE_DEPTH, text_nesting
from tests.layers_helpers import make_points_layer
from tests.live_server import live_server

DEPTH = 1_900
DEEP_TEXT = "(" * DEPTH + "pop = 1" + ")" * DEPTH
# Unbracketed nesting the library recurses on just the same (each crashes it at 4,000).
DEEP_CHAINS = ("NOT " * 4_000 + "pop = 1", "pop = " + "-" * 4_000 + "1", "pop = 1" + "+1" * 4_000)
# Fails to parse 16 brackets deep: the unguarded library takes seconds over these 400 bytes.
BACKTRACKING = "(" * 16 + "pop = 1 AND " * 30 + "pop =" + ")" * 16


def deep_json_text(depth: int) -> str:
    """CQL2-JSON ``depth`` NOTs deep, written directly: orjson writes at most 255 levels."""
    inner = '{"op": "=", "args": [{"property": "pop"}, 1]}'
    return '{"op": "not", "args": [' * depth + inner + "]}" * depth


def deep_json_filter(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"op": "=", "args": [{"property": "pop"}, 1]}
    for _ in range(depth):
        node = {"op": "not", "args": [node]}
    return node


@pytest.fixture(scope="module")
def layer(client: TestClient, make_department) -> str:
    return make_points_layer(client, make_department().editor, n=10)


def _items(client: TestClient, layer: str, text: str, lang: str | None = None) -> Any:
    params = {"filter": text} | ({"filter-lang": lang} if lang else {})
    return client.get(f"/collections/{layer}/items", params=params)


def _refused(response: Any, code: str, setting: str) -> None:
    assert response.status_code == 400, response.text[:500]
    body = response.json()
    assert body["code"] == code, body
    assert setting in body["message"], body


def test_the_unguarded_library_crashes_on_a_deep_filter() -> None:
    """Why the guard exists: parsed directly, the deep filter kills the process with a signal."""
    script = f"import cql2; cql2.parse_text({DEEP_TEXT!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode < 0, (result.returncode, result.stderr[-500:])


def test_deep_text_filters_are_a_400(client: TestClient, layer: str) -> None:
    _refused(_items(client, layer, DEEP_TEXT), "InvalidFilter", "GEO_MAX_JSON_DEPTH")
    for chain in DEEP_CHAINS:
        _refused(_items(client, layer, chain), "InvalidFilter", "GEO_MAX_JSON_DEPTH")
    # Explicit language, and the server still answers afterwards.
    _refused(_items(client, layer, DEEP_TEXT, "cql2-text"), "InvalidFilter", "GEO_MAX_JSON_DEPTH")
    assert _items(client, layer, "pop = 1").status_code == 200


def test_backtracking_filters_are_refused_at_once(client: TestClient, layer: str) -> None:
    started = time.perf_counter()
    response = _items(client, layer, BACKTRACKING)
    assert time.perf_counter() - started < 1.0
    _refused(response, "InvalidFilter", "GEO_MAX_FILTER_BYTES")
    assert response.json()["details"]["brackets"] == 16


def test_brackets_in_strings_do_not_count(client: TestClient, layer: str) -> None:
    quoted = "(" * 200 + "it''s" + ")" * 200
    r = _items(client, layer, f"name = '{quoted}' OR \"name\" = 'p3'")
    assert r.status_code == 200, r.text
    assert [f["properties"]["name"] for f in r.json()["features"]] == ["p3"]
    nested = "((pop = 1 OR (pop = 2 AND NOT (score < 0))) AND S_INTERSECTS(geom, " + (
        "POLYGON((117 39, 118 39, 118 40, 117 40, 117 39))))"
    )
    r = _items(client, layer, nested)
    assert r.status_code == 200 and r.json()["numberMatched"] == 4, r.text  # p1, p2, p8, p9


def test_text_nesting_measures_without_parsing() -> None:
    big = 1 << 40
    assert text_nesting("a = 1", 32, big).depth == 0
    assert text_nesting("((a = 1) AND (b = 2))", 32, big).depth == 2
    assert text_nesting("a = '((((' AND \"b((\" = ')'''", 32, big).brackets == 0
    assert text_nesting("NOT NOT NOT a = 1", 32, big).depth == 3
    assert text_nesting("a IN (-1, -2, -3, -4) AND b = 1 - 2", 32, big).depth == 2
    assert text_nesting("a = 1" + " AND a = 1" * 1000, 32, big).depth == 0
    # Work: each character weighs 2**brackets around it.
    assert text_nesting("(((ab)))", 32, big).work == 1 + 2 + 4 + 8 * 2 + 8 + 4 + 2
    # The scan stops at the first limit exceeded: it never walks all of a hostile text.
    assert text_nesting("(" * 10_000, 32, big).depth == 33


def test_filter_size_is_bounded(client: TestClient, layer: str) -> None:
    limit = get_settings().max_filter_bytes
    names = ", ".join(f"'p{i}'" for i in range(limit // 6))
    assert limit < len(f"name IN ({names})") < 2 * limit
    _refused(_items(client, layer, f"name IN ({names})"), "InvalidFilter", "GEO_MAX_FILTER_BYTES")
    fitting = ", ".join(f"'p{i}'" for i in range(limit // 10))
    assert len(f"name IN ({fitting})") < limit
    r = _items(client, layer, f"name IN ({fitting})")
    assert r.status_code == 200 and r.json()["numberMatched"] == 10, r.text
    # A polygon's coordinates sit three brackets deep and may use the whole size.
    turns = [2 * math.pi * i / ((limit - 60) // 20) for i in range((limit - 60) // 20)]
    ring = [f"{117.2 + 0.05 * math.cos(a):.5f} {39.1 + 0.05 * math.sin(a):.5f}" for a in turns]
    polygon = f"S_INTERSECTS(geom, POLYGON(({', '.join([*ring, ring[0]])})))"
    assert limit * 0.95 < len(polygon) <= limit
    assert text_nesting(polygon, 32, 1 << 40).brackets == 3
    assert text_nesting(polygon, 32, 1 << 40).work <= limit << FULL_SIZE_DEPTH
    r = _items(client, layer, polygon)
    assert r.status_code == 200 and r.json()["numberMatched"] == 10, r.text


def test_deep_json_filters_are_a_400(client: TestClient, layer: str) -> None:
    limit = get_settings().max_json_depth
    # 400 NOTs (800 levels) fit in the size limit and in what orjson reads (1,024 levels).
    for depth in (limit, 200, 400):
        r = _items(client, layer, deep_json_text(depth), "cql2-json")
        _refused(r, "InvalidFilter", "GEO_MAX_JSON_DEPTH")
    assert orjson.loads(deep_json_text(3)) == deep_json_filter(3)
    r = _items(client, layer, deep_json_text(3), "cql2-json")
    assert r.status_code == 200 and r.json()["numberMatched"] == 8, r.text  # NOT NOT NOT pop = 1
    too_big = orjson.dumps(
        {"op": "in", "args": [{"property": "name"}, [f"p{i}" for i in range(2_500)]]}
    ).decode()
    _refused(_items(client, layer, too_big, "cql2-json"), "InvalidFilter", "GEO_MAX_FILTER_BYTES")


def test_overlay_filters_are_bounded(client: TestClient, layer: str) -> None:
    def overlay(**extra: Any) -> Any:
        return client.post("/overlay", json={"layer": layer, "other": "districts"} | extra)

    for text in (DEEP_TEXT, *DEEP_CHAINS):
        _refused(overlay(filter=text), "InvalidFilter", "GEO_MAX_JSON_DEPTH")
        _refused(overlay(other_filter=text), "InvalidFilter", "GEO_MAX_JSON_DEPTH")
    _refused(overlay(filter=BACKTRACKING), "InvalidFilter", "GEO_MAX_FILTER_BYTES")
    # A deep JSON filter is refused with the body it came in, before anything walks it.
    deep = overlay(filter=deep_json_filter(100))
    _refused(deep, "TooDeep", "GEO_MAX_JSON_DEPTH")
    head = f'{{"layer": "{layer}", "other": "districts", "filter": '
    for deep_value in (deep_json_text(DEPTH), "[" * 5_000 + "]" * 5_000):
        raw = (head + deep_value + "}").encode()
        r = client.post("/overlay", content=raw, headers={"Content-Type": "application/json"})
        # Deeper than orjson reads (1,024 levels): refused while parsing the body.
        assert r.status_code == 400 and r.json()["code"] == "MalformedJSON", r.text
    ok = overlay(filter="pop = 1", output="aggregate")
    assert ok.status_code == 200, ok.text


def test_crs_transform_refuses_deep_properties(client: TestClient) -> None:
    properties: dict[str, Any] = {}
    node = properties
    for _ in range(600):  # orjson reads 1,024 levels but writes only 255: this was a 500
        node["a"] = {}
        node = node["a"]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [117.2, 39.1]},
        "properties": properties,
    }
    r = client.post("/crs/transform", params={"from": "CRS84", "to": "EPSG:4490"}, json=feature)
    _refused(r, "TooDeep", "GEO_MAX_JSON_DEPTH")


def test_a_real_server_survives_hostile_filters(layer: str) -> None:
    with live_server() as srv:
        items = f"{srv.base}/collections/{layer}/items"
        for text in (DEEP_TEXT, *DEEP_CHAINS, BACKTRACKING):
            r = httpx.get(items, params={"filter": text}, timeout=30)
            assert r.status_code == 400 and r.json()["code"] == "InvalidFilter", r.text
        deep_json = deep_json_text(400)
        r = httpx.get(items, params={"filter": deep_json, "filter-lang": "cql2-json"}, timeout=30)
        assert r.status_code == 400 and r.json()["code"] == "InvalidFilter", r.text
        raw = f'{{"layer": "{layer}", "other": "districts", "filter": {deep_json_text(DEPTH)}}}'
        r = httpx.post(f"{srv.base}/overlay", content=raw.encode(), timeout=30)
        assert r.status_code == 400 and r.json()["code"] == "MalformedJSON", r.text
        for body in (
            {"layer": layer, "other": "districts", "filter": DEEP_TEXT},
            {"layer": layer, "other": "districts", "other_filter": DEEP_CHAINS[0]},
            {"layer": layer, "other": "districts", "filter": deep_json_filter(100)},
        ):
            r = httpx.post(f"{srv.base}/overlay", json=body, timeout=30)
            assert r.status_code == 400 and r.json()["code"] in ("InvalidFilter", "TooDeep")
        assert srv.alive(), srv.log()[-3000:]
        assert httpx.get(f"{srv.base}/health", timeout=10).status_code == 200
        r = httpx.get(items, params={"filter": "pop = 1"}, timeout=30)
        assert r.status_code == 200 and r.json()["numberMatched"] == 2  # p1, p8

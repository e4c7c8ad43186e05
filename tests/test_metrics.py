"""/metrics: Prometheus text, admin keys only, with the series operators watch."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Dept
from tests.layers_helpers import collection, layer_id, make_points_layer, point_features, upload


def _samples(client: TestClient, headers: dict[str, str]) -> dict[str, list[tuple[dict, float]]]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _value(samples: dict, name: str, **labels: str) -> float:
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def test_metrics_need_an_admin_key(client: TestClient, make_department) -> None:
    assert client.get("/metrics").status_code == 401
    dept: Dept = make_department()
    assert client.get("/metrics", headers=dept.viewer).status_code == 403


def test_requests_tiles_pools_and_geocoder_are_counted(
    client: TestClient, admin_headers: dict[str, str], make_department
) -> None:
    dept: Dept = make_department()
    layer = make_points_layer(client, dept.editor, n=5, access="public")
    before = _samples(client, admin_headers)
    tile = f"/tiles/{layer}/14/13525/6255.mvt"
    for _ in range(2):  # a miss, then a hit
        assert client.get(tile).status_code in (200, 204)
    assert (
        client.get("/addresses/geocode", params={"q": "天津市和平区南京路1号"}).status_code == 200
    )
    after = _samples(client, admin_headers)

    route = {"route": "/tiles/{layers}/{z}/{x}/{y}.mvt", "method": "GET"}
    count = "geo_http_request_duration_seconds_count"
    assert _value(after, count, **route) - _value(before, count, **route) == 2
    lookups = "geo_tile_cache_lookups_total"
    assert _value(after, lookups, result="miss") - _value(before, lookups, result="miss") >= 1
    assert _value(after, lookups, result="hit") - _value(before, lookups, result="hit") >= 1
    geocode = "geo_geocode_duration_seconds_count"
    assert _value(after, geocode) - _value(before, geocode) == 1
    assert "geo_db_pool_connections" in after
    assert _value(after, "geo_db_pool_connections", pool="primary", state="idle") >= 1
    assert "geo_db_sessions_waiting" in after
    assert "geo_tile_pool_connections" in after


def test_unmatched_paths_share_one_series(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    for path in ("/no/such/a", "/no/such/b"):
        assert client.get(path).status_code == 404
    samples = _samples(client, admin_headers)
    routes = {got["route"] for got, _ in samples["geo_http_request_duration_seconds_count"]}
    assert "unmatched" in routes and not any(r.startswith("/no/such") for r in routes)


def test_layer_uploads_count_bytes_and_rows_once_committed(
    client: TestClient, admin_headers: dict[str, str], make_department
) -> None:
    dept: Dept = make_department()
    good = collection(point_features(7))
    bad = collection([*point_features(2), {"type": "Feature", "geometry": None, "properties": {}}])
    before = _samples(client, admin_headers)
    lid = layer_id()
    assert upload(client, dept.editor, lid, good).status_code == 201
    assert upload(client, dept.editor, lid, good, mode="append").status_code == 200
    refused = upload(client, dept.editor, lid, bad, mode="append")  # nothing written
    assert refused.status_code == 422, refused.text
    after = _samples(client, admin_headers)

    rows, size = "geo_upload_rows_total", "geo_upload_bytes_total"
    assert _value(after, rows, kind="layers") - _value(before, rows, kind="layers") == 14
    assert _value(after, size, kind="layers") - _value(before, size, kind="layers") == 2 * len(good)

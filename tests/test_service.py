"""The service shell: health, landing page, conformance, OpenAPI, error format, strict queries."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_health_reports_postgis(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"]["postgresql"].split(".")[0].isdigit()
    assert body["database"]["postgis"].startswith("3.")


def test_landing_page_links(client: TestClient) -> None:
    r = client.get("/", headers={"Accept": "*/*"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    rels = {link["rel"]: link["href"] for link in r.json()["links"]}
    assert rels["conformance"].endswith("/conformance")
    assert rels["service-desc"].endswith("/api")
    assert rels["data"].endswith("/collections")


def test_conformance_lists_core(client: TestClient) -> None:
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core" in classes


def test_openapi_document(client: TestClient) -> None:
    doc = client.get("/api").json()
    assert doc["openapi"].startswith("3.")
    assert "/departments" in doc["paths"]
    assert "/crs/transform" in doc["paths"]


def test_unknown_query_parameter_is_400(client: TestClient) -> None:
    r = client.get("/health", params={"bbbox": "1,2,3,4"})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "UnknownParameter"
    assert "bbbox" in body["message"]
    assert body["details"]["unknown"] == ["bbbox"]


def test_unknown_route_is_json_404(client: TestClient) -> None:
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert set(r.json()) == {"code", "message", "details"}


def test_wrong_method_is_json_405(client: TestClient) -> None:
    r = client.delete("/health")
    assert r.status_code == 405
    assert r.json()["code"] == "MethodNotAllowed"

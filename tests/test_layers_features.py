"""OGC API - Features Parts 1-3 on a department layer: paging, bbox, CRS, formats, CQL2."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo import crs
from geo.db import session_scope
from tests.layers_helpers import CENTER, make_points_layer

N = 25


@pytest.fixture(scope="module")
def layer(client: TestClient, make_department) -> str:
    dept = make_department()
    return make_points_layer(client, dept.editor, N)


def _get(client, lid, **params):
    r = client.get(f"/collections/{lid}/items", params=params)
    assert r.status_code == 200, r.text
    return r


def test_conformance_lists_features_parts(client: TestClient) -> None:
    classes = client.get("/conformance").json()["conformsTo"]
    for part in (
        "ogcapi-features-1/1.0/conf/core",
        "ogcapi-features-2/1.0/conf/crs",
        "ogcapi-features-3/1.0/conf/filter",
        "ogcapi-features-4/1.0/conf/create-replace-delete",
        "cql2/1.0/conf/cql2-text",
    ):
        assert any(c.endswith(part) for c in classes), part


def test_paging_links_and_counts(client: TestClient, layer: str) -> None:
    r = _get(client, layer, limit=10)
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["numberMatched"] == N and body["numberReturned"] == 10
    rels = {link["rel"]: link["href"] for link in body["links"]}
    assert {"self", "next", "collection", "alternate"} <= set(rels)
    seen = [f["id"] for f in body["features"]]
    url = rels["next"]
    while url:
        page = client.get(url).json()
        seen += [f["id"] for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert len(seen) == N and len(set(seen)) == N
    last = client.get(f"/collections/{layer}/items", params={"limit": 10, "offset": 20}).json()
    assert "prev" in {link["rel"] for link in last["links"]}


def test_limit_is_clamped_and_validated(client: TestClient, layer: str, monkeypatch) -> None:
    from geo.settings import get_settings

    monkeypatch.setattr(get_settings(), "max_items_limit", 5)
    assert _get(client, layer, limit=1000).json()["numberReturned"] == 5
    assert client.get(f"/collections/{layer}/items", params={"limit": 0}).status_code == 400
    assert client.get(f"/collections/{layer}/items", params={"limit": "x"}).status_code == 400


def test_json_by_default_html_for_browsers(client: TestClient, layer: str) -> None:
    r = client.get(f"/collections/{layer}/items", headers={"Accept": "*/*"})
    assert r.headers["content-type"].startswith("application/geo+json")
    r = client.get(
        f"/collections/{layer}/items",
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert r.headers["content-type"].startswith("text/html") and "<table>" in r.text
    assert client.get(f"/collections/{layer}", params={"f": "html"}).text.startswith(
        "<!doctype html>"
    )
    assert client.get("/collections", headers={"Accept": "text/html"}).status_code == 200
    assert client.get(f"/collections/{layer}/items", params={"f": "xml"}).status_code == 400


def test_unknown_parameter_is_400(client: TestClient, layer: str) -> None:
    r = client.get(f"/collections/{layer}/items", params={"bbbox": "1,2,3,4"})
    assert r.status_code == 400 and r.json()["code"] == "UnknownParameter"


def test_bbox_and_bbox_crs(client: TestClient, layer: str) -> None:
    # Points p0..p24 at CENTER + i*(0.001, 0.0005): p0..p4 lie in this box.
    box = [CENTER[0] - 0.0001, CENTER[1] - 0.0001, CENTER[0] + 0.0041, CENTER[1] + 0.00205]
    body = _get(client, layer, bbox=",".join(map(str, box))).json()
    assert body["numberMatched"] == 5
    uri = "http://www.opengis.net/def/crs/EPSG/0/4490"  # lat/lon order by definition
    yx = [box[1], box[0], box[3], box[2]]
    assert (
        _get(client, layer, bbox=",".join(map(str, yx)), **{"bbox-crs": uri}).json()[
            "numberMatched"
        ]
        == 5
    )
    xs, ys = crs.transform_xy([box[0], box[2]], [box[1], box[3]], "EPSG:4490", "EPSG:3857")
    merc = f"{xs[0]},{ys[0]},{xs[1]},{ys[1]}"
    assert _get(client, layer, bbox=merc, **{"bbox-crs": "EPSG:3857"}).json()["numberMatched"] == 5
    for bad in ("1,2,3", "a,b,c,d", "3,3,1,1"):
        assert client.get(f"/collections/{layer}/items", params={"bbox": bad}).status_code == 400
    r = client.get(f"/collections/{layer}/items", params={"bbox": "1,2,3,4", "bbox-crs": "EPSG:1"})
    assert r.status_code == 400 and r.json()["code"] == "UnknownCRS"


def test_output_crs_axis_order_and_content_crs(client: TestClient, layer: str) -> None:
    default = _get(client, layer, limit=1, sortby="name")
    assert default.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    lon, lat = default.json()["features"][0]["geometry"]["coordinates"]
    uri = "http://www.opengis.net/def/crs/EPSG/0/4490"
    r = _get(client, layer, limit=1, sortby="name", crs=uri)
    assert r.headers["content-crs"] == f"<{uri}>"
    assert r.json()["features"][0]["geometry"]["coordinates"] == pytest.approx([lat, lon])
    g = _get(client, layer, limit=1, sortby="name", crs="GCJ02").json()
    gx, gy = g["features"][0]["geometry"]["coordinates"]
    back = crs.transform_xy([gx], [gy], "GCJ02", "EPSG:4490")
    assert [back[0][0], back[1][0]] == pytest.approx([lon, lat], abs=1e-8)
    gk = _get(client, layer, limit=1, sortby="name", crs="EPSG:4548").json()
    northing, easting = gk["features"][0]["geometry"]["coordinates"]
    assert 4_000_000 < northing < 5_000_000 and 400_000 < easting < 600_000
    single = client.get(
        f"/collections/{layer}/items/{default.json()['features'][0]['id']}", params={"crs": uri}
    )
    assert single.json()["geometry"]["coordinates"] == pytest.approx([lat, lon])
    assert client.get(f"/collections/{layer}/items", params={"crs": "EPSG:0"}).status_code == 400


def test_properties_sortby_and_property_filters(client: TestClient, layer: str) -> None:
    body = _get(client, layer, properties="name", sortby="-name", limit=3).json()
    assert [f["properties"] for f in body["features"]] == [
        {"name": "p9"},
        {"name": "p8"},
        {"name": "p7"},
    ]
    assert _get(client, layer, pop=3).json()["numberMatched"] == len(
        [i for i in range(N) if i % 7 == 3]
    )
    assert client.get(f"/collections/{layer}/items", params={"pop": "three"}).status_code == 400
    assert client.get(f"/collections/{layer}/items", params={"sortby": "nope"}).status_code == 400
    assert (
        client.get(f"/collections/{layer}/items", params={"properties": "nope"}).status_code == 400
    )


def test_single_item_and_404(client: TestClient, layer: str) -> None:
    first = _get(client, layer, limit=1).json()["features"][0]
    r = client.get(f"/collections/{layer}/items/{first['id']}")
    assert r.status_code == 200 and r.headers["etag"] == '"1"'
    assert r.json()["properties"] == first["properties"]
    assert client.get(f"/collections/{layer}/items/999999").status_code == 404
    assert client.get(f"/collections/{layer}/items/abc").status_code == 404


def test_csv_output(client: TestClient, layer: str) -> None:
    r = _get(client, layer, f="csv", limit=5, sortby="name")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["id", "name", "pop", "score", "wkt"] and len(rows) == 6
    assert rows[1][1] == "p0" and rows[1][4].startswith("POINT (117.2 39.1")


def test_queryables(client: TestClient, layer: str) -> None:
    r = client.get(f"/collections/{layer}/queryables")
    assert r.headers["content-type"].startswith("application/schema+json")
    props = r.json()["properties"]
    assert props["pop"]["type"] == "integer" and props["name"]["type"] == "string"
    assert props["geometry"]["format"] == "geometry-point"


@pytest.mark.parametrize(
    ("expr", "lang", "expected"),
    [
        ("pop = 3", "cql2-text", [3, 10, 17, 24]),
        ("pop BETWEEN 5 AND 6 AND score < 3", "cql2-text", [5, 6]),
        ("name LIKE 'p1_'", "cql2-text", list(range(10, 20))),
        ("name IN ('p1', 'p2') OR pop IS NULL", "cql2-text", [1, 2]),
        ("NOT (pop < 6)", "cql2-text", [6, 13, 20]),
        ("CASEI(name) = casei('P4')", "cql2-text", [4]),
        ("S_INTERSECTS(geom, BBOX(117.1999, 39.0999, 117.2021, 39.1011))", "cql2-text", [0, 1, 2]),
        ("S_DWITHIN(geometry, POINT(117.2 39.1), 120, meters)", "cql2-text", [0, 1]),
        (
            '{"op":"and","args":[{"op":">=","args":[{"property":"pop"},5]},'
            '{"op":"<","args":[{"property":"score"},2]}]}',
            "cql2-json",
            [5, 6],
        ),
        (
            '{"op":"s_within","args":[{"property":"geometry"},{"type":"Polygon","coordinates":'
            "[[[117.1999,39.0999],[117.2011,39.0999],[117.2011,39.1011],[117.1999,39.1011],"
            "[117.1999,39.0999]]]}]}",
            "cql2-json",
            [0, 1],
        ),
    ],
)
def test_cql2_filters(
    client: TestClient, layer: str, expr: str, lang: str, expected: list[int]
) -> None:
    body = _get(client, layer, filter=expr, **{"filter-lang": lang}, limit=100).json()
    assert sorted(int(f["properties"]["name"][1:]) for f in body["features"]) == expected
    assert body["numberMatched"] == len(expected)


def test_cql2_filter_crs(client: TestClient, layer: str) -> None:
    x, y = crs.transform_xy([117.2], [39.1], "EPSG:4490", "EPSG:4548")
    expr = f"S_DWITHIN(geom, POINT({x[0]} {y[0]}), 120, meters)"
    body = _get(client, layer, filter=expr, **{"filter-crs": "EPSG:4548"}).json()
    assert body["numberMatched"] == 2


def test_cql2_injection_attempts(client: TestClient, layer: str) -> None:
    count_before = _get(client, layer, limit=1).json()["numberMatched"]
    for expr in ('"name; DROP TABLE layers; --" = 1', '"pop) OR (1=1" = 1', "nosuch = 1"):
        r = client.get(f"/collections/{layer}/items", params={"filter": expr})
        assert r.status_code == 400, (expr, r.text)
        assert r.json()["code"] == "InvalidFilter"
    r = _get(client, layer, filter="name LIKE '%'' OR ''1''=''1'")
    assert r.json()["numberMatched"] == 0
    r = _get(client, layer, filter="name = 'x'';DROP TABLE layers;--'")
    assert r.json()["numberMatched"] == 0
    for bad in (
        "pop = 'abc'",
        "pop >",
        "T_AFTER(name, TIMESTAMP('2020-01-01T00:00:00Z'))",
        '{"op": "="',
    ):
        assert client.get(f"/collections/{layer}/items", params={"filter": bad}).status_code == 400
    deep = "NOT (" * 40 + "pop = 1" + ")" * 40
    assert client.get(f"/collections/{layer}/items", params={"filter": deep}).status_code == 400
    assert _get(client, layer, limit=1).json()["numberMatched"] == count_before
    with session_scope() as s:
        assert s.execute(text("SELECT to_regclass('public.layers')")).scalar() is not None


def test_datetime_instants_and_intervals(client: TestClient, make_department) -> None:
    from tests.layers_helpers import collection, layer_id, point_features, upload

    dept = make_department()
    feats = point_features(6)
    for i, f in enumerate(feats):
        f["properties"]["seen"] = f"2024-05-0{i + 1}T08:00:00+08:00"
        f["properties"]["day"] = f"2024-05-0{i + 1}"
    meta = {
        "properties": [
            {"name": "name", "type": "string"},
            {"name": "pop", "type": "integer"},
            {"name": "score", "type": "number"},
            {"name": "seen", "type": "datetime"},
            {"name": "day", "type": "date"},
        ]
    }
    lid = layer_id()
    r = upload(client, dept.editor, lid, collection(feats), metadata=meta, access="public")
    assert r.status_code == 201, r.text

    def names(value: str) -> list[str]:
        body = _get(client, lid, datetime=value, sortby="name").json()
        return [f["properties"]["name"] for f in body["features"]]

    assert names("2024-05-02T00:00:00Z") == ["p1"]  # 08:00 in Beijing is 00:00 UTC
    assert names("2024-05-03") == ["p2"]  # a whole day
    assert names("2024-05-02/2024-05-04") == ["p1", "p2", "p3"]
    assert names("../2024-05-02T00:00:00Z") == ["p0", "p1"]
    assert names("2024-05-05T00:00:00Z/..") == ["p4", "p5"]
    for bad in ("yesterday", "2024-05-04/2024-05-01", "../..", "a/b/c"):
        r = client.get(f"/collections/{lid}/items", params={"datetime": bad})
        assert r.status_code == 400 and "datetime" in r.json()["message"], bad


def test_datetime_on_a_collection_without_time(client: TestClient, layer: str) -> None:
    r = client.get(f"/collections/{layer}/items", params={"datetime": "2024-05-01"})
    assert r.status_code == 400
    assert "no date or datetime property" in r.json()["message"]

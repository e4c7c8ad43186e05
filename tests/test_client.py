"""geo.client against a real `geo serve` process on the test database: layers, reads across
several pages in several CRSs, uploads in every mode, batch geocoding, overlays, and the
service's errors as ApiError. Data is set up through the in-process app, read back through the
client as an analyst would."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer

from geo.client import ApiError, Client
from geo.db import session_scope
from tests.address_library import HOUSES, ROOMS, Stored, fresh_names, load, pick
from tests.conftest import Dept
from tests.layers_helpers import collection, layer_id, point_features, square, upload
from tests.live_server import LiveServer, live_server

N = 25  # points in the public layer: three pages of 10
CLIENT_DIR = Path(__file__).resolve().parents[1] / "geo" / "client"
CLIENT_IMPORTS = {"httpx", "geopandas", "pandas", "shapely", "pyproj"}


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    with live_server() as running:
        yield running


@pytest.fixture(scope="module")
def dept(make_department) -> Dept:
    return make_department()


def key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def layers(client: TestClient, dept: Dept) -> dict[str, str]:
    public, private, areas = layer_id("cpub"), layer_id("cpriv"), layer_id("careas")
    r = upload(client, dept.editor, public, collection(point_features(N)), access="public")
    assert r.status_code == 201, r.text
    r = upload(client, dept.editor, private, collection(point_features(3)), access="private")
    assert r.status_code == 201, r.text
    # Two squares: the first holds p0..p9 (x 117.200..117.209), the second none of the points.
    polys = [
        {"type": "Feature", "geometry": square(117.1995, 39.0995, 0.0099), "properties": {"n": 1}},
        {"type": "Feature", "geometry": square(117.5, 39.3, 0.01), "properties": {"n": 2}},
    ]
    r = upload(client, dept.editor, areas, collection(polys), access="public")
    assert r.status_code == 201, r.text
    return {"public": public, "private": private, "areas": areas}


@pytest.fixture(scope="module")
def anonymous(server: LiveServer) -> Iterator[Client]:
    with Client(server.base) as api:
        yield api


@pytest.fixture(scope="module")
def editor(server: LiveServer, dept: Dept) -> Iterator[Client]:
    with Client(server.base, key_of(dept.editor), timeout=30) as api:
        yield api


def test_the_client_imports_nothing_of_the_server() -> None:
    """Analysts install the client without the service: only the client extra's libraries,
    the standard library and the client's own modules."""
    imported = set()
    for path in CLIENT_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    foreign = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] not in CLIENT_IMPORTS
        and name != "geo.client"
        and not name.startswith("geo.client.")
        and name != "__future__"
    }
    assert foreign == set()


def test_layers_lists_what_the_caller_may_read(
    anonymous: Client, editor: Client, layers: dict[str, str], dept: Dept
) -> None:
    public = anonymous.layers().set_index("id")
    assert layers["public"] in public.index and layers["private"] not in public.index
    assert "districts" in public.index and public.loc["districts", "read_only"]
    mine = editor.layers().set_index("id")
    row = mine.loc[layers["private"]]
    assert row["owner"] == dept.code and row["access"] == "private"
    assert row["geometry_type"] == "Point" and not row["read_only"]
    assert mine.loc[layers["public"], "access"] == "public"


def test_read_follows_next_links_across_pages(anonymous: Client, layers: dict[str, str]) -> None:
    frame = anonymous.read(layers["public"], page_size=10)
    assert len(frame) == N
    assert frame.crs == "OGC:CRS84" and frame.attrs["crs"] == "OGC:CRS84"
    assert list(frame["name"]) == [f"p{i}" for i in range(N)]
    assert frame.index.is_unique and frame.index.name == "id"
    expected = point_features(N)
    assert shapely.get_coordinates(frame.geometry) == pytest.approx(
        np.array([f["geometry"]["coordinates"] for f in expected])
    )
    assert len(anonymous.read(layers["public"], page_size=10, limit=12)) == 12
    assert len(anonymous.read(layers["public"], limit=4)) == 4


def test_read_with_bbox_filter_and_properties(anonymous: Client, layers: dict[str, str]) -> None:
    lid = layers["public"]
    boxed = anonymous.read(lid, bbox=(117.1995, 39.0995, 117.2045, 39.1025))
    assert sorted(boxed["name"]) == [f"p{i}" for i in range(5)]
    filtered = anonymous.read(lid, filter="pop = 3", properties=["name"], page_size=2)
    assert list(filtered.columns) == ["name", "geometry"]
    assert list(filtered["name"]) == [f"p{i}" for i in range(N) if i % 7 == 3]
    as_json = anonymous.read(lid, filter={"op": "<", "args": [{"property": "pop"}, 1]})
    assert list(as_json["name"]) == [f"p{i}" for i in range(N) if i % 7 == 0]


def test_read_in_other_crs_is_x_y_with_the_crs_set(
    anonymous: Client, layers: dict[str, str]
) -> None:
    lid = layers["public"]
    base = anonymous.read(lid)
    cgcs = anonymous.read(lid, crs="EPSG:4490")  # lat/lon on the wire, x/y in the frame
    assert cgcs.crs == "EPSG:4490"
    assert shapely.get_coordinates(cgcs.geometry) == pytest.approx(
        shapely.get_coordinates(base.geometry), abs=1e-7
    )
    mercator = anonymous.read(
        lid, crs="EPSG:3857", bbox=(117.1995, 39.0995, 117.2045, 39.1025), bbox_crs="CRS84"
    )
    assert mercator.crs == "EPSG:3857" and len(mercator) == 5
    to_3857 = Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True)
    first = base.geometry.loc[mercator.index[0]]
    assert (mercator.geometry.iloc[0].x, mercator.geometry.iloc[0].y) == pytest.approx(
        to_3857.transform(first.x, first.y), abs=0.01
    )
    gcj = anonymous.read(lid, crs="GCJ02", limit=3)
    assert gcj.crs is None and gcj.attrs["crs"] == "GCJ02"
    shift = gcj.geometry.iloc[0].distance(base.geometry.loc[gcj.index[0]])
    assert 0.001 < shift < 0.01  # GCJ-02's offset in Tianjin: some hundreds of metres


def test_upload_create_append_upsert_replace(anonymous: Client, editor: Client, dept: Dept) -> None:
    lid = layer_id("cup")
    frame = gpd.GeoDataFrame(
        {"code": ["a", "b"], "名称": ["甲", "乙"], "n": [1, 2]},
        geometry=[shapely.Point(117.21, 39.11), shapely.Point(117.22, 39.12)],
        crs="EPSG:4326",
    ).to_crs("EPSG:3857")
    report = editor.upload(frame, lid, access="private", title="测试点")
    assert report["collection"] == lid and report["features"] == 2, report
    assert report["crs"] == "EPSG:3857" and report["mode"] == "create"
    with pytest.raises(ApiError) as hidden:
        anonymous.read(lid)
    assert hidden.value.status == 404
    back = editor.read(lid)
    assert list(back["名称"]) == ["甲", "乙"]
    assert back.geometry.iloc[0].x == pytest.approx(117.21, abs=1e-6)
    more = gpd.GeoDataFrame(
        {"code": ["c"], "名称": ["丙"], "n": [3]}, geometry=[shapely.Point(117.23, 39.13)], crs=4326
    )
    assert editor.upload(more, lid, mode="append")["features"] == 1
    changed = more.assign(code=["a"], n=[10])
    assert editor.upload(changed, lid, mode="upsert", key_property="code")["features"] == 1
    after = editor.read(lid).set_index("code")
    assert after.loc["a", "n"] == 10 and len(after) == 3
    editor.upload(more, lid, mode="replace")
    assert list(editor.read(lid)["code"]) == ["c"]
    read_back = editor.read(lid)  # CRS84, as reads come by default
    assert editor.upload(read_back, lid, mode="append")["crs"] == "CRS84"
    gcj = editor.read(lid, crs="GCJ02")  # no pyproj CRS: the service's name in attrs
    assert editor.upload(gcj, lid, mode="append")["crs"] == "GCJ02"
    coords = shapely.get_coordinates(editor.read(lid).geometry)
    assert len(coords) == 4  # 1 replaced + 1 appended + 2 appended from GCJ-02, same place
    assert coords == pytest.approx(np.repeat(coords[:1], 4, axis=0), abs=1e-6)
    assert editor.layers().set_index("id").loc[lid, "title"] == "测试点"


def test_errors_carry_the_servers_json(
    server: LiveServer, anonymous: Client, editor: Client, layers: dict[str, str]
) -> None:
    with pytest.raises(ApiError) as missing:
        anonymous.read("no_such_layer_here")
    assert missing.value.status == 404 and missing.value.code == "NotFound"
    assert missing.value.request_id and missing.value.request_id in str(missing.value)
    with pytest.raises(ApiError) as bad_filter:
        anonymous.read(layers["public"], filter="pop = = 3")
    assert bad_filter.value.status == 400 and bad_filter.value.code == "InvalidFilter"
    assert bad_filter.value.message
    with Client(server.base, "tjg_not_a_real_key") as stranger, pytest.raises(ApiError) as bad_key:
        stranger.layers()
    assert bad_key.value.status == 401 and bad_key.value.code == "InvalidKey"
    outside = gpd.GeoDataFrame(
        {"n": [1, 2]}, geometry=[shapely.Point(117.2, 39.1), shapely.Point(10, 10)], crs=4326
    )
    with pytest.raises(ApiError) as rejected:
        editor.upload(outside, layer_id("cbad"))
    assert rejected.value.status == 422 and rejected.value.code == "InvalidFeatures"
    assert rejected.value.details["count"] == 1
    assert rejected.value.details["errors"][0]["index"] == 1


def test_geocode_keeps_rows_and_index(server: LiveServer, database_url: str, dept: Dept) -> None:
    load()
    with session_scope() as session:
        found: list[Stored] = pick(session, ROOMS, n=3) + pick(session, HOUSES, n=2)
    addresses = [a.full_address for a in found]
    frame = pd.DataFrame(
        {"地址": [addresses[0], "上海市南京东路100号", None, *addresses[1:]], "score": range(7)},
        index=[70, 10, 50, 20, 60, 30, 40],
    )
    with fresh_names(), Client(server.base, key_of(dept.viewer)) as api:
        out = api.geocode(frame, column="地址")
    assert list(out.index) == [70, 10, 50, 20, 60, 30, 40]
    assert list(out["score"]) == list(range(7))  # the caller's column kept
    matched = out.loc[[70, 20, 60, 30, 40]]
    assert list(matched["address_id"]) == [a.id for a in found]
    assert matched["confident"].all() and (matched["match_score"] >= 0.8).all()
    assert set(matched["level"]) <= {"room", "house_number", "building", "unit"}
    for (_, row), a in zip(matched.iterrows(), found, strict=True):
        assert (row.geometry.x, row.geometry.y) == pytest.approx((a.lon, a.lat), abs=1e-5)
    assert out.crs == "OGC:CRS84"
    assert out.loc[50, "geometry"] is None and pd.isna(out.loc[50, "address_id"])


def test_overlay_features_and_aggregates(anonymous: Client, layers: dict[str, str]) -> None:
    matched = anonymous.overlay(layers["public"], layers["areas"])
    assert sorted(matched["name"]) == sorted(f"p{i}" for i in range(10))
    assert matched.crs == "OGC:CRS84"
    assert matched.geometry.iloc[0].x == pytest.approx(117.2, abs=0.01)
    counts = anonymous.overlay(
        layers["public"], layers["areas"], output="aggregate", crs="EPSG:4490"
    )
    assert counts.crs == "EPSG:4490"
    assert sorted(counts["count"]) == [0, 10]
    assert counts.geometry.iloc[0].centroid.x > 100  # lat/lon on the wire, x/y in the frame
    with pytest.raises(ApiError) as bad:
        anonymous.overlay(layers["public"], layers["areas"], predicate="dwithin")
    assert bad.value.status == 400


def test_the_key_goes_in_the_header(server: LiveServer, layers: dict[str, str]) -> None:
    """The admin key reads a private layer through the header alone (links carry no key)."""
    with Client(server.base, os.environ["GEO_ADMIN_KEY"]) as admin:
        assert len(admin.read(layers["private"], page_size=2)) == 3


def test_the_readme_example_runs_as_written(server: LiveServer, dept: Dept) -> None:
    """geo/client/README.md's Python block, run in its own interpreter with GEO_URL and
    GEO_KEY set, as an analyst would paste it."""
    load()  # the districts the example aggregates by
    readme = (CLIENT_DIR / "README.md").read_text()
    (example,) = re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)
    env = {**os.environ, "GEO_URL": server.base, "GEO_KEY": key_of(dept.editor)}
    done = subprocess.run(
        [sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "2 features written" in done.stdout
    assert "400 InvalidFilter" in done.stdout


def test_nothing_found_is_an_empty_frame(
    anonymous: Client, layers: dict[str, str], dept: Dept, server: LiveServer
) -> None:
    none = anonymous.read(layers["public"], filter="pop > 100", crs="EPSG:4490")
    assert len(none) == 0 and none.crs == "EPSG:4490" and isinstance(none, gpd.GeoDataFrame)
    with Client(server.base, key_of(dept.viewer)) as api:
        empty = api.geocode(pd.DataFrame({"address": []}, index=pd.Index([], dtype=int)))
    assert len(empty) == 0 and "confident" in empty.columns

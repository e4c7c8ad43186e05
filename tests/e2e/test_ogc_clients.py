"""Real OGC clients against our server in its own process: GDAL's OAPIF driver (ogrinfo lists
the public collections with the right counts, ogr2ogr copies a layer out through every next
link) and OWSLib's OGC API - Features client (collections, items, queryables)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from bench.common import geo_server
from geo.db import session_scope
from tests.layers_helpers import collection, layer_id, point_features, upload

N = 123  # more than GDAL's page size, so ogr2ogr must follow next links


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with geo_server({**os.environ, "DATABASE_URL": database_url}, workers=1) as base:
        yield base


@pytest.fixture(scope="module")
def layers(client: TestClient, make_department) -> dict[str, str]:
    dept = make_department()
    public, private = layer_id("pub"), layer_id("priv")
    feats = point_features(N, step=0.0002)
    for i, f in enumerate(feats):
        f["properties"]["名称"] = f"站点{i}"
    assert (
        upload(client, dept.editor, public, collection(feats), access="public").status_code == 201
    )
    r = upload(client, dept.editor, private, collection(point_features(4)), access="private")
    assert r.status_code == 201
    return {"public": public, "private": private}


def _counts() -> dict[str, int]:
    """What every public collection holds right now (other tests add to the shared tables)."""
    with session_scope() as s:
        from geo.auth import Principal
        from layers.catalogue import all_readable_sources

        sources = all_readable_sources(s, Principal(None, None, None))
        return {
            src.id: int(s.execute(text(f"SELECT count(*) FROM {src.relation()} t")).scalar_one())
            for src in sources
        }


def test_ogrinfo_lists_public_layers_with_counts(server: str, layers: dict[str, str]) -> None:
    listing = subprocess.run(
        ["ogrinfo", "-ro", "-q", f"OAPIF:{server}/"], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    expected = _counts()
    listed = {
        line.split(":", 1)[1].split("(")[0].strip()
        for line in listing.stdout.splitlines()
        if ":" in line
    }
    assert layers["public"] in listed and layers["private"] not in listed
    assert set(expected) <= listed
    for name in (layers["public"], "districts"):
        info = subprocess.run(
            ["ogrinfo", "-ro", "-so", f"OAPIF:{server}/", name],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert info.returncode == 0, info.stderr
        count = next(x for x in info.stdout.splitlines() if x.startswith("Feature Count"))
        assert int(count.split(":")[1]) == expected[name], info.stdout


def test_ogr2ogr_copies_a_layer_through_next_links(
    server: str, layers: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "copy.geojson"
    result = subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            str(out),
            f"OAPIF:{server}/",
            layers["public"],
            "-oo",
            "PAGE_SIZE=20",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    copied = json.loads(out.read_text())["features"]
    assert len(copied) == N
    assert sorted(f["properties"]["名称"] for f in copied) == sorted(f"站点{i}" for i in range(N))
    first = next(f for f in copied if f["properties"]["name"] == "p0")
    assert first["geometry"]["coordinates"] == pytest.approx([117.2, 39.1])


def test_owslib_reads_collections_items_and_queryables(server: str, layers: dict[str, str]) -> None:
    from owslib.ogcapi.features import Features

    api = Features(server)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert layers["public"] in ids and layers["private"] not in ids
    items = api.collection_items(layers["public"], limit=7)
    assert items["numberMatched"] == N and len(items["features"]) == 7
    queryables = api.collection_queryables(layers["public"])
    assert {"name", "pop", "score", "名称", "geometry"} <= set(queryables["properties"])
    filtered = api.collection_items(layers["public"], filter="pop = 3", limit=200)
    assert filtered["numberMatched"] == len([i for i in range(N) if i % 7 == 3])

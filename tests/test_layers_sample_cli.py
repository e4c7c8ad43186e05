"""The sample layer `make run` loads, and the `geo layers` commands."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from geo.db import session_scope
from layers.cli import app
from layers.sample import COUNT, LAYER_ID, load_sample
from tests.layers_helpers import collection, layer_id, point_features


def test_sample_layer_is_public_and_inside_the_city(client: TestClient) -> None:
    with session_scope() as session:
        load_sample(session)
    with session_scope() as session:
        load_sample(session)  # idempotent
    body = client.get(f"/collections/{LAYER_ID}/items", params={"limit": 1000}).json()
    assert body["numberMatched"] == COUNT
    names = {f["properties"]["name"] for f in body["features"]}
    assert len(names) == COUNT
    for f in body["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 116.7 < lon < 118.1 and 38.5 < lat < 40.3
    assert LAYER_ID in {c["id"] for c in client.get("/collections").json()["collections"]}


def test_cli_upload_and_list(client: TestClient, make_department, tmp_path: Path) -> None:
    dept = make_department()
    path = tmp_path / "pts.geojson"
    path.write_bytes(collection(point_features(6)))
    lid = layer_id()
    runner = CliRunner()
    result = runner.invoke(
        app, ["upload", str(path), "--layer", lid, "--department", dept.code, "--access", "public"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["features"] == 6
    listed = runner.invoke(app, ["list"])
    assert lid in listed.stdout and dept.code in listed.stdout
    assert client.get(f"/collections/{lid}").json()["owner"] == dept.code

"""The GeoJSON splitter against orjson parsing the whole document: same features, same errors."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from geo.errors import ApiError
from layers.ingest import geojson_scan
from layers.ingest.geojson_scan import FeatureScanner

TRICKY = ['a"b', "[{", "}]", "\\", '\\"', "\\\\", "路,号", "\u00e9", "x\\\\", '"]}', "", "\n\t"]


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice(TRICKY) + str(rng.random())
    if kind == 1:
        return rng.randint(-(10**9), 10**9)
    if kind == 2:
        return rng.random() * 1000
    if kind == 3:
        return rng.choice([None, True, False])
    if kind == 4:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(TRICKY) + str(i): _value(rng, depth + 1) for i in range(rng.randrange(4))}


def _document(rng: random.Random, n: int) -> dict[str, object]:
    features = []
    for i in range(n):
        ring = [[117 + rng.random(), 39 + rng.random()] for _ in range(3)]
        features.append(
            {
                "type": "Feature",
                "id": i,
                "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
                "properties": {f"p{j}": _value(rng) for j in range(rng.randrange(5))},
            }
        )
    doc: dict[str, object] = {"name": rng.choice(TRICKY), "bbox": [1, 2, 3, 4]}
    doc["features"] = features
    doc["type"] = "FeatureCollection"
    doc["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    return doc


def _scan(path: Path, batch: int = 3, limit: int = 32) -> list[object]:
    found: list[object] = []
    scanner = FeatureScanner(path, limit, batch)
    for features in scanner:
        assert 0 < len(features) <= batch
        found.extend(features)
    return found


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_batches_equal_the_whole_parse(tmp_path: Path, monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(geojson_scan, "CHUNK", chunk)
    rng = random.Random(chunk)
    for round_ in range(15):
        doc = _document(rng, rng.randrange(0, 12))
        raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if round_ % 2 else 0)
        path = tmp_path / f"{round_}.geojson"
        path.write_bytes(raw)
        assert _scan(path, batch=rng.randrange(1, 5)) == orjson.loads(raw)["features"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"FeatureCollection","features":[{"type":',  # truncated
        b'{"type":"FeatureCollection","features":[{"a":1},]}',  # trailing comma
        b'{"type":"FeatureCollection","features":[,{"a":1}]}',  # leading comma
        b'{"type":"FeatureCollection","features":[{"a":1}{"a":2}]}',  # no comma
        b'{"type":"FeatureCollection","features":[{"a":1},{"a":2}]',  # root never closed
        b'{"type":"FeatureCollection","features":[{"a":1}]} trailing',  # text after the end
        b'{"type":"FeatureCollection" "features":[{"a":1}]}',  # broken skeleton
        b'{"type":"FeatureCollection","features":[{"a":"\xff"}]}',  # not UTF-8
    ],
)
def test_malformed_documents_are_rejected(tmp_path: Path, monkeypatch, raw: bytes) -> None:
    monkeypatch.setattr(geojson_scan, "CHUNK", 5)
    path = tmp_path / "bad.geojson"
    path.write_bytes(raw)
    with pytest.raises(ApiError) as caught:
        _scan(path, batch=1)
    assert caught.value.code == "MalformedJSON"


def test_depth_limit_and_not_a_feature_collection(tmp_path: Path) -> None:
    path = tmp_path / "deep.geojson"
    path.write_bytes(b'{"features":[{"p":' + b"[" * 40 + b"]" * 40 + b"}]}")
    with pytest.raises(ApiError) as caught:
        _scan(path)
    assert caught.value.code == "TooDeep"
    lone = tmp_path / "lone.geojson"
    lone.write_bytes(b'{"type":"Feature","geometry":null,"properties":{"features":[1]}}')
    scanner = FeatureScanner(lone, 32, 10)
    assert list(scanner) == [] and not scanner.found


def test_batches_are_also_cut_by_size(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(geojson_scan, "PIECE_BYTES", 400)
    raw = orjson.dumps(_document(random.Random(3), 30))
    path = tmp_path / "big.geojson"
    path.write_bytes(raw)
    sizes = [len(b) for b in FeatureScanner(path, 32, 1000)]
    assert len(sizes) > 1 and sum(sizes) == 30
    assert _scan(path, batch=1000) == orjson.loads(raw)["features"]


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    raw = orjson.dumps(_document(random.Random(5), 4))
    path = tmp_path / "bom.geojson"
    path.write_bytes(b"\xef\xbb\xbf" + raw)
    assert _scan(path) == orjson.loads(raw)["features"]

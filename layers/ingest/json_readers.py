"""GeoJSON and NDJSON uploads, streamed a batch of features at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from geo.errors import ApiError
from layers.ingest import geometry
from layers.ingest.geojson_scan import BOM, FeatureScanner, malformed
from layers.ingest.readers import BATCH, Batch, Reader
from layers.schema import json_depth as value_depth

# A feature sits at depth 3 (root object, features array, feature): its properties may nest
# up to the document limit minus that.
_FEATURE_DEPTH = 3


def _feature_parts(feature: Any, max_depth: int | None) -> tuple[Any, dict[str, Any], str | None]:
    """(geometry, properties, problem) of one parsed feature; ``max_depth`` checks the nesting
    of its properties (None when the whole file was depth-checked already)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        kind = feature.get("type") if isinstance(feature, dict) else type(feature).__name__
        return None, {}, f"not a GeoJSON Feature (type {kind!r})"
    props = feature.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        return None, {}, "properties must be an object or null"
    if max_depth is not None and value_depth(props, max_depth) > max_depth - _FEATURE_DEPTH:
        return None, {}, f"properties nested deeper than the limit of {max_depth} levels"
    if "geometry" not in feature:
        return None, props, "feature has no geometry member"
    return feature["geometry"], props, None


def _batch(start: int, items: list[tuple[Any, dict[str, Any], str | None]]) -> Batch:
    geoms, errors = geometry.from_geojson([g for g, _, _ in items])
    for i, (_, _, problem) in enumerate(items):
        if problem:
            errors[i] = problem
            geoms[i] = None
    return Batch(start, geoms, [p for _, p, _ in items], errors)


def geojson_reader(path: Path, max_depth: int) -> Reader:
    def batches() -> Iterator[Batch]:
        scanner = FeatureScanner(path, max_depth, BATCH)
        count = 0
        for features in scanner:
            items: list[tuple[Any, dict[str, Any], str | None]] = []
            for feature in features:
                # The usual feature, inline; anything unusual gets the full check.
                props = feature.get("properties") if type(feature) is dict else None
                if (
                    type(props) is dict
                    and feature.get("type") == "Feature"
                    and "geometry" in feature
                ):
                    items.append((feature["geometry"], props, None))
                else:
                    items.append(_feature_parts(feature, None))
            yield _batch(count, items)
            count += len(items)
        if count == 0:
            yield from _single_document(path, max_depth)

    return Reader("geojson", batches)


def _single_document(path: Path, max_depth: int) -> Iterator[Batch]:
    """No ``features`` array: a lone Feature is a one-feature upload; anything else is an error."""
    if path.stat().st_size > 64 * 1024 * 1024:
        raise ApiError(400, "InvalidGeoJSON", "expected a FeatureCollection with features")
    try:
        document = orjson.loads(path.read_bytes().removeprefix(BOM))
    except orjson.JSONDecodeError as exc:
        raise malformed(str(exc).splitlines()[0], 0) from None
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "Feature":
        yield _batch(0, [_feature_parts(document, max_depth)])
        return
    if kind == "FeatureCollection" and isinstance(document.get("features"), list):
        raise ApiError(400, "NoFeatures", "the FeatureCollection has no features")
    raise ApiError(
        400,
        "InvalidGeoJSON",
        f"expected a GeoJSON FeatureCollection or Feature, got type {kind!r}",
    )


def ndjson_reader(path: Path, max_depth: int) -> Reader:
    def batches() -> Iterator[Batch]:
        items: list[tuple[Any, dict[str, Any], str | None]] = []
        start = count = 0
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                # RFC 8142 GeoJSON text sequences; a byte order mark before the first line
                line = raw.strip().lstrip(b"\x1e").removeprefix(BOM)
                if not line:
                    continue
                try:
                    feature = orjson.loads(line)
                    items.append(_feature_parts(feature, max_depth))
                except orjson.JSONDecodeError as exc:
                    items.append((None, {}, f"line {number} is not valid JSON: {exc}"))
                count += 1
                if len(items) == BATCH:
                    yield _batch(start, items)
                    start, items = count, []
        if items:
            yield _batch(start, items)

    return Reader("ndjson", batches)

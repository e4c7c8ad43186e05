"""Shared helpers for the layers tests: small deterministic GeoJSON and uploads through the API."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

# Inside Tianjin (the default GEO_EXTENT), clear of the extent's edges.
CENTER = (117.2, 39.1)


def layer_id(prefix: str = "t") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def point_features(n: int, start: int = 0, step: float = 0.001) -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "geometry": {
                "type": "Point",
                "coordinates": [CENTER[0] + (start + i) * step, CENTER[1] + (start + i) * step / 2],
            },
            "properties": {
                "name": f"p{start + i}",
                "pop": (start + i) % 7,
                "score": (start + i) / 4,
            },
        }
        for i in range(n)
    ]


def square(x: float, y: float, size: float = 0.01) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]],
    }


def collection(features: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"type": "FeatureCollection", "features": features})


def upload(
    client: TestClient,
    headers: dict[str, str],
    lid: str,
    content: bytes,
    filename: str = "data.geojson",
    metadata: dict[str, Any] | None = None,
    *,
    endpoint: str = "upload",
    **params: Any,
):
    """POST a file to a layer's upload (or, with `endpoint="upload/preview"`, its preview)."""
    data = {"metadata": orjson.dumps(metadata).decode()} if metadata is not None else None
    return client.post(
        f"/collections/{lid}/{endpoint}",
        params=params,
        files={"file": (filename, content)},
        data=data,
        headers=headers,
    )


def make_points_layer(
    client: TestClient, headers: dict[str, str], n: int = 20, access: str = "public", **extra: Any
) -> str:
    lid = layer_id()
    r = upload(client, headers, lid, collection(point_features(n)), access=access, **extra)
    assert r.status_code == 201, r.text
    return lid


def mercator_mismatches(db: Session | Connection, table_name: str) -> tuple[int, int]:
    """(rows, rows whose Web Mercator copy is not their geometry transformed) of the layer table
    `table_name` (layers.storage.MERCATOR_COLUMN, which tiles read)."""
    rows, wrong = db.execute(
        text(
            "SELECT count(*), count(*) FILTER (WHERE NOT ST_Equals(geom_3857, "
            "ST_Transform(geom, 3857)) OR ST_SRID(geom_3857) <> 3857) "
            f'FROM layerdata."{table_name}"'
        )
    ).one()
    return int(rows), int(wrong)

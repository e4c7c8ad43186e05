"""Sample data for `make run`: one public layer, 应急避难场所 (emergency shelters), so the
catalogue is not empty on a fresh install. Generated deterministically inside the city's
built-up districts; loaded through the same upload pipeline departments use."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy.orm import Session

from geo.auth import Principal
from geo.departments import PLATFORM, ensure_platform
from layers.ingest.pipeline import UploadOptions, upload
from layers.models import Layer

LAYER_ID = "emergency_shelters"
COUNT = 300
# Central Tianjin (the six inner districts) and the Binhai New Area core, lon/lat boxes.
AREAS = ((117.10, 39.05, 117.28, 39.19), (117.62, 38.98, 117.76, 39.08))
KINDS = ("公园", "广场", "学校操场", "体育场", "绿地")


def features(count: int = COUNT, seed: int = 20261122) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        x0, y0, x1, y1 = AREAS[0] if i % 4 else AREAS[1]
        lon, lat = round(float(rng.uniform(x0, x1)), 6), round(float(rng.uniform(y0, y1)), 6)
        kind = KINDS[int(rng.integers(len(KINDS)))]
        out.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "name": f"应急避难场所{i + 1:03d}号({kind})",
                    "kind": kind,
                    "capacity": int(rng.integers(2, 200)) * 100,
                    "area_m2": round(float(rng.uniform(2_000, 80_000)), 1),
                    "indoor": bool(rng.integers(2)),
                },
            }
        )
    return out


def load_sample(session: Session) -> None:
    if session.get(Layer, LAYER_ID) is not None:
        return
    ensure_platform(session)
    who = Principal(PLATFORM, "admin", "sample")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shelters.geojson"
        path.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": features()}))
        upload(
            session,
            who,
            LAYER_ID,
            path,
            path.name,
            UploadOptions(
                mode="create",
                title="应急避难场所 Emergency shelters (sample)",
                description="Generated sample: emergency shelters in central Tianjin and Binhai.",
                keywords=["应急", "避难场所", "sample"],
                access="public",
                geometry_type="Point",
                properties=[
                    {"name": "name", "type": "string", "required": True},
                    {"name": "kind", "type": "string"},
                    {"name": "capacity", "type": "integer"},
                    {"name": "area_m2", "type": "number"},
                    {"name": "indoor", "type": "boolean"},
                ],
                key_property="name",
            ),
        )

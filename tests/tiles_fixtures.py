"""Small PostGIS tables for the tile tests, and the LayerSource descriptions of them.

Plain tables as department layers have them (a `geom` column in SRID 4490 and its Web Mercator
copy, layers.storage.MERCATOR_COLUMN, each with a GiST index), made here so the tile engine is
tested on its own, whatever the catalogue does. `coded` has no Web Mercator copy, as the address
library's tables: its tiles transform each row.
"""

from __future__ import annotations

import math

import mapbox_vector_tile
import morecantile
from sqlalchemy import text

from geo.sources import LayerSource
from layers.storage import MERCATOR_COLUMN as MERCATOR
from tiles.tms import Tile

SCHEMA = "tiles_test"
CENTRE = (117.2, 39.13)
# 40 x 40 points on a 0.0005-degree grid around the centre (about 45 m apart).
GRID_SIDE = 40
GRID_STEP = 0.0005


def tile_at(lon: float, lat: float, z: int) -> Tile:
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return Tile(t.z, t.x, t.y)


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data) if data else {}


def _jagged_circle_wkt(lon: float, lat: float, radius_deg: float, vertices: int) -> str:
    """A circle whose vertices alternate between two radii 3 m apart: a detail that matters at
    z15 and vanishes at z9, so simplification shows in the vertex count."""
    ring = []
    for i in range(vertices):
        r = radius_deg + (0.00003 if i % 2 else 0.0)
        angle = 2 * math.pi * i / vertices
        ring.append((lon + r * math.cos(angle), lat + r * math.sin(angle)))
    ring.append(ring[0])
    return "MULTIPOLYGON(((" + ",".join(f"{x} {y}" for x, y in ring) + ")))"


def create_tables(engine) -> None:
    lon0 = CENTRE[0] - GRID_SIDE / 2 * GRID_STEP
    lat0 = CENTRE[1] - GRID_SIDE / 2 * GRID_STEP
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        conn.execute(
            text(
                f"CREATE TABLE {SCHEMA}.points (id bigserial PRIMARY KEY, name text, "
                "kind integer, opened date, geom geometry(Point, 4490) NOT NULL)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.points (name, kind, opened, geom) "
                "SELECT '点' || i || '-' || j, (i + j) % 3, DATE '2024-01-01' + i, "
                "ST_SetSRID(ST_MakePoint(:lon0 + i * :step, :lat0 + j * :step), 4490) "
                "FROM generate_series(0, :n - 1) i, generate_series(0, :n - 1) j"
            ),
            {"lon0": lon0, "lat0": lat0, "step": GRID_STEP, "n": GRID_SIDE},
        )
        conn.execute(
            text(
                f"CREATE TABLE {SCHEMA}.areas (id integer PRIMARY KEY, name text, level text, "
                "geom geometry(MultiPolygon, 4490) NOT NULL)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.areas VALUES "
                "(1, '圆区', 'district', ST_GeomFromText(:circle, 4490)), "
                "(2, '方区', 'subdistrict', ST_GeomFromText(:square, 4490))"
            ),
            {
                "circle": _jagged_circle_wkt(*CENTRE, 0.002, 2000),
                "square": "MULTIPOLYGON(((117.1 39,117.3 39,117.3 39.2,117.1 39.2,117.1 39)))",
            },
        )
        conn.execute(
            text(
                f"CREATE TABLE {SCHEMA}.coded (code text PRIMARY KEY, "
                "geom geometry(Point, 4490) NOT NULL)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.coded VALUES "
                "('A-1', ST_SetSRID(ST_MakePoint(117.2, 39.13), 4490))"
            )
        )
        for table in ("points", "areas"):
            conn.execute(
                text(
                    f"ALTER TABLE {SCHEMA}.{table} ADD COLUMN {MERCATOR} geometry(Geometry, 3857) "
                    "GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED"
                )
            )
            conn.execute(text(f"CREATE INDEX ON {SCHEMA}.{table} USING gist ({MERCATOR})"))
        for table in ("points", "areas", "coded"):
            conn.execute(text(f"CREATE INDEX ON {SCHEMA}.{table} USING gist (geom)"))
            conn.execute(text(f"ANALYZE {SCHEMA}.{table}"))


POINTS = LayerSource(
    id="test_points",
    title="测试点",
    table=f'"{SCHEMA}"."points"',
    geometry_type="Point",
    properties={"name": "string", "kind": "integer", "opened": "date"},
    mercator_column=MERCATOR,
    version_key="layer:test_points",
)
AREAS = LayerSource(
    id="test_districts",
    title="测试区",
    table=f'"{SCHEMA}"."areas"',
    geometry_type="MultiPolygon",
    properties={"name": "string"},
    mercator_column=MERCATOR,
    where="level = 'district'",
    version_key="layer:test_areas",
)
CODED = LayerSource(
    id="test_coded",
    title="文本编号",
    table=f'"{SCHEMA}"."coded"',
    geometry_type="Point",
    id_column="code",
    version_key="layer:test_coded",
)

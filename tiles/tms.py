"""The one tile matrix set we serve, WebMercatorQuad, and the checks on tile addresses.

Decision (README, tiles): a tile address that is not made of integers is a malformed request,
400; integers outside the matrix set (z beyond 0-22, x or y beyond 2^z - 1) name a tile that
does not exist, 404, as OGC API - Tiles asks. Both families of routes (/tiles/... and the OGC
ones) go through :func:`parse_tile`, so they answer alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import morecantile

from geo.errors import ApiError

TMS_ID = "WebMercatorQuad"
MIN_ZOOM = 0
MAX_ZOOM = 22
# Width of the whole Web Mercator square in metres; a tile at zoom z is WORLD_M / 2^z wide.
WORLD_M = 2 * 20037508.342789244
_INTEGER = re.compile(r"-?\d{1,12}")  # fullmatch: "$" also matches before "\n"


@dataclass(frozen=True)
class Tile:
    z: int
    x: int
    y: int

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def _integer(name: str, raw: str) -> int:
    if not _INTEGER.fullmatch(raw):
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"tile {name} must be an integer, not {raw!r}",
            {"parameter": name, "value": raw},
        )
    return int(raw)


def parse_tile(z: str, x: str, y: str) -> Tile:
    """Check a tile address taken from a URL path (strings, so that both errors are ours)."""
    tile = Tile(_integer("z", z), _integer("x", x), _integer("y", y))
    if not MIN_ZOOM <= tile.z <= MAX_ZOOM:
        raise ApiError(
            404,
            "TileOutOfRange",
            f"zoom {tile.z} is outside {TMS_ID}'s {MIN_ZOOM}-{MAX_ZOOM}",
            {"z": tile.z, "minzoom": MIN_ZOOM, "maxzoom": MAX_ZOOM},
        )
    last = 2**tile.z - 1
    for name, value in (("x", tile.x), ("y", tile.y)):
        if not 0 <= value <= last:
            raise ApiError(
                404,
                "TileOutOfRange",
                f"tile {name}={value} is outside 0-{last} at zoom {tile.z}",
                {name: value, "z": tile.z, "max": last},
            )
    return tile


@lru_cache
def tile_matrix_set() -> morecantile.TileMatrixSet:
    return morecantile.tms.get(TMS_ID)


@lru_cache
def tile_matrix_set_json() -> dict[str, Any]:
    """The OGC TileMatrixSet 2.0 document, trimmed to the zooms we serve."""
    document: dict[str, Any] = tile_matrix_set().model_dump(exclude_none=True, mode="json")
    document["tileMatrices"] = [
        m for m in document["tileMatrices"] if MIN_ZOOM <= int(m["id"]) <= MAX_ZOOM
    ]
    return document


def tile_size_m(z: int) -> float:
    return WORLD_M / 2**z

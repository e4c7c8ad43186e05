"""Tile settings, read from the environment like the core's (geo.settings), but owned here.

The defaults suit the 2-core machines the service runs on; every figure is documented in the
README's tiles section.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from geo.settings import get_settings


class TileSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # In-process LRU budget per worker, in megabytes of tile bytes.
    cache_mb: int = Field(default=256, ge=0, validation_alias="GEO_TILE_CACHE_MB")
    # The shared on-disk cache: "" (default) turns it off; "default" means GEO_DATA_DIR/tiles.
    disk_cache: str = Field(default="", validation_alias="GEO_TILE_DISK_CACHE")
    # Features per layer per tile; beyond it points are clustered and lines and polygons keep
    # the N largest, saying how many were left out (tiles.aggregate).
    max_features: int = Field(default=10_000, ge=1, validation_alias="GEO_TILE_MAX_FEATURES")
    # Deepest zoom of the point layers' precomputed clusters (cells of 8 pixels): deeper
    # over-full tiles keep the cap first points and count the others, like polygons.
    cluster_max_zoom: int = Field(
        default=16, ge=0, le=20, validation_alias="GEO_TILE_CLUSTER_MAX_ZOOM"
    )
    # Layers in one composite request.
    max_layers: int = Field(default=20, ge=1, validation_alias="GEO_TILE_MAX_LAYERS")
    # Browser and CDN lifetime of tiles made only of public layers, in seconds.
    max_age: int = Field(default=60, ge=0, validation_alias="GEO_TILE_MAX_AGE")
    # Connections of the tile query pool per worker: how many tile statements one worker runs
    # at once; more requests wait for a connection, in order. A tile statement keeps a core
    # busy, so statements beyond the database's cores only share them: on the 2-core benchmark
    # machine, 2 per worker (4 in all) served as many tiles per second as 8 and cut the
    # uncached p99 from 270-340 ms to 105-115 ms (bench_tiles' data and tile list, 3 rounds of
    # each in turn). Raise it when the database has more cores than the service has workers.
    pool_size: int = Field(default=2, ge=1, validation_alias="GEO_TILE_POOL_SIZE")
    # Lifetime of tile tokens (tiles.tokens), seconds: long enough for a map session, short
    # enough that a token copied out of a URL or a log soon stops working.
    token_ttl: int = Field(default=3600, ge=60, le=86_400, validation_alias="GEO_TILE_TOKEN_TTL")
    # HMAC secret of tile tokens; unset: one generated once and kept in platform_state, which
    # every worker and machine on the database shares.
    token_secret: str = Field(default="", validation_alias="GEO_TOKEN_SECRET")
    # Open /events streams per worker (each holds a connection and a queue); beyond: 503.
    events_max_streams: int = Field(default=100, ge=1, validation_alias="GEO_EVENTS_MAX_STREAMS")
    # Seconds between /events heartbeat comments, which keep proxies from closing idle streams.
    events_heartbeat: float = Field(
        default=15.0, gt=0, le=300, validation_alias="GEO_EVENTS_HEARTBEAT"
    )

    @field_validator("token_secret")
    @classmethod
    def _long_secret(cls, value: str) -> str:
        # A short operator-chosen secret could be guessed offline from one token.
        if value and len(value) < 32:
            raise ValueError("GEO_TOKEN_SECRET must be at least 32 characters")
        return value

    @property
    def disk_cache_dir(self) -> Path | None:
        if not self.disk_cache:
            return None
        if self.disk_cache == "default":
            return get_settings().data_dir.resolve() / "tiles"
        return Path(self.disk_cache).resolve()


@lru_cache
def tile_settings() -> TileSettings:
    return TileSettings()

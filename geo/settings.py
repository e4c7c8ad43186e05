"""Runtime configuration, read once from the environment (and `.env`).

Names follow DESIGN.md's Operations section, so `DATABASE_URL`, `PORT`... keep their usual meaning
for operators; everything the service tunes lives here rather than as constants in the modules.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Tianjin spans roughly 116.7-118.1 E, 38.5-40.3 N; the default extent adds a margin of about
# 0.3 degree so that points on the coast or the border are accepted, while swapped axes
# (39, 117) and projected metres fed in as degrees are rejected.
TIANJIN_EXTENT = (116.4, 38.2, 118.4, 40.6)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    read_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="GEO_READ_URLS"
    )
    data_dir: Path = Field(default=Path(".data"), validation_alias="GEO_DATA_DIR")
    host: str = Field(default="127.0.0.1", validation_alias="GEO_HOST")
    port: int = Field(default=8000, validation_alias="PORT")
    workers: int = Field(default=1, validation_alias="GEO_WORKERS")
    admin_key: str | None = Field(default=None, validation_alias="GEO_ADMIN_KEY")
    db_port: int | None = Field(
        default=None,
        validation_alias="GEO_DB_PORT",
        description="port of the embedded cluster; a free one is chosen at first start if unset",
    )
    extent: Annotated[tuple[float, float, float, float], NoDecode] = Field(
        default=TIANJIN_EXTENT, validation_alias="GEO_EXTENT"
    )
    max_upload_bytes: int = Field(default=1024**3, validation_alias="GEO_MAX_UPLOAD_BYTES")
    # JSON and other non-file bodies: a feature, a layer's metadata, an overlay or a batch list.
    max_body_bytes: int = Field(default=16 * 1024**2, validation_alias="GEO_MAX_BODY_BYTES")
    max_features: int = Field(default=5_000_000, validation_alias="GEO_MAX_FEATURES")
    max_json_depth: int = Field(default=32, validation_alias="GEO_MAX_JSON_DEPTH")
    max_filter_bytes: int = Field(
        default=16_384,
        validation_alias="GEO_MAX_FILTER_BYTES",
        description="largest CQL2 filter (text or JSON) accepted; see layers/cql.py",
    )
    statement_timeout_ms: int = Field(
        default=30_000,
        gt=0,
        validation_alias="GEO_STATEMENT_TIMEOUT_MS",
        description="statement_timeout of every API connection; a cancelled query is a 503",
    )
    bulk_statement_timeout_ms: int = Field(
        default=3_600_000,
        gt=0,
        validation_alias="GEO_BULK_STATEMENT_TIMEOUT_MS",
        description="statement_timeout of uploads, address imports, sample loads, migrations",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        validation_alias="GEO_LOG_FORMAT",
        description="text: one human-readable line per record; json: one JSON object per line",
    )
    slow_query_ms: int = Field(
        default=1000,
        ge=0,
        validation_alias="GEO_SLOW_QUERY_MS",
        description="statements slower than this are logged as warnings; 0 logs every one",
    )
    db_connect_timeout_s: int = Field(
        default=5,
        gt=0,
        validation_alias="GEO_DB_CONNECT_TIMEOUT_S",
        description="libpq connect_timeout when the URL sets none: a silent host costs this much",
    )
    ready_max_replica_lag_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias="GEO_READY_MAX_REPLICA_LAG_S",
        description="/health/ready is 503 while a read replica is further behind than this",
    )
    backup_dir: Path | None = Field(
        default=None,
        validation_alias="GEO_BACKUP_DIR",
        description="pgBackRest's local repository ($GEO_DATA_DIR/backups/local if unset)",
    )
    backup_offsite_dir: Path | None = Field(
        default=None,
        validation_alias="GEO_BACKUP_OFFSITE_DIR",
        description="the second repository, the off-site copy: a mount of another site's disk",
    )
    backup_retention_full: int = Field(
        default=2,
        ge=1,
        validation_alias="GEO_BACKUP_RETENTION_FULL",
        description="full backups kept per repository (older ones and their WAL expire)",
    )
    max_items_limit: int = Field(default=10_000, validation_alias="GEO_MAX_ITEMS_LIMIT")
    pool_size: int = Field(default=10, validation_alias="GEO_POOL_SIZE")
    # Rate limits (geo.ratelimit): each class is "ANONYMOUS[,KEYED]" in the `limits` package's
    # notation ("600/minute", "20 per 5 seconds"): the first per client IP address, the second
    # per API key (the first again when omitted).
    rate_limits: bool = Field(default=True, validation_alias="GEO_RATE_LIMITS")
    redis_url: str | None = Field(default=None, validation_alias="GEO_REDIS_URL")
    rate_limit_tiles: str = Field(
        default="3000/minute,12000/minute", validation_alias="GEO_RATE_LIMIT_TILES"
    )
    rate_limit_geocode: str = Field(
        default="120/minute,600/minute", validation_alias="GEO_RATE_LIMIT_GEOCODE"
    )
    rate_limit_heavy: str = Field(
        default="10/minute,60/minute", validation_alias="GEO_RATE_LIMIT_HEAVY"
    )
    rate_limit_default: str = Field(
        default="600/minute,3000/minute", validation_alias="GEO_RATE_LIMIT_DEFAULT"
    )

    # Staff accounts (geo.accounts): sign-in lockout and web sessions.
    signin_max_failures: int = Field(
        default=5,
        ge=1,
        validation_alias="GEO_SIGNIN_MAX_FAILURES",
        description="failed sign-ins in a row that lock an account",
    )
    signin_lockout_minutes: int = Field(
        default=15,
        ge=1,
        validation_alias="GEO_SIGNIN_LOCKOUT_MINUTES",
        description="how long a locked account refuses every sign-in",
    )
    session_idle_minutes: int = Field(
        default=30,
        ge=1,
        validation_alias="GEO_SESSION_IDLE_MINUTES",
        description="a web session unused this long is over",
    )
    session_lifetime_hours: int = Field(
        default=12,
        ge=1,
        validation_alias="GEO_SESSION_LIFETIME_HOURS",
        description="a web session is over this long after sign-in, however busy",
    )

    @field_validator("read_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        # Operators write GEO_READ_URLS as a comma-separated list, not JSON.
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("extent", mode="before")
    @classmethod
    def _parse_extent(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [float(p) for p in value.split(",")]
            if len(parts) != 4:
                raise ValueError("GEO_EXTENT must be minlon,minlat,maxlon,maxlat")
            return tuple(parts)
        return value

    @field_validator(
        "rate_limit_tiles", "rate_limit_geocode", "rate_limit_heavy", "rate_limit_default"
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        # Checked at start: a typo must stop the service, not leave a class unlimited.
        from limits import parse

        parts = [p.strip() for p in value.split(",")]
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise ValueError(f"{value!r}: expected ANONYMOUS[,KEYED], e.g. 600/minute,3000/minute")
        for part in parts:
            parse(part)  # ValueError naming the part when the notation is wrong
        return value

    @property
    def pg_dir(self) -> Path:
        return self.data_dir.resolve() / "pg"


@lru_cache
def get_settings() -> Settings:
    return Settings()

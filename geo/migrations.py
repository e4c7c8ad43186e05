"""Alembic, driven from Python so `geo migrate`, `geo run` and the tests share one path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.config import Config
from geoalchemy2 import alembic_helpers
from sqlalchemy import MetaData

from alembic import command
from geo.db import Base, database_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def load_models() -> MetaData:
    """Import every model (the core's and each plugin's) and return the shared metadata."""
    from geo import audit, models, state, versions  # noqa: F401
    from geo.accounts import models as account_models  # noqa: F401
    from geo.plugins import load_plugins

    load_plugins()
    return Base.metadata


def alembic_config(url: str | None = None) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    # ConfigParser interpolation would choke on a '%' in a URL-encoded password.
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    """To every head: packages add their migrations on branches of their own (Alembic's
    branches), joined by a merge revision when they meet, and a database must reach all of
    them."""
    command.upgrade(alembic_config(url), revision)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Keep autogenerate to the tables our models declare.

    Layer tables are created at runtime by the layers package, and PostGIS ships tables of its
    own (spatial_ref_sys, topology...): both are outside Alembic's remit.
    """
    if type_ == "table" and reflected and compare_to is None:
        return False
    return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))

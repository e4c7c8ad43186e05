"""How the other packages plug into the service without `geo/` importing them.

Each package (addressbook, layers, tiles) exposes a :class:`Plugin` under the `geo.plugins`
entry-point group in pyproject.toml. The app factory mounts their routers, the CLI their
commands, Alembic imports their models, and `geo run` loads their sample data once. `geo/`
stays the dependency-free core DESIGN.md asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points

import typer
from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session

GROUP = "geo.plugins"


@dataclass(frozen=True)
class Plugin:
    name: str
    # Lower loads first: layers' samples may geocode through the address library.
    order: int = 100
    routers: tuple[APIRouter, ...] = ()
    # Sub-commands, each mounted as `geo <name> ...`.
    commands: dict[str, typer.Typer] = field(default_factory=dict)
    conformance: tuple[str, ...] = ()
    # Loads the package's sample data; called once per database by `geo run`.
    load_sample: Callable[[Session], None] | None = None
    # Anything else the app needs (static files, middleware).
    setup_app: Callable[[FastAPI], None] | None = None


@lru_cache
def load_plugins() -> tuple[Plugin, ...]:
    found = [ep.load() for ep in entry_points(group=GROUP)]
    return tuple(sorted(found, key=lambda p: (p.order, p.name)))

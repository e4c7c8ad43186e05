"""How the other packages plug into the service without `geo/` importing them.

Each package (addressbook, layers, tiles) exposes a :class:`Plugin` under the `geo.plugins`
entry-point group in pyproject.toml. The app factory mounts their routers, the CLI their
commands, Alembic imports their models, and `geo run` loads their sample data once. `geo/`
stays the dependency-free core DESIGN.md asks for.

A package's read-only datasets (the address library's addresses, areas and grids) reach tiles,
overlay, identify and the OGC routes as collections it registers here: the package that creates
a table is the only one that describes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points

import typer
from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session

from geo.sources import LayerSource

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
    # The package's own datasets offered as public, read-only collections (see module doc).
    collections: Callable[[], list[LayerSource]] | None = None


@lru_cache
def load_plugins() -> tuple[Plugin, ...]:
    found = [ep.load() for ep in entry_points(group=GROUP)]
    return tuple(sorted(found, key=lambda p: (p.order, p.name)))


@lru_cache
def system_collections() -> Mapping[str, LayerSource]:
    """Every plugin's registered collections by id, in plugin order. Two packages claiming one
    id is a packaging mistake, refused at start rather than one silently hiding the other."""
    found: dict[str, LayerSource] = {}
    for plugin in load_plugins():
        for source in plugin.collections() if plugin.collections else ():
            if source.id in found:
                raise RuntimeError(f"collection {source.id!r} is registered twice ({plugin.name})")
            found[source.id] = source
    return found

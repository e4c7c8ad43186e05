"""How the address library plugs into the service (see geo.plugins)."""

from __future__ import annotations

from addressbook import models  # noqa: F401  - registers the tables with the shared metadata
from addressbook.cli import COMMANDS
from addressbook.collections import collections
from addressbook.quality.router import router as quality_router
from addressbook.review.router import router as review_router
from addressbook.routers import addresses, areas, imports, places
from addressbook.sample import load_sample
from geo.plugins import Plugin

plugin = Plugin(
    name="addressbook",
    order=10,
    routers=(
        imports.router,
        review_router,
        quality_router,
        addresses.router,
        areas.router,
        places.router,
    ),
    commands=COMMANDS,
    load_sample=load_sample,
    collections=collections,
)

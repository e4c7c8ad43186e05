"""How the address library plugs into the service (see geo.plugins)."""

from __future__ import annotations

from addressbook import models  # noqa: F401  - registers the tables with the shared metadata
from geo.plugins import Plugin

plugin = Plugin(name="addressbook", order=10)

"""How the console plugs into the service (see geo.plugins): its pages and static files."""

from __future__ import annotations

from fastapi import FastAPI

from console import pages
from geo.plugins import Plugin


def _setup(app: FastAPI) -> None:
    pages.mount_assets(app)


plugin = Plugin(name="console", order=40, routers=(pages.router,), setup_app=_setup)

"""How the console plugs into the service (see geo.plugins): its pages and static files.

The pages' router comes last: its catch-all 404 must not shadow the others' pages."""

from __future__ import annotations

from fastapi import FastAPI

from console import addresses, admin, audit_log, map_page, overlay, pages, review
from geo.plugins import Plugin


def _setup(app: FastAPI) -> None:
    pages.mount_assets(app)


plugin = Plugin(
    name="console",
    order=40,
    routers=(
        admin.router,
        audit_log.router,
        overlay.router,
        map_page.router,
        addresses.router,
        review.router,
        pages.router,
    ),
    setup_app=_setup,
)

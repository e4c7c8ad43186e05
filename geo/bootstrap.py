"""Everything `geo run` does before serving; each step is idempotent, so a second run reuses
what the first one made."""

from __future__ import annotations

from rich.console import Console

from geo import audit, migrations
from geo.auth import PLATFORM, Principal, install_bootstrap_key
from geo.db import (
    bulk_statement_timeout,
    ensure_extensions,
    get_engine,
    reset_engines,
    session_scope,
)
from geo.departments import ensure_platform
from geo.plugins import load_plugins
from geo.settings import Settings, get_settings
from geo.state import get_state, set_state

console = Console(stderr=True)


def start_database(settings: Settings | None = None) -> str:
    """Start the embedded cluster unless DATABASE_URL names one; return the URL in use."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    from geo.embedded import EmbeddedCluster

    url = EmbeddedCluster(settings.pg_dir, port=settings.db_port).start()
    reset_engines()
    return url


def install_admin_key() -> None:
    """GEO_ADMIN_KEY becomes the bootstrap platform admin key; a new value revokes the key the
    previous value installed, so rotating the setting retires the old secret."""
    key = get_settings().admin_key
    if not key:
        return
    startup = Principal(PLATFORM, "admin", "startup")
    with session_scope() as session:
        installed, revoked = install_bootstrap_key(session, ensure_platform(session), key)
        if installed is not None:
            audit.record(
                session,
                startup,
                "key.create",
                f"{PLATFORM}/{installed.prefix}",
                {"role": "admin", "bootstrap": True},
            )
        for previous in revoked:
            audit.record(
                session,
                startup,
                "key.revoke",
                f"{PLATFORM}/{previous.prefix}",
                {"reason": "GEO_ADMIN_KEY changed", "bootstrap": True},
            )


def load_samples() -> None:
    """Each package's sample data, once per database, in plugin order."""
    for plugin in load_plugins():
        if plugin.load_sample is None:
            continue
        marker = f"sample:{plugin.name}"
        with session_scope() as session:
            if get_state(session, marker):
                continue
            console.print(f"Loading sample data for [bold]{plugin.name}[/bold]...")
            bulk_statement_timeout(session)
            plugin.load_sample(session)
            set_state(session, marker, True)


def prepare(samples: bool = True) -> None:
    start_database()
    ensure_extensions(get_engine())
    migrations.upgrade()
    install_admin_key()
    if samples:
        load_samples()

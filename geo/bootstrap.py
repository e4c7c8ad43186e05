"""Everything `geo run` does before serving; each step is idempotent, so a second run reuses
what the first one made."""

from __future__ import annotations

from rich.console import Console

from geo import migrations
from geo.auth import install_key
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
    key = get_settings().admin_key
    if not key:
        return
    with session_scope() as session:
        install_key(session, ensure_platform(session), key, "admin")


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

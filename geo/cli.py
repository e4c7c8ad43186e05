"""The `geo` command: the embedded database, migrations, the server, departments, keys, audit.

Plugins add their own sub-commands (`geo areas`, `geo layers`...). Commands are thin: they call
the same functions the HTTP API calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from geo import pitr_cli
from geo.accounts.cli import app as account_app
from geo.audit_cli import app as audit_app
from geo.ha import cli as ha_cli
from geo.plugins import load_plugins
from geo.settings import get_settings

if TYPE_CHECKING:  # imported lazily at run time: most commands never need them
    from geo.auth import Principal
    from geo.embedded import EmbeddedCluster

app = typer.Typer(
    help="Tianjin spatial address and GIS service",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The embedded PostgreSQL + PostGIS cluster", no_args_is_help=True)
department_app = typer.Typer(help="Departments", no_args_is_help=True)
key_app = typer.Typer(help="API keys", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(department_app, name="department")
app.add_typer(key_app, name="key")
app.add_typer(audit_app, name="audit")
app.add_typer(account_app, name="account")
out = Console()
err = Console(stderr=True)


def _console_actor() -> Principal:
    """Who the audit log names for commands typed at the server's console."""
    from geo.auth import Principal
    from geo.departments import PLATFORM

    return Principal(PLATFORM, "admin", "console")


def _cluster() -> EmbeddedCluster:
    from geo.embedded import EmbeddedCluster

    settings = get_settings()
    return EmbeddedCluster(settings.pg_dir, port=settings.db_port)


@db_app.command("start")
def db_start() -> None:
    """Create (first time) and start the embedded cluster."""
    url = _cluster().start()
    err.print(f"[green]running[/green] at {url.rsplit('@', 1)[-1]}")


@db_app.command("stop")
def db_stop() -> None:
    _cluster().stop()
    err.print("stopped")


@db_app.command("status")
def db_status() -> None:
    cluster = _cluster()
    if not cluster.initialized():
        out.print(f"no cluster at {cluster.root}")
        raise typer.Exit(3)
    running = cluster.running()
    out.print(f"{'running' if running else 'stopped'}: {cluster.root} port {cluster.config().port}")
    raise typer.Exit(0 if running else 3)


@db_app.command("replica")
def db_replica(
    port: Annotated[
        int | None, typer.Option(help="port of the replica; a free one if unset")
    ] = None,
) -> None:
    """Create (first time) and start a streaming read replica of the embedded cluster under
    $GEO_DATA_DIR/pg-replica, and print its URL for GEO_READ_URLS."""
    from geo.embedded import EmbeddedCluster

    primary = _cluster()
    primary.start()
    replica = EmbeddedCluster(get_settings().data_dir.resolve() / "pg-replica", port=port)
    if not replica.initialized():
        replica.init_replica(primary)
    print(replica.start())


db_app.command("ha")(ha_cli.ha)


@db_app.command("url")
def db_url() -> None:
    """Print the connection URL (DATABASE_URL when set, else the embedded cluster's)."""
    from geo.db import database_url

    print(database_url())


@app.command()
def migrate() -> None:
    """Apply Alembic migrations (starting the embedded cluster if needed)."""
    from geo import bootstrap, migrations
    from geo.db import ensure_extensions

    bootstrap.start_database()
    ensure_extensions()
    migrations.upgrade()
    err.print("[green]migrations applied[/green]")


def _serve(host: str | None, port: int | None, workers: int | None) -> None:
    import uvicorn

    from geo.logs import log_config
    from geo.request_lines import PROTOCOL

    settings = get_settings()
    uvicorn.run(
        "geo.app:create_app",
        factory=True,
        # Raw UTF-8 in a request line (curl's `?q=天津市...`) is served, not a parser's 400.
        http=PROTOCOL,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        proxy_headers=True,
        log_level="info",
        # geo.logs writes one line per request (route, caller, request id, credentials
        # redacted); uvicorn's access log would be a second one.
        access_log=False,
        log_config=log_config(settings),
    )


HostOpt = Annotated[str | None, typer.Option(help="address to bind (GEO_HOST, 127.0.0.1)")]
PortOpt = Annotated[int | None, typer.Option(help="port (PORT, 8000)")]
WorkersOpt = Annotated[int | None, typer.Option(help="worker processes (GEO_WORKERS, 1)")]


@app.command()
def serve(host: HostOpt = None, port: PortOpt = None, workers: WorkersOpt = None) -> None:
    """Serve the API (the database must be ready: see `geo run`)."""
    _serve(host, port, workers)


@app.command()
def run(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: WorkersOpt = None,
    samples: Annotated[bool, typer.Option(help="load sample data on first run")] = True,
) -> None:
    """Do all the set-up (database, migrations, admin key, samples on first run), then serve."""
    from geo import bootstrap

    bootstrap.prepare(samples=samples)
    _serve(host, port, workers)


@department_app.command("create")
def department_create(
    name: str,
    code: Annotated[
        str | None, typer.Option(help="short code; pinyin of the name by default")
    ] = None,
    role: Annotated[
        str, typer.Option(help="role of the first key: admin, editor or viewer")
    ] = "editor",
    address_authority: Annotated[
        bool, typer.Option(help="may write the standard address library")
    ] = False,
) -> None:
    """Create a department and print its first key (shown once)."""
    from geo import audit, departments
    from geo.auth import issue_key
    from geo.db import session_scope

    cli = _console_actor()
    with session_scope() as session:
        department = departments.create_department(session, name, code, address_authority)
        key, plaintext = issue_key(session, department, role)
        audit.record(
            session,
            cli,
            "department.create",
            department.code,
            {"name": name, "address_authority": address_authority},
        )
        audit.record(session, cli, "key.create", f"{department.code}/{key.prefix}", {"role": role})
    err.print(f"department [bold]{department.code}[/bold] created; its {role} key (shown once):")
    print(plaintext)


@department_app.command("list")
def department_list() -> None:
    from geo import departments
    from geo.db import session_scope

    with session_scope() as session:
        for d in departments.list_departments(session):
            authority = "  (address authority)" if d["address_authority"] else ""
            out.print(f"{d['code']:<24} {d['name']}{authority}")


@department_app.command("authority")
def department_authority(
    code: str,
    on: Annotated[
        bool, typer.Option("--on/--off", help="name the department the address authority, or not")
    ],
) -> None:
    """Let a department write the standard address library (--on), or stop it (--off)."""
    from geo import audit, departments
    from geo.db import session_scope

    with session_scope() as session:
        departments.set_address_authority(session, code, on)
        audit.record(
            session, _console_actor(), "department.update", code, {"address_authority": on}
        )
    err.print(f"department {code}: address authority {'on' if on else 'off'}")


@key_app.command("create")
def key_create(
    department: str,
    role: Annotated[str, typer.Option(help="admin, editor or viewer")] = "viewer",
    label: Annotated[str | None, typer.Option()] = None,
    read_only: Annotated[bool, typer.Option(help="never writes, whatever its role")] = False,
    days: Annotated[int | None, typer.Option(min=1, help="expires this many days from now")] = None,
) -> None:
    """Issue another key for a department and print it (shown once)."""
    from datetime import UTC, datetime, timedelta

    from geo import audit, departments
    from geo.db import session_scope

    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    with session_scope() as session:
        key, plaintext = departments.create_key(
            session, department, role, label, expires, read_only
        )
        audit.record(
            session,
            _console_actor(),
            "key.create",
            f"{department}/{key.prefix}",
            {
                "role": role,
                "read_only": read_only,
                "expires_at": expires.isoformat() if expires else None,
            },
        )
    print(plaintext)


@key_app.command("revoke")
def key_revoke(department: str, key_id: int) -> None:
    from geo import audit, departments
    from geo.db import session_scope

    with session_scope() as session:
        key = departments.revoke_key(session, department, key_id)
        audit.record(session, _console_actor(), "key.revoke", f"{department}/{key.prefix}")
    err.print(f"key {key.prefix}… revoked")


@app.command("export")
def export_dump(
    path: Annotated[Path, typer.Argument(help="file to write (pg_dump custom format)")],
) -> None:
    """Export everything (platform and layer tables) to one file, to move it to another
    installation. Backups with point-in-time recovery: `geo backup`."""
    from geo.backup import backup as do_backup

    size = do_backup(path)
    err.print(f"已导出到 {path}（{size / 1e6:.1f} MB）")


@app.command("import")
def import_dump(
    path: Annotated[Path, typer.Argument(help="a file written by `geo export`")],
) -> None:
    """Replace the database's contents with an export (all or nothing)."""
    from geo.backup import restore as do_restore

    do_restore(path)
    err.print(f"已从 {path} 导入")


app.command("backup")(pitr_cli.backup)
app.command("restore")(pitr_cli.restore)


def main() -> None:
    for plugin in load_plugins():
        for name, sub in plugin.commands.items():
            app.add_typer(sub, name=name)
    try:
        app()
    except Exception as exc:
        from geo.backup import BackupError
        from geo.embedded import EmbeddedError
        from geo.errors import ApiError
        from geo.pitr import PitrError

        if isinstance(exc, ApiError):
            err.print(f"[red]error:[/red] {exc.message}")
            raise SystemExit(2) from None
        if isinstance(exc, BackupError | EmbeddedError | PitrError):
            err.print(f"[red]error:[/red] {exc}")
            raise SystemExit(1) from None
        raise


if __name__ == "__main__":
    main()

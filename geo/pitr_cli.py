"""`geo backup` and `geo restore`: pgBackRest backups and point-in-time restores (geo.pitr)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:  # imported when a command runs: most `geo` commands never need them
    from geo.pitr import Pitr

err = Console(stderr=True)


def _pitr() -> Pitr:
    from geo.embedded import EmbeddedCluster
    from geo.pitr import Pitr, repositories
    from geo.settings import get_settings

    settings = get_settings()
    return Pitr(EmbeddedCluster(settings.pg_dir, port=settings.db_port), repositories(settings))


def backup(
    kind: Annotated[
        str, typer.Option("--type", help="full, diff (since the last full) or incr")
    ] = "full",
) -> None:
    """Back up the embedded cluster into the local and the off-site repository (pgBackRest;
    WAL is archived continuously, so restores can reach any moment after the first backup)."""
    pitr = _pitr()
    seconds = pitr.backup(kind)
    where = "、".join(map(str, pitr.repos.paths))
    err.print(f"[green]备份完成[/green]（{kind}，{seconds:.1f} 秒）：{where}")


def restore(
    target: Annotated[
        Path, typer.Argument(help="new (or empty) directory for the restored cluster")
    ],
    to: Annotated[
        datetime | None,
        typer.Option(
            "--to",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
            help="the moment to restore to, with its time zone (2026-12-05T09:30:00+08:00)",
        ),
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="up to the last archived WAL")] = False,
) -> None:
    """Restore the backups into a new cluster in TARGET, as of --to or --latest, and start it.
    The running cluster is not touched: point DATABASE_URL at the copy once checked."""
    from geo.pitr import PitrError

    if (to is None) == (not latest):
        raise PitrError("give exactly one of --to TIME or --latest")
    pitr = _pitr()
    restored = pitr.restore(target, to)
    err.print(f"[green]已恢复[/green]到 {target}，端口 {restored.config().port}")
    print(restored.url())

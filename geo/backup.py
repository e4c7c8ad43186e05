"""`geo export FILE` / `geo import FILE`: the whole database, platform and layer tables alike,
to move it between installations (backups with point-in-time recovery: geo.pitr).

We use PostgreSQL's own pg_dump custom format rather than an export of our own: it carries every
table the service made at runtime (layer tables, their histories), indexes and sequences, and
pg_restore can put it back in a single transaction, so a failed restore changes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from geo.db import database_url
from geo.embedded import find_bindir


class BackupError(RuntimeError):
    pass


def _tool(name: str) -> str:
    """The server's own pg_dump/pg_restore (same major version as the cluster) when present."""
    bindir = find_bindir()
    if bindir and (bindir / name).exists():
        return str(bindir / name)
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found; install the PostgreSQL client tools")
    return found


def _connection_args(url: str | None) -> tuple[list[str], dict[str, str]]:
    """libpq arguments, with the password in the environment rather than on the command line
    where every user of the machine could read it."""
    u = make_url(url or database_url())
    args = [
        "--host",
        u.host or "127.0.0.1",
        "--port",
        str(u.port or 5432),
        "--username",
        u.username or "",
    ]
    env = {**os.environ, "PGPASSWORD": u.password or "", "PGDATABASE": u.database or ""}
    return args, env


def backup(path: Path, url: str | None = None) -> int:
    """Write the database to `path` (custom format); return its size in bytes."""
    args, env = _connection_args(url)
    tmp = path.with_name(path.name + ".partial")
    result = subprocess.run(
        [
            _tool("pg_dump"),
            *args,
            "--format=custom",
            "--no-owner",
            f"--file={tmp}",
            env["PGDATABASE"],
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    tmp.replace(path)  # a backup file either is complete or does not exist
    return path.stat().st_size


def restore(path: Path, url: str | None = None) -> None:
    """Replace the database's contents with the backup, all or nothing."""
    if not path.is_file():
        raise BackupError(f"no backup file at {path}")
    args, env = _connection_args(url)
    result = subprocess.run(
        [
            _tool("pg_restore"),
            *args,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={env['PGDATABASE']}",
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed, nothing was changed: {result.stderr.strip()}")

"""Point-in-time recovery with pgBackRest: continuous WAL archiving, full/differential/incremental
backups into a local repository and a second one standing for the off-site copy, and restores to
a chosen moment (or the latest) into a new data directory.

pgBackRest does the work (docs/decisions.md); this module writes its configuration next to the
embedded cluster, turns archiving on, runs its commands as the cluster's owner and turns the
faults an operator can make (a time before the first backup, a non-empty target, a repository
gone or full) into clear errors before anything is written. `geo export`/`geo import` (pg_dump,
geo.backup) remain for moving data between installations.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from geo.embedded import SUPERUSER, EmbeddedCluster, EmbeddedError, free_port
from geo.settings import Settings

STANZA = "geo"
BACKUP_TYPES = ("full", "diff", "incr")


class PitrError(RuntimeError):
    """A backup or restore refused or failed; the message says why. Nothing was overwritten."""


@dataclass(frozen=True)
class Repositories:
    local: Path
    offsite: Path
    retention_full: int

    @property
    def paths(self) -> tuple[Path, Path]:
        return (self.local, self.offsite)


def repositories(settings: Settings) -> Repositories:
    backups = settings.data_dir.resolve() / "backups"
    return Repositories(
        (settings.backup_dir or backups / "local").resolve(),
        (settings.backup_offsite_dir or backups / "offsite").resolve(),
        settings.backup_retention_full,
    )


class Pitr:
    """pgBackRest for one embedded cluster; its configuration lives in `<cluster>/pgbackrest`."""

    def __init__(self, cluster: EmbeddedCluster, repos: Repositories) -> None:
        self.cluster = cluster
        self.repos = repos

    @property
    def home(self) -> Path:
        return self.cluster.root / "pgbackrest"

    @property
    def config_file(self) -> Path:
        return self.home / "pgbackrest.conf"

    def _owner(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _os_user(self) -> str:
        return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _write_config(self) -> None:
        for path in (self.home, self.home / "log", self.home / "lock", self.home / "spool"):
            path.mkdir(parents=True, exist_ok=True)
            self._owner(path)
        lines = [
            "[global]",
            f"log-path={self.home / 'log'}",
            f"lock-path={self.home / 'lock'}",
            f"spool-path={self.home / 'spool'}",
            "log-level-console=warn",
            "log-level-file=info",
            "start-fast=y",
            "archive-async=n",
            "compress-type=lz4",
        ]
        for n, path in enumerate(self.repos.paths, start=1):
            lines += [
                f"repo{n}-path={path}",
                f"repo{n}-retention-full={self.repos.retention_full}",
            ]
        lines += [
            "",
            f"[{STANZA}]",
            f"pg1-path={self.cluster.pgdata}",
            f"pg1-port={self.cluster.config().port}",
            f"pg1-socket-path={self.cluster.run_dir}",
            f"pg1-user={SUPERUSER}",
        ]
        self.config_file.write_text("\n".join(lines) + "\n")
        self._owner(self.config_file)

    def _pgbackrest(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if not shutil.which("pgbackrest"):
            raise PitrError("pgbackrest is not installed (apt-get install pgbackrest)")
        command = ["pgbackrest", f"--config={self.config_file}", f"--stanza={STANZA}", *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if check and result.returncode != 0:
            error = _last_error(result)
            if "No space left" in error:
                raise PitrError(f"a backup repository is full; free space or add some: {error}")
            raise PitrError(f"pgbackrest {args[0]} failed: {error}")
        return result

    def _allow_local_superuser(self) -> None:
        """pgBackRest reaches the cluster over its socket as `geo`: map the OS user running
        it (postgres when we are root) to that role, peer-authenticated, nothing else."""
        ident = self.cluster.pgdata / "pg_ident.conf"
        line = f"pitr {self._os_user()} {SUPERUSER}"
        if line not in ident.read_text():
            ident.write_text(ident.read_text() + line + "\n")
        hba = self.cluster.pgdata / "pg_hba.conf"
        rule = f"local all {SUPERUSER} peer map=pitr"
        text = hba.read_text()
        if rule not in text:
            hba.write_text(rule + "\n" + text)

    def _archiving_conf(self) -> Path:
        return self.cluster.pgdata / "conf.d-pitr.conf"

    def setup(self) -> None:
        """Configuration, archiving on (a restart the first time), the stanza in both
        repositories. Idempotent; a repository that vanished after setup is an error, not
        silently made anew (its backups and WAL would be gone without anyone knowing)."""
        configured = self._archiving_conf().exists()
        for path in self.repos.paths:
            if configured and not path.is_dir():
                raise PitrError(
                    f"backup repository {path} is missing; mount it again (or restore it) "
                    "before backing up"
                )
        for path in self.repos.paths:
            path.mkdir(parents=True, exist_ok=True)
            self._owner(path)
        self.cluster.start()
        self._write_config()
        if not configured:
            self._allow_local_superuser()
            conf = self._archiving_conf()
            conf.write_text(
                "archive_mode = on\n"
                f"archive_command = 'pgbackrest --config={self.config_file} "
                f"--stanza={STANZA} archive-push %p'\n"
                "archive_timeout = 60\n"
                "full_page_writes = on\n"
            )
            self._owner(conf)
            main = self.cluster.pgdata / "postgresql.conf"
            include = f"include '{conf.name}'"
            if include not in main.read_text():
                main.write_text(main.read_text() + f"\n{include}\n")
            self.cluster.stop()
            self.cluster.start()
        self._pgbackrest("stanza-create")

    def backup(self, kind: str = "full") -> float:
        """One backup of `kind` into each repository; seconds taken. Retention (the number of
        full backups kept, GEO_BACKUP_RETENTION_FULL) expires older ones after each."""
        if kind not in BACKUP_TYPES:
            raise PitrError(f"backup type {kind!r}: expected one of {', '.join(BACKUP_TYPES)}")
        started = datetime.now(UTC)
        self.setup()
        self._check_space()
        for n in range(1, len(self.repos.paths) + 1):
            self._pgbackrest("backup", f"--repo={n}", f"--type={kind}")
        return (datetime.now(UTC) - started).total_seconds()

    def _check_space(self) -> None:
        """Refuse before starting when a repository has less room than the databases take
        (an upper bound of what a full backup writes before compression): a backup that ran out
        of space half-way would only say that WAL could not be archived."""
        import psycopg

        from geo.db import libpq_url

        with psycopg.connect(libpq_url(self.cluster.url("postgres")), autocommit=True) as conn:
            row = conn.execute("SELECT sum(pg_database_size(oid)) FROM pg_database").fetchone()
        needed = int(row[0]) if row and row[0] else 0
        for path in self.repos.paths:
            free = shutil.disk_usage(path).free
            if free < needed:
                raise PitrError(
                    f"backup repository {path} is full: {free / 1e6:.1f} MB free, the "
                    f"databases take {needed / 1e6:.1f} MB; free space or move the repository"
                )

    def info(self) -> list[dict[str, object]]:
        """pgBackRest's description of the backups (every repository)."""
        self._write_config()
        result = self._pgbackrest("info", "--output=json")
        stanzas = json.loads(result.stdout or "[]")
        return list(stanzas[0].get("backup", [])) if stanzas else []

    def earliest_backup_end(self) -> datetime | None:
        """The first moment a restore can reach: the end of the oldest backup kept."""
        ends = [int(b["timestamp"]["stop"]) for b in self.info()]  # type: ignore[index]
        return datetime.fromtimestamp(min(ends), UTC) if ends else None

    def restore(self, target: Path, to: datetime | None) -> EmbeddedCluster:
        """Restore into `target` (absent or empty) as a new cluster, to the moment `to` or to
        the latest WAL archived when None; start it and return it. The running cluster and its
        repositories are left as they are."""
        target = target.resolve()
        if target.exists() and any(target.iterdir()):
            raise PitrError(f"{target} is not empty; restore into a new or empty directory")
        if to is not None:
            if to.tzinfo is None:
                raise PitrError("give the restore time with its time zone, e.g. +08:00")
            first = self.earliest_backup_end()
            if first is None:
                raise PitrError("no backup exists yet; run `geo backup` first")
            if to < first:
                raise PitrError(
                    f"{to.isoformat()} is before the first backup kept (it ended at "
                    f"{first.isoformat()}); choose a later time"
                )
        restored = EmbeddedCluster(target)
        target.mkdir(parents=True, exist_ok=True)
        restored.run_dir.mkdir(exist_ok=True)
        restored.pgdata.mkdir(mode=0o700, exist_ok=True)
        for path in (target, restored.run_dir, restored.pgdata):
            self._owner(path)
        args = ["restore", f"--pg1-path={restored.pgdata}", "--archive-mode=off"]
        if to is not None:
            args += [
                "--type=time",
                f"--target={to.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f+00')}",
                "--target-action=promote",
            ]
        else:
            args += ["--type=default"]
        self._write_config()
        self._pgbackrest(*args)
        # The copy must not archive into the original's stanza, nor take its port.
        (restored.pgdata / "conf.d-pitr.conf").write_text("archive_mode = off\n")
        config = self.cluster.config()
        config.port = free_port()
        restored._write_server_conf(config.port)
        restored._save_config(config)
        try:
            restored.start()
        except EmbeddedError as exc:
            raise PitrError(f"restored, but the restored cluster did not start: {exc}") from exc
        _wait_promoted(restored)
        return restored


def _wait_promoted(cluster: EmbeddedCluster, timeout_s: float = 3600) -> None:
    """Until replay has reached the target and the copy takes writes: it accepts read-only
    connections while it replays, which is not yet the state asked for."""
    import psycopg

    from geo.db import libpq_url

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with psycopg.connect(libpq_url(cluster.url("postgres")), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if row is not None and not row[0]:
            return
        time.sleep(0.2)
    raise PitrError(
        f"the restored cluster in {cluster.root} was still replaying after {timeout_s} s"
    )


def _last_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (result.stderr + result.stdout).splitlines() if "ERROR" in ln]
    return (lines[-1] if lines else (result.stderr or result.stdout).strip()[-500:]).strip()

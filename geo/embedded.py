"""The embedded PostgreSQL + PostGIS cluster that `make run` and the tests start by themselves.

One class knows how to find (or install) the server binaries, create a cluster in a folder, start
and stop it and say how to reach it. The service and the test suite use the same code, so what the
tests exercise is what users run. A cluster is a folder holding `data/` (PGDATA), `run/` (socket),
`server.log` and `cluster.json` (port and generated password; never leaves the folder).

PostgreSQL's initdb refuses to run as root, so when we are root every server command runs as the
`postgres` system user (created by Debian's packages) and the folder is handed to that user.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from rich.console import Console

console = Console(stderr=True)

SUPERUSER = "geo"
DATABASE = "geo"
POSTGRES_LIB = Path("/usr/lib/postgresql")
POSTGRES_SHARE = Path("/usr/share/postgresql")


class EmbeddedError(RuntimeError):
    """The cluster could not be set up; the message says what to do about it."""


def _server_versions() -> list[int]:
    if not POSTGRES_LIB.is_dir():
        return []
    return sorted(
        (
            int(p.name)
            for p in POSTGRES_LIB.iterdir()
            if p.name.isdigit() and (p / "bin/initdb").exists()
        ),
        reverse=True,
    )


def _has_postgis(version: int) -> bool:
    return (POSTGRES_SHARE / str(version) / "extension/postgis.control").exists()


def find_bindir() -> Path | None:
    """The newest installed server that has PostGIS, or None."""
    for version in _server_versions():
        if _has_postgis(version):
            return POSTGRES_LIB / str(version) / "bin"
    return None


def ensure_binaries() -> Path:
    """Return the server's bin directory, installing PostgreSQL/PostGIS with apt-get if missing.

    We pick the installed server version (Debian names the PostGIS package after it) so that a
    machine that already has PostgreSQL 16 gets postgresql-16-postgis-3, not a second server.
    """
    bindir = find_bindir()
    if bindir:
        return bindir
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EmbeddedError(
            "PostgreSQL with PostGIS is not installed and we cannot install it (need root and "
            "apt-get). Install postgresql and postgresql-<version>-postgis-3, or set DATABASE_URL."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    console.print("[bold]Installing PostgreSQL + PostGIS with apt-get...[/bold]")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    versions = _server_versions()
    if not versions:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql", "postgresql-contrib"],
            check=True,
            env=env,
        )
        versions = _server_versions()
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", f"postgresql-{versions[0]}-postgis-3"],
        check=True,
        env=env,
    )
    bindir = find_bindir()
    if bindir is None:
        raise EmbeddedError(f"postgresql-{versions[0]}-postgis-3 installed but PostGIS not found")
    return bindir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ClusterConfig:
    port: int
    password: str


class EmbeddedCluster:
    """A PostgreSQL cluster living in one folder, reachable on 127.0.0.1 only."""

    def __init__(self, root: Path, port: int | None = None, durable: bool = True) -> None:
        self.root = Path(root).resolve()
        self.requested_port = port
        # Tests run with fsync off: they throw the cluster away, and it halves their run time.
        self.durable = durable

    # -- paths and identity ------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.root / "data"

    @property
    def config_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def config(self) -> ClusterConfig:
        if not self.config_file.exists():
            raise EmbeddedError(f"no cluster at {self.root}; run `geo db start` first")
        return ClusterConfig(**json.loads(self.config_file.read_text()))

    def _save_config(self, config: ClusterConfig) -> None:
        self.config_file.write_text(json.dumps(config.__dict__))
        self.config_file.chmod(0o600)

    def url(self, database: str = DATABASE) -> str:
        cfg = self.config()
        return f"postgresql+psycopg://{SUPERUSER}:{quote(cfg.password)}@127.0.0.1:{cfg.port}/{database}"

    # -- running commands as the right user ----------------------------------------------------
    @staticmethod
    def _as_root() -> bool:
        return os.geteuid() == 0

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._as_root():
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=check, capture_output=True, text=True)

    def _give_to_postgres(self, path: Path) -> None:
        if self._as_root():
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # -- lifecycle ---------------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self.config_file.exists()

    def init(self) -> None:
        """Create the cluster: superuser `geo` with a generated password, loopback only."""
        bindir = ensure_binaries()
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        for path in (self.root, self.run_dir):
            self._give_to_postgres(path)
        password = secrets.token_urlsafe(24)
        pwfile = self.root / ".pw"
        pwfile.write_text(password + "\n")
        self._give_to_postgres(pwfile)
        pwfile.chmod(0o600)
        try:
            result = self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        port = self.requested_port or free_port()
        self._write_server_conf(port)
        self._save_config(ClusterConfig(port=port, password=password))

    def _write_server_conf(self, port: int) -> None:
        # Sized for the 2-core / 24 GiB machines this runs on; a real deployment tunes its own.
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{self.run_dir}'",
            "max_connections = 200",
            "shared_buffers = '1GB'",
            "work_mem = '32MB'",
            "maintenance_work_mem = '1GB'",
            "max_wal_size = '4GB'",
            "random_page_cost = 1.1",
            "jit = off",
            "wal_level = replica",
            "max_wal_senders = 5",
        ]
        if not self.durable:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        conf = self.pgdata / "conf.d-geo.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._give_to_postgres(conf)
        main_conf = self.pgdata / "postgresql.conf"
        text = main_conf.read_text()
        include = f"include '{conf.name}'"
        if include not in text:
            main_conf.write_text(text + f"\n{include}\n")

    def init_replica(self, primary: EmbeddedCluster) -> None:
        """Make this cluster a streaming replica of `primary` (which must be running).

        pg_basebackup -R copies the primary and writes the standby settings; the replica shares
        the primary's password (it is a copy of its catalog) and gets a port of its own.
        """
        bindir = ensure_binaries()
        cfg = primary.config()
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        for path in (self.root, self.run_dir):
            self._give_to_postgres(path)
        env_password = ["env", f"PGPASSWORD={cfg.password}"]
        result = self._run(
            [
                *env_password,
                str(bindir / "pg_basebackup"),
                "-D",
                str(self.pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(cfg.port),
                "-U",
                SUPERUSER,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedError(f"pg_basebackup failed:\n{result.stderr}")
        port = self.requested_port or free_port()
        self._write_server_conf(port)
        self._save_config(ClusterConfig(port=port, password=cfg.password))

    def running(self) -> bool:
        bindir = find_bindir()
        if bindir is None or not self.initialized():
            return False
        return (
            self._run(
                [str(bindir / "pg_ctl"), "status", "-D", str(self.pgdata)], check=False
            ).returncode
            == 0
        )

    def start(self) -> str:
        """Create if needed, start if stopped, make sure the database exists; return its URL."""
        replica = (self.pgdata / "standby.signal").exists()
        if not self.initialized():
            console.print(f"Creating PostgreSQL cluster in {self.root}")
            self.init()
        bindir = ensure_binaries()
        if not self.running():
            cfg = self.config()
            if _port_in_use(cfg.port):
                # Another program took our port while we were stopped: move rather than fail.
                cfg.port = (
                    self.requested_port
                    if self.requested_port and not _port_in_use(self.requested_port)
                    else free_port()
                )
                self._write_server_conf(cfg.port)
                self._save_config(cfg)
            result = self._run(
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.log_file),
                ],
                check=False,
            )
            if result.returncode != 0:
                log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
                raise EmbeddedError(f"PostgreSQL did not start:\n{result.stderr}\n{log}")
        if not replica:  # a standby is read-only; its databases come from the primary
            self._ensure_database()
        return self.url()

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg.conninfo import make_conninfo

        cfg = self.config()
        conninfo = make_conninfo(
            host="127.0.0.1",
            port=cfg.port,
            user=SUPERUSER,
            password=cfg.password,
            dbname="postgres",
        )
        for attempt in range(50):
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')
                    return
            except psycopg.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        bindir = find_bindir()
        if bindir and self.running():
            self._run([str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pgdata)])

    def destroy(self) -> None:
        """Stop and delete the folder: for throw-away clusters (tests, benchmarks)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

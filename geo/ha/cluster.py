"""A pg_auto_failover formation on one machine: monitor, primary and standby in folders of their
own under `$GEO_DATA_DIR/ha`, each run by its `pg_autoctl run` keeper.

pg_auto_failover does the failover (the monitor watches both nodes, promotes the standby when
the primary stops answering, demotes and rejoins the old one); this module only creates the
folders, starts the keepers as the `postgres` user when we are root (initdb refuses root), makes
the service's `geo` role and says how to reach the pair: one multi-host URL with
`target_session_attrs=read-write`. Synchronous replication is pg_auto_failover's default for two
nodes (`synchronous_standby_names = 'ANY 1 (...)'`), so an acknowledged commit is on both.

Optionally a third node serves reads only (`read_replica=True`, `geo db ha --read-replica`):
candidate priority 0, so the monitor never promotes it, and outside the replication quorum, so
commits never wait for it (it replicates asynchronously). It follows whichever node is primary;
the read URL (`url(read=True)`) names it first, so the service's reads (GEO_READ_URLS) go there
and fall back to the synchronous standby, then the primary, when it is down.

The same commands, one per machine with its own `--hostname`, give the three-machine layout
(docs/operations.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from geo.embedded import DATABASE, SUPERUSER, EmbeddedError, ensure_binaries, free_port

NODES = ("node1", "node2")
REPLICA = "replica"
# How long `stop` lets each PostgreSQL shut down before asking it again, then killing it.
STOP_WAIT_S = 15.0
# Failure detection, tightened from pg_auto_failover's defaults (20 s before a node counts as
# unhealthy, about 50 s to a new primary): a city service should be writable again in seconds.
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "4000",
}


class HaError(EmbeddedError):
    """The formation could not be set up or did not become healthy; the message says why."""


@dataclass
class HaConfig:
    monitor_port: int
    node_ports: list[int]
    password: str
    replica_port: int | None = None


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class HaFormation:
    """Monitor and two nodes (and an optional read replica) under `root`, on loopback."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    @property
    def config_file(self) -> Path:
        return self.root / "ha.json"

    def config(self) -> HaConfig:
        if not self.config_file.exists():
            raise HaError(f"no formation at {self.root}; run `geo db ha` first")
        return HaConfig(**json.loads(self.config_file.read_text()))

    def pgdata(self, name: str) -> Path:
        return self.root / name

    def log_file(self, name: str) -> Path:
        return self.root / f"{name}.log"

    # -- commands as the clusters' owner ---------------------------------------------------------
    def _command(self, args: list[str]) -> list[str]:
        env = ["env", f"PATH={ensure_binaries()}:{os.environ.get('PATH', '')}", f"HOME={self.root}"]
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return [*prefix, *env, *args]

    def _autoctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._command(["pg_autoctl", *args]), capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise HaError(f"pg_autoctl {args[0]} {args[1]} failed:\n{result.stderr[-2000:]}")
        return result

    def _psql(self, port: int, sql: str, database: str = DATABASE) -> str:
        result = subprocess.run(
            self._command(
                ["psql", "-h", "127.0.0.1", "-p", str(port), "-d", database, "-Atc", sql]
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise HaError(f"psql on port {port} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # -- lifecycle ----------------------------------------------------------------------------
    def create(
        self,
        monitor_port: int | None = None,
        node_ports: list[int] | None = None,
        read_replica: bool = False,
        replica_port: int | None = None,
    ) -> None:
        """Create the monitor and both nodes, and the read replica if asked (first time only),
        and start their keepers."""
        if self.config_file.exists():
            self.start()
            return
        if not shutil.which("pg_autoctl"):
            raise HaError("pg_autoctl is missing: apt-get install postgresql-15-auto-failover")
        ports = [monitor_port or free_port(), *(node_ports or [free_port(), free_port()])]
        if read_replica:
            ports.append(replica_port or free_port())
        if len(set(ports)) != len(ports):
            raise HaError(f"the monitor and each node need a port of their own: {ports}")
        taken = [p for p in ports if _port_taken(p)]
        if taken:
            raise HaError(
                f"port(s) {', '.join(map(str, taken))} already in use on 127.0.0.1; choose "
                "others (--monitor-port, --node-ports, --replica-port) or stop what listens there"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._own(self.root)
        config = HaConfig(
            ports[0], ports[1:3], secrets.token_urlsafe(24), ports[3] if read_replica else None
        )
        common = ["--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl"]
        self._autoctl(
            "create", "monitor", "--pgdata", str(self.pgdata("monitor")),
            "--pgport", str(config.monitor_port), *common,
        )  # fmt: skip
        self._keeper("monitor")
        self._wait_accepting(config.monitor_port, "pg_auto_failover")
        for name, value in MONITOR_SETTINGS.items():
            sql = f"ALTER SYSTEM SET {name} = {value}"
            self._psql(config.monitor_port, sql, "pg_auto_failover")
        self._psql(config.monitor_port, "SELECT pg_reload_conf()", "pg_auto_failover")
        monitor = f"postgres://autoctl_node@127.0.0.1:{config.monitor_port}/pg_auto_failover"
        for name, port in zip(NODES, config.node_ports, strict=True):
            self._autoctl(
                "create", "postgres", "--pgdata", str(self.pgdata(name)), "--pgport", str(port),
                "--monitor", monitor + "?sslmode=disable", "--dbname", DATABASE,
                "--name", name, *common,
            )  # fmt: skip
            self._keeper(name)
            if name == NODES[0]:
                self._wait_accepting(port, DATABASE)
                self._psql(
                    port,
                    f"CREATE ROLE {SUPERUSER} SUPERUSER LOGIN PASSWORD '{config.password}'",
                )
        self.config_file.write_text(json.dumps(asdict(config)))
        self.config_file.chmod(0o600)
        if config.replica_port is not None:
            # Cloned from the primary once the pair is up: never promoted, never waited for.
            self.wait_healthy()
            self._autoctl(
                "create", "postgres", "--pgdata", str(self.pgdata(REPLICA)),
                "--pgport", str(config.replica_port), "--monitor", monitor + "?sslmode=disable",
                "--dbname", DATABASE, "--name", REPLICA, "--candidate-priority", "0",
                "--replication-quorum", "false", *common,
            )  # fmt: skip
            self._keeper(REPLICA)
        self.wait_healthy()

    def names(self) -> tuple[str, ...]:
        """The formation's nodes: the pair, and the read replica when there is one."""
        return (*NODES, REPLICA) if self.config().replica_port is not None else NODES

    def _keeper(self, name: str) -> None:
        """`pg_autoctl run` for one folder, detached, its output in `<name>.log`."""
        log = self.log_file(name)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self._command(["pg_autoctl", "run", "--pgdata", str(self.pgdata(name))]),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.root / f"{name}.keeper").write_text(str(proc.pid))

    def _wait_accepting(self, port: int, database: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._psql(port, "SELECT 1", database)
                return
            except HaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def states(self, column: str = "reportedstate") -> dict[str, str]:
        """Each node's state as it last reported it (primary, secondary, wait_primary...), or
        with column="goalstate" as the monitor has assigned it (a dead node reports nothing
        more; its assigned state says it is no longer the primary)."""
        port = self.config().monitor_port
        rows = self._psql(
            port,
            f"SELECT nodename, {column} FROM pgautofailover.node ORDER BY nodeid",
            "pg_auto_failover",
        )
        return dict(line.split("|", 1) for line in rows.splitlines() if line)

    def wait_healthy(self, timeout_s: float = 120) -> None:
        """Until one node is primary and every other one (the read replica too, when it has
        been created) a streaming secondary."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.states()
            roles = sorted(states.values())
            if roles[:1] == ["primary"] and len(roles) >= 2 and set(roles[1:]) == {"secondary"}:
                return
            if time.monotonic() > deadline:
                raise HaError(f"the formation did not become healthy: {states}")
            time.sleep(0.5)

    def start(self) -> None:
        for name in ("monitor", *self.names()):
            if not self._keeper_alive(name):
                self._keeper(name)
        self.wait_healthy()

    def _keeper_alive(self, name: str) -> bool:
        pid_file = self.root / f"{name}.keeper"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text()), 0)
        except ProcessLookupError:
            return False
        return True

    def _postmaster(self, name: str) -> int | None:
        """The pid of the folder's running PostgreSQL (None: none). Its postmaster.pid alone
        may be stale (a killed node's) and name a pid since reused, so the process must also
        be working in the folder, as a postmaster does."""
        try:
            pid = int((self.pgdata(name) / "postmaster.pid").read_text().split()[0])
            working_in = Path(os.readlink(f"/proc/{pid}/cwd"))
        except (OSError, IndexError, ValueError):
            return None
        return pid if working_in == self.pgdata(name).resolve() and _running(pid) else None

    def kill_node(self, name: str) -> None:
        """SIGKILL a node's keeper and its PostgreSQL: the machine is gone (tests, drills)."""
        pids = [int((self.root / f"{name}.keeper").read_text())]
        postmaster = self._postmaster(name)
        if postmaster is not None:
            pids.append(postmaster)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pids[0], signal.SIGKILL)  # the keeper's session: runuser and pg_autoctl
        for pid in pids[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def rejoin(self, name: str) -> None:
        """Start a killed node's keeper again: pg_auto_failover rewinds it and makes it the
        new primary's standby (a machine back after a failover)."""
        self._keeper(name)
        self.wait_healthy()

    def primary(self) -> str | None:
        """The node the monitor has made primary."""
        for name, state in self.states("goalstate").items():
            if state in ("primary", "wait_primary", "single"):
                return name
        return None

    def stop(self) -> None:
        names = (*NODES, REPLICA, "monitor")
        postmasters = [pid for name in names if (pid := self._postmaster(name)) is not None]
        for name in names:
            if self.pgdata(name).exists():
                subprocess.run(
                    self._command(
                        ["pg_autoctl", "stop", "--pgdata", str(self.pgdata(name)), "--immediate"]
                    ),
                    capture_output=True,
                    timeout=60,
                )
        # `pg_autoctl stop` asks its keeper and returns. Each PostgreSQL is let finish its
        # immediate shutdown (asked again directly, with SIGQUIT, if it has not within
        # STOP_WAIT_S) before the keepers' sessions are killed: a postmaster killed while it
        # shuts down leaves children behind (a monitor's logger and pg_auto_failover's
        # health-check worker outlived a full test run, orphaned).
        if not _gone(postmasters):
            for pid in postmasters:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
            _gone(postmasters)
        for name in names:
            if self._keeper_alive(name):
                pid = int((self.root / f"{name}.keeper").read_text())
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- how the service reaches it ---------------------------------------------------------------
    def url(self, read: bool = False) -> str:
        """Both nodes in one URL (SQLAlchemy's multi-host form, one `host=` per node; libpq's
        form: geo.db.libpq_url): libpq tries each; the write URL keeps the one that takes
        writes, the read URL prefers a standby, the read replica first when there is one."""
        config = self.config()
        ports = list(config.node_ports)
        if read and config.replica_port is not None:
            ports.insert(0, config.replica_port)
        hosts = "&".join(f"host=127.0.0.1:{p}" for p in ports)
        attrs = "prefer-standby" if read else "read-write"
        return (
            f"postgresql+psycopg://{SUPERUSER}:{quote(config.password)}@/{DATABASE}"
            f"?{hosts}&target_session_attrs={attrs}"
        )


def _gone(pids: list[int]) -> bool:
    """Wait up to STOP_WAIT_S for the processes to end; whether they all have."""
    deadline = time.monotonic() + STOP_WAIT_S
    while any(_running(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (exited, its parent not yet told)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"

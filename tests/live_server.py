"""`geo serve` as users run it, in its own process, against the test database.

Tests that must prove something about a real server process (it stays up after hostile input,
it answers while other requests wait on the database, a write acknowledged before a `kill -9`
is still there afterwards) start one here instead of using the in-process TestClient.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from geo.embedded import free_port


@dataclass
class LiveServer:
    base: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group (uvicorn's supervisor and its workers)."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("server did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.2)


@contextmanager
def live_server(
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    launcher: Path | None = None,
) -> Iterator[LiveServer]:
    """A `geo serve` process group on a free port; stopped (or found already killed) at the end.

    It reads the test database's environment (`DATABASE_URL`...) that the session fixtures set,
    plus ``env``. ``launcher``: a script run instead of `python -m geo.cli` (tests/fault_server.py
    injects faults, then calls the same CLI).
    """
    port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="geo-live-server-"))
    log_path = log_dir / "server.log"
    program = [str(launcher)] if launcher else ["-m", "geo.cli"]
    argv = [sys.executable, *program, "serve", "--port", str(port)]
    argv += ["--workers", str(workers)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_healthy(server.base, proc, log_path, timeout)
        yield server
    finally:
        if server.alive():
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill9()
        shutil.rmtree(log_dir, ignore_errors=True)

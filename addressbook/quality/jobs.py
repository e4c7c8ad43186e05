"""Quality reports run as jobs: one folder a report under ``$GEO_DATA_DIR/quality``, worked by
a bounded background worker, read back by any worker process.

The service had no job mechanism to reuse (the batch geocode streams its answer, the overlay
answers in the request), and a 1,000,000-row report takes minutes: too long for a request.
So each report is a folder holding ``job.json`` (who owns it, its state and progress, written
whole and renamed into place, so a reader never sees half of it), the upload until it is read,
and the results. A process runs at most one report at a time and queues at most MAX_WAITING
more (a 429 beyond); the worker holds an exclusive ``flock`` on the folder's ``lock`` file from
the upload to the end, so a report whose process died (the kernel drops the lock) is reported
as interrupted instead of running for ever, by whichever process is asked. Results expire
after EXPIRY; a department keeps at most KEEP reports (the oldest finished go first); the sweep
runs whenever a report is made.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson

from geo import spool
from geo.errors import ApiError, not_found
from geo.settings import get_settings

EXPIRY: Final = 24 * 3600
KEEP: Final = 10
MAX_WAITING: Final = 4
META: Final = "job.json"
LOCK: Final = spool.LOCK_NAME
_ID = re.compile(r"[0-9a-f]{32}")

log = logging.getLogger(__name__)
_waiting = threading.BoundedSemaphore(MAX_WAITING + 1)
_queue: queue.Queue[Callable[[], None]] = queue.Queue()
_worker: list[threading.Thread] = []
_worker_guard = threading.Lock()

Work = Callable[[Path, Callable[[dict[str, Any]], None]], dict[str, Any]]


def root() -> Path:
    return get_settings().data_dir.resolve() / "quality"


def read_meta(folder: Path) -> dict[str, Any]:
    meta: dict[str, Any] = orjson.loads((folder / META).read_bytes())
    return meta


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    temporary = folder / f".{META}.{threading.get_ident()}"
    temporary.write_bytes(orjson.dumps(meta))
    os.replace(temporary, folder / META)


def sweep(now: float | None = None) -> None:
    """Remove expired reports and each department's finished reports beyond KEEP."""
    now = time.time() if now is None else now
    kept: dict[str, list[tuple[float, Path]]] = {}
    base = root()
    if not base.is_dir():
        return
    for folder in base.iterdir():
        try:
            meta = read_meta(folder)
        except (FileNotFoundError, NotADirectoryError, orjson.JSONDecodeError):
            if spool.is_abandoned(folder) and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)  # made by a process that died
            continue
        if meta["expires"] <= now and spool.is_abandoned(folder):
            shutil.rmtree(folder, ignore_errors=True)
        elif meta["status"] in ("done", "failed"):
            kept.setdefault(meta["department"], []).append((meta["created"], folder))
    for finished in kept.values():
        for _, folder in sorted(finished, reverse=True)[KEEP:]:
            shutil.rmtree(folder, ignore_errors=True)


def create(department: str, details: dict[str, Any]) -> tuple[Path, int]:
    """A new report's folder, locked (the lock's descriptor: the worker closes it when done)."""
    sweep()
    if not _waiting.acquire(blocking=False):
        raise ApiError(
            429,
            "TooManyReports",
            f"{MAX_WAITING} quality reports are waiting already; try again when one is done",
        )
    folder = root() / secrets.token_hex(16)
    folder.mkdir(parents=True)
    fd = os.open(folder / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    now = time.time()
    write_meta(
        folder,
        {
            **details,
            "id": folder.name,
            "department": department,
            "status": "queued",
            "done": 0,
            "created": now,
            "expires": now + EXPIRY,
            "error": None,
        },
    )
    return folder, fd


def discard(folder: Path, fd: int) -> None:
    """Undo :func:`create` for a report refused before it started: nothing is kept."""
    shutil.rmtree(folder, ignore_errors=True)
    os.close(fd)
    _waiting.release()


def start(folder: Path, fd: int, work: Work, then: Callable[[Path], object] | None = None) -> None:
    """Queue the report: `work(folder, progress)` returns what the finished state adds. `then`
    runs once the report reads done, on the same worker, for what can be made ahead of a
    download (a failure there is logged; the report stays done)."""

    def run() -> None:
        meta = read_meta(folder)
        try:
            meta["status"] = "running"
            write_meta(folder, meta)

            def progress(changes: dict[str, Any]) -> None:
                meta.update(changes)
                write_meta(folder, meta)

            meta.update(work(folder, progress), status="done")
        except ApiError as exc:
            meta.update(status="failed", error={"code": exc.code, "message": exc.message})
        except Exception:
            log.exception("quality report %s failed", folder.name)
            meta.update(
                status="failed",
                error={"code": "ReportFailed", "message": "the report failed; see the server log"},
            )
        finally:
            try:
                write_meta(folder, meta)
                if then is not None and meta["status"] == "done":
                    try:
                        then(folder)
                    except Exception:
                        log.exception("quality report %s: follow-up failed", folder.name)
            finally:
                os.close(fd)
                _waiting.release()

    with _worker_guard:
        if not _worker:
            # A daemon thread: a server stopping does not wait for a report of minutes (its
            # lock goes with the process, and the report reads as interrupted).
            _worker.append(threading.Thread(target=_serve, name="quality-report", daemon=True))
            _worker[0].start()
    _queue.put(run)


def _serve() -> None:
    while True:
        _queue.get()()


def folder_of(report_id: str, department: str | None) -> Path:
    """The report's folder, if it is the department's and has not expired; else a 404, as if
    there were none (another department's report is none of its business)."""
    folder = root() / report_id
    if _ID.fullmatch(report_id):
        try:
            meta = read_meta(folder)
        except FileNotFoundError:
            meta = None
        if meta and meta["department"] == department and meta["expires"] > time.time():
            return folder
    raise not_found(f"there is no quality report {report_id}", {"id": report_id})


def state(folder: Path) -> dict[str, Any]:
    """The report's state; a report still queued or running whose worker is gone is failed."""
    meta = read_meta(folder)
    if meta["status"] in ("queued", "running") and spool.is_abandoned(folder):
        meta = read_meta(folder)  # it may have finished in between
        if meta["status"] in ("queued", "running"):
            meta.update(
                status="failed",
                error={
                    "code": "Interrupted",
                    "message": "the server stopped before the report was done; upload it again",
                },
            )
            write_meta(folder, meta)
    return meta

"""Where uploads wait on disk while they are read: ``$GEO_DATA_DIR/spool``, one folder a process.

Uploads used to be copied into ``tempfile.mkdtemp()`` folders in /tmp and removed in a
``finally``; a worker killed with SIGKILL mid-upload never ran it and left its copy (41 MB each
time in the report that found it) behind for good, and /tmp is often a small tmpfs in memory.

Now every process spools into its own folder under the data directory and holds an exclusive
``flock`` on the folder's ``lock`` file for as long as it lives; the kernel drops the lock when
the process dies, however it dies. At start every worker sweeps the spool root (:func:`sweep`):
a folder whose lock it can take belongs to a dead process and is removed, while a live
sibling's lock cannot be taken (with several uvicorn workers, one worker's start must not delete
another's upload in progress). Creating a folder and sweeping both hold the root's own lock, so
a sweep never sees a folder whose owner has not locked it yet.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from geo.settings import get_settings

LOCK_NAME = "lock"
_ROOT_LOCK = ".lock"


@dataclass(frozen=True)
class _Owned:
    pid: int
    folder: Path
    fd: int


_owned: _Owned | None = None
_guard = threading.Lock()


def root() -> Path:
    return get_settings().data_dir.resolve() / "spool"


@contextmanager
def _root_locked(base: Path) -> Iterator[None]:
    """Serialise folder creation and sweeps across every process sharing the data directory."""
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / _ROOT_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def process_folder() -> Path:
    """This process's spool folder, made and locked on first use.

    A forked child inherits its parent's open lock (flock locks belong to the open file, which
    fork shares), so it must not use the parent's folder: the pid tells them apart."""
    global _owned
    with _guard:
        base = root()
        if _owned is not None and _owned.pid == os.getpid():
            if _owned.folder.parent == base and _owned.folder.is_dir():
                return _owned.folder
            os.close(_owned.fd)  # moved data directory, or the folder was removed by hand
        with _root_locked(base):
            folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))
            fd = os.open(folder / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _owned = _Owned(os.getpid(), folder, fd)
        return folder


def new_folder(prefix: str) -> Path:
    """A new, empty folder for one upload in this process's spool folder; the caller removes it
    when done (what a killed process leaves is swept at the next start)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=process_folder()))


@contextmanager
def upload_folder(prefix: str = "upload-") -> Iterator[Path]:
    """:func:`new_folder`, removed when the block ends."""
    folder = new_folder(prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def temporary_file() -> IO[bytes]:
    """An anonymous file in the spool (unlinked at once: nothing is left however the process
    ends), for uploads that are streamed back after the request body has been read."""
    return tempfile.TemporaryFile(dir=process_folder())


def is_abandoned(folder: Path) -> bool:
    """True when no live process holds the folder's lock (or it has none: a folder is locked
    before the root lock is released, so an unlocked one was left half made or half swept).
    A process that dies, however it dies, lets go of its lock, so this never mistakes a
    killed worker's folder for a live one (the address quality report's jobs rely on it too)."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing releases a lock taken here
    return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def sweep() -> list[Path]:
    """Remove the spool folders of processes that are gone; the folders removed."""
    base = root()
    removed: list[Path] = []
    with _root_locked(base):
        for entry in sorted(base.iterdir()):
            if entry.name == _ROOT_LOCK:
                continue
            if not entry.is_dir() or entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
            elif is_abandoned(entry):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed

"""The tile cache: an in-process LRU with a byte budget, and an optional shared disk cache.

Keys carry the layer's data version (geo.versions), read from the database on every request:
after an upload, an edit or a delete, every worker asks for a new key and the old tiles are
simply never asked for again (the LRU ages them out; the disk cache drops a layer's old versions
when the first tile of a new one is written). Nothing has to be told to forget anything, which is
what keeps several workers and machines correct without a message bus.

One entry is one layer's tile; a composite tile is assembled from its layers' entries, so the
tile of `a` cached for `/tiles/a/...` also serves `/tiles/a,b/...`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cachetools import LRUCache

# Bookkeeping per entry (key, dict slot), so a cache full of empty tiles still has a bound.
ENTRY_OVERHEAD = 200
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")  # fullmatch: "$" also matches before "\n"


def _entry_size(data: bytes) -> int:
    return len(data) + ENTRY_OVERHEAD


@dataclass(frozen=True)
class TileKey:
    layer: str
    version: int
    recipe: str
    z: int
    x: int
    y: int


class MemoryCache:
    """Least recently used entries go first once the byte budget is reached.

    cachetools' LRUCache sized by bytes (`getsizeof`); it is not thread-safe, and even a `get`
    reorders it, so every access holds the lock (tiles are cached from the event loop and from
    the thread pool alike)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self._entries: LRUCache[TileKey, bytes] = LRUCache(budget_bytes, getsizeof=_entry_size)
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Bytes held, entries' bookkeeping included."""
        return int(self._entries.currsize)

    def get(self, key: TileKey) -> bytes | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: TileKey, data: bytes) -> None:
        if _entry_size(data) > self.budget:
            return  # LRUCache would raise: a tile larger than the whole budget is not kept
        with self._lock:
            self._entries[key] = data

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class DiskCache:
    """Files at ROOT/<layer>/<version>-<recipe>/<z>/<x>/<y>.mvt, shared by every worker.

    Writes go to a temporary file in the same directory and are renamed into place, so a reader
    sees a whole tile or none, even with several processes writing the same tile at once.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def _layer_dir_name(layer: str) -> str:
        # Layer ids are the catalogue's, but a path must never be steered by a name: anything
        # unusual is hex-encoded.
        return layer if _SAFE_NAME.fullmatch(layer) else "x" + layer.encode().hex()

    def _version_dir(self, key: TileKey) -> Path:
        return self.root / self._layer_dir_name(key.layer) / f"{key.version}-{key.recipe}"

    def path(self, key: TileKey) -> Path:
        return self._version_dir(key) / str(key.z) / str(key.x) / f"{key.y}.mvt"

    def get(self, key: TileKey) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def put(self, key: TileKey, data: bytes) -> None:
        target = self.path(key)
        version_dir = self._version_dir(key)
        if not version_dir.exists():
            self._drop_other_versions(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _drop_other_versions(self, key: TileKey) -> None:
        """The first tile of a new version removes the layer's tiles of older versions.

        Only older ones: a worker that read the version just before an edit may still write a
        tile of it, and must not delete the newer version's tiles.
        """
        layer_dir = self.root / self._layer_dir_name(key.layer)
        if not layer_dir.is_dir():
            return
        for child in layer_dir.iterdir():
            version, _, _ = child.name.partition("-")
            if version.isdigit() and int(version) < key.version:
                shutil.rmtree(child, ignore_errors=True)


class TileCache:
    """Memory first, then disk (promoting what it finds), writing through to both."""

    def __init__(self, memory: MemoryCache, disk: DiskCache | None = None) -> None:
        self.memory = memory
        self.disk = disk

    def get(self, key: TileKey) -> bytes | None:
        data = self.memory.get(key)
        if data is None and self.disk is not None:
            data = self.disk.get(key)
            if data is not None:
                self.memory.put(key, data)
        return data

    def put(self, key: TileKey, data: bytes) -> None:
        self.memory.put(key, data)
        if self.disk is not None:
            self.disk.put(key, data)

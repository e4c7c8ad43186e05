"""The tile cache: byte budget and LRU order, atomic shared disk files, old versions dropped."""

from __future__ import annotations

from pathlib import Path

from tiles.cache import ENTRY_OVERHEAD, DiskCache, MemoryCache, TileCache, TileKey


def key(layer: str = "police", version: int = 1, z: int = 10, x: int = 1, y: int = 2) -> TileKey:
    return TileKey(layer, version, "r1", z, x, y)


def test_memory_cache_evicts_least_recently_used_within_budget() -> None:
    cache = MemoryCache(budget_bytes=3 * (100 + ENTRY_OVERHEAD))
    for i in range(3):
        cache.put(key(x=i), bytes(100))
    assert cache.get(key(x=0)) is not None  # 0 is now the most recent
    cache.put(key(x=3), bytes(100))
    assert cache.get(key(x=1)) is None
    assert all(cache.get(key(x=i)) is not None for i in (0, 2, 3))
    assert cache.used <= cache.budget


def test_memory_cache_skips_entries_larger_than_budget_and_counts_empty_tiles() -> None:
    cache = MemoryCache(budget_bytes=1000)
    cache.put(key(), bytes(5000))
    assert cache.get(key()) is None
    cache.put(key(x=9), b"")
    assert cache.get(key(x=9)) == b""
    assert cache.used == ENTRY_OVERHEAD


def test_disk_cache_round_trip_and_no_temporary_files(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path)
    disk.put(key(), b"tile-bytes")
    assert disk.get(key()) == b"tile-bytes"
    assert disk.get(key(y=3)) is None
    assert not list(tmp_path.rglob(".tmp-*"))
    assert disk.path(key()) == tmp_path / "police" / "1-r1" / "10" / "1" / "2.mvt"


def test_disk_cache_drops_older_versions_only(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path)
    disk.put(key(version=1), b"v1")
    disk.put(key(layer="other", version=1), b"other")
    disk.put(key(version=3), b"v3")
    assert disk.get(key(version=1)) is None
    assert disk.get(key(layer="other", version=1)) == b"other"
    # A late writer of version 2 must not remove version 3.
    disk.put(key(version=2, x=5), b"v2")
    assert disk.get(key(version=3)) == b"v3"


def test_disk_cache_never_lets_a_layer_name_steer_the_path(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path / "cache")
    disk.put(key(layer="../../escape"), b"x")
    assert disk.path(key(layer="../../escape")).is_relative_to(tmp_path / "cache")
    assert not (tmp_path / "escape").exists()


def test_tile_cache_promotes_disk_hits_to_memory(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path)
    disk.put(key(), b"from another worker")
    cache = TileCache(MemoryCache(1 << 20), disk)
    assert cache.get(key()) == b"from another worker"
    assert cache.memory.get(key()) == b"from another worker"
    cache.put(key(x=7), b"new")
    assert disk.get(key(x=7)) == b"new"

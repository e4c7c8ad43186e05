"""Point-in-time recovery with pgBackRest (`geo backup`, `geo restore`), run as a user would, on a
durable cluster of its own (the suite's runs with fsync off, which backups must not rely on)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from geo.db import libpq_url
from geo.embedded import EmbeddedCluster


def geo(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment.update(GEO_DATA_DIR=str(root), **env)
    return subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Path, EmbeddedCluster]]:
    root = Path(tempfile.mkdtemp(prefix="geo-pitr-"))
    root.chmod(0o755)
    cluster = EmbeddedCluster(root / "pg")
    cluster.start()
    yield root, cluster
    cluster.destroy()
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _rows(url: str) -> list[int]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT x FROM probe ORDER BY x").fetchall()]


def test_restore_to_a_second_has_what_came_before_and_nothing_after(
    site: tuple[Path, EmbeddedCluster],
) -> None:
    root, cluster = site
    first = geo(root, "backup", "--type", "full")
    assert first.returncode == 0, first.stderr
    assert (root / "backups" / "local").is_dir() and (root / "backups" / "offsite").is_dir()
    with psycopg.connect(libpq_url(cluster.url()), autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (x int PRIMARY KEY)")
        conn.execute("INSERT INTO probe VALUES (1)")
        time.sleep(1.1)
        chosen = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.1)
        conn.execute("INSERT INTO probe VALUES (2)")
    incremental = geo(root, "backup", "--type", "incr")
    assert incremental.returncode == 0, incremental.stderr
    with psycopg.connect(libpq_url(cluster.url()), autocommit=True) as conn:
        conn.execute("INSERT INTO probe VALUES (3)")  # only in the archived WAL
        conn.execute("SELECT pg_switch_wal()")

    at_second = geo(root, "restore", str(root / "at-second"), "--to", chosen.isoformat())
    assert at_second.returncode == 0, at_second.stderr
    restored = EmbeddedCluster(root / "at-second")
    try:
        assert _rows(at_second.stdout.strip()) == [1]
    finally:
        restored.destroy()
    latest = geo(root, "restore", str(root / "latest"), "--latest")
    assert latest.returncode == 0, latest.stderr
    try:
        assert _rows(latest.stdout.strip()) == [1, 2, 3]
    finally:
        EmbeddedCluster(root / "latest").destroy()
    assert _rows(cluster.url()) == [1, 2, 3]  # the running cluster was not touched


def test_restore_before_the_first_backup_is_refused(site: tuple[Path, EmbeddedCluster]) -> None:
    root, _ = site
    result = geo(root, "restore", str(root / "too-early"), "--to", "2020-01-01T00:00:00+08:00")
    assert result.returncode == 1
    assert "before the first backup" in result.stderr
    assert not (root / "too-early").exists() or not any((root / "too-early").iterdir())


def test_restore_into_a_non_empty_directory_is_refused(site: tuple[Path, EmbeddedCluster]) -> None:
    root, _ = site
    target = root / "occupied"
    target.mkdir()
    (target / "keep.txt").write_text("不要覆盖")
    result = geo(root, "restore", str(target), "--latest")
    assert result.returncode == 1
    assert "not empty" in result.stderr
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "不要覆盖"


def test_restore_needs_a_time_or_latest(site: tuple[Path, EmbeddedCluster]) -> None:
    root, _ = site
    result = geo(root, "restore", str(root / "neither"))
    assert result.returncode == 1 and "--latest" in result.stderr


def test_backup_with_its_repository_missing_is_refused(site: tuple[Path, EmbeddedCluster]) -> None:
    root, _ = site
    offsite = root / "backups" / "offsite"
    moved = root / "backups" / "offsite-unmounted"
    offsite.rename(moved)
    try:
        result = geo(root, "backup", "--type", "diff")
        assert result.returncode == 1
        assert "missing" in result.stderr and str(offsite) in result.stderr
        assert not offsite.exists()  # not silently made anew
    finally:
        moved.rename(offsite)


def test_backup_into_a_full_repository_fails_cleanly() -> None:
    root = Path(tempfile.mkdtemp(prefix="geo-pitr-full-"))
    root.chmod(0o755)
    full = root / "offsite"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(full)], check=True)
    cluster = EmbeddedCluster(root / "pg")
    cluster.start()
    try:
        result = geo(root, "backup", GEO_BACKUP_OFFSITE_DIR=str(full))
        assert result.returncode == 1
        assert "full" in result.stderr and "Traceback" not in result.stderr
    finally:
        cluster.destroy()
        subprocess.run(["umount", str(full)], check=False)
        subprocess.run(["rm", "-rf", str(root)], check=False)

"""Scale-out on one machine: a streaming replica of the embedded cluster serves the reads."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from geo.db import read_engine, reset_engines
from geo.embedded import EmbeddedCluster


@pytest.fixture
def replica(database_url: str) -> Iterator[EmbeddedCluster]:
    primary = EmbeddedCluster(Path(os.environ["GEO_DATA_DIR"]) / "pg")
    root = Path(tempfile.mkdtemp(prefix="geo-replica-"))
    root.chmod(0o755)
    cluster = EmbeddedCluster(root / "pg", durable=False)
    cluster.init_replica(primary)
    cluster.start()
    yield cluster
    cluster.destroy()


def test_replica_streams_and_serves_reads(database_url: str, replica: EmbeddedCluster) -> None:
    replica_url = replica.url()
    assert replica_url != database_url
    primary = create_engine(database_url)
    with primary.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS replication_probe (x int)"))
        conn.execute(text("INSERT INTO replication_probe VALUES (7)"))
    primary.dispose()

    os.environ["GEO_READ_URLS"] = replica_url
    reset_engines()
    try:
        engine = read_engine()
        deadline = time.monotonic() + 30
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
            while time.monotonic() < deadline:
                found = conn.execute(text("SELECT to_regclass('replication_probe')")).scalar()
                if found and conn.execute(text("SELECT count(*) FROM replication_probe")).scalar():
                    break
                conn.rollback()
                time.sleep(0.2)
            else:
                pytest.fail("the replica did not receive the primary's write within 30 s")
    finally:
        del os.environ["GEO_READ_URLS"]
        reset_engines()

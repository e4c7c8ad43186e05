"""The embedded cluster: created, started, reused and stopped by the same code `make run` uses."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
import pytest

from geo.embedded import EmbeddedCluster, free_port


@pytest.fixture
def cluster_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="geo-emb-"))
    root.chmod(0o755)
    return root / "pg"


def test_lifecycle_and_reuse(cluster_root: Path) -> None:
    port = free_port()
    cluster = EmbeddedCluster(cluster_root, port=port, durable=False)
    try:
        url = cluster.start()
        assert f"127.0.0.1:{port}/geo" in url
        assert cluster.running()
        plain = url.replace("+psycopg", "")
        with psycopg.connect(plain) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        cluster.stop()
        assert not cluster.running()
        # A second start reuses the cluster, its password and its data.
        assert cluster.start() == url
        with psycopg.connect(plain) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    finally:
        cluster.destroy()
    assert not cluster_root.exists()


def test_password_is_required(cluster_root: Path) -> None:
    cluster = EmbeddedCluster(cluster_root, durable=False)
    try:
        cluster.start()
        port = cluster.config().port
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"host=127.0.0.1 port={port} user=geo password=wrong dbname=geo")
    finally:
        cluster.destroy()

"""The multi-node layout on one machine (issue 14 part 5): nginx in front of two `geo serve`
processes, the pg_auto_failover pair and its monitor, and a read replica (a third node that is
never promoted), all on 127.0.0.1.

A bounded mixed load (tiles, items, geocoding, single-feature writes, a few uploads) runs through
nginx (the shipped deploy/nginx/geo.conf) while (a) one API process is SIGKILLed, then (b) the
primary's keeper and PostgreSQL are (the scenario: tests/multinode.py).
The figures (requests failed per killed API process, seconds until writes succeed again, reads
served while there was no primary) are printed and written to multinode.json in the test's tmp
folder; the assertions: no failed idempotent request when an API process dies, every failed write
explained (a 502 for a write in flight on the killed process, never sent twice; a 503 with
Retry-After while there is no primary), writes succeed again by themselves, and every write that
got a 2xx is on the new primary afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from geo.db import ensure_extensions, reset_engines
from geo.ha.cluster import HaFormation
from geo.migrations import upgrade
from tests import multinode


@pytest.fixture(scope="module")
def formation(database_url: str) -> Iterator[HaFormation]:
    """The pair, its monitor and a read replica, migrated; destroyed at the end."""
    root = Path(tempfile.mkdtemp(prefix="geo-multinode-"))
    root.chmod(0o755)
    ha = HaFormation(root / "ha")
    saved = os.environ["DATABASE_URL"]
    try:
        ha.create(read_replica=True)
        os.environ["DATABASE_URL"] = ha.url()
        reset_engines()
        ensure_extensions()
        upgrade(ha.url())
        os.environ["DATABASE_URL"] = saved
        reset_engines()
        yield ha
    finally:
        os.environ["DATABASE_URL"] = saved
        reset_engines()
        ha.destroy()


def test_nginx_two_api_processes_pair_and_replica_under_load(
    formation: HaFormation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = multinode.run(formation)
    figures = json.dumps(run.figures, indent=2, ensure_ascii=False)
    (tmp_path / "multinode.json").write_text(figures)
    with capsys.disabled():
        print(f"\nmulti-node layout ({tmp_path / 'multinode.json'}):\n{figures}")

    statuses = Counter(o.status for o in run.outcomes)
    assert 500 not in statuses, statuses
    assert all(o.ok for o in run.window("baseline")), multinode.tally(run.window("baseline"))
    # (a) the killed API process: nginx sends reads, and writes it could not deliver, to the
    # other one; only a write in flight on the killed process may fail, as nginx's 502 (it may
    # have been committed: nginx does not send it twice, the client checks)
    failed = [o for o in run.window("api") if not o.ok]
    assert not [o for o in failed if not o.write], run.figures
    assert all(o.status == 502 for o in failed), run.figures
    assert len(failed) <= 4, run.figures  # at most one in flight per client thread
    assert run.survivor_alive
    # (b) writes again by themselves, no restart; meanwhile 503s saying when to come back,
    # never a 500 and never a hang
    assert run.recovered is not None, f"no write within {multinode.OUTAGE_MAX_S} s: {figures}"
    assert run.new_primary not in (None, run.old_primary)
    outage = run.window("outage")
    for o in outage:
        assert o.ok or (o.status == 503 and int(o.retry_after or 0) > 0), o
    # Reads while there is no primary are measured, not asserted: tiles are read from the
    # replica (or the standby, the read URL's fallback, while pg_auto_failover restarts the
    # replica), but the catalogue's access check behind a tile runs on the primary whenever the
    # process has not remembered its answer for the version the replica shows (tiles/access.py):
    # from nearly all tiles served to nearly none between runs. Items and geocoding take a
    # transaction on the primary and answer 503.
    assert all(o.ok for o in run.window("after")), multinode.tally(run.window("after"))
    # (c) nothing acknowledged is lost
    assert run.figures["writes_acknowledged"] > 0 and not run.lost, run.lost[:20]


def test_geo_db_ha_read_replica_refuses_its_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "geo.cli", "db", "ha", "--read-replica",
             "--replica-port", str(port)],
            capture_output=True,
            text=True,
            env={**os.environ, "GEO_DATA_DIR": str(tmp_path)},
            timeout=120,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"port(s) {port} already in use" in result.stderr
    assert "--replica-port" in result.stderr
    assert not (tmp_path / "ha").exists()  # nothing made

"""Reads of non-public layers through tiles are one audit entry per layer, caller and minute,
with a count, however many tiles were read; exact across concurrent writers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import text

from geo import audit
from geo.audit.chain import seal_pending
from geo.auth import Principal
from geo.db import session_scope
from tests.audit_helpers import tampering
from tests.layers_helpers import make_points_layer
from tests.tiles_fixtures import tile_at

TILES = 30


def _clear_of_a_minute_end() -> None:
    """Start where the next few seconds stay in one minute (the test asserts one entry)."""
    now = datetime.now(UTC)
    if now.second >= 50:
        time.sleep(61 - now.second - now.microsecond / 1e6)


def _reads(layer: str) -> list[dict]:
    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT key_prefix, details, read_slot, at FROM audit_log "
                "WHERE action = 'layer.read' AND target = :t ORDER BY id"
            ),
            {"t": layer},
        ).mappings()
        return [dict(r) for r in rows]


def test_many_tiles_in_a_minute_are_one_entry_with_a_count(
    client: TestClient, make_department: Callable
) -> None:
    dept = make_department()
    layer = make_points_layer(client, dept.editor, n=5, access="private")
    centre = tile_at(117.2, 39.1, 14)
    for i in range(TILES):
        r = client.get(f"/tiles/{layer}/14/{centre.x + i}/{centre.y}.mvt", headers=dept.editor)
        assert r.status_code in (200, 204), r.text
    for _ in range(3):
        client.get(f"/tiles/{layer}/14/{centre.x}/{centre.y}.mvt", headers=dept.viewer)
    reads = _reads(layer)
    by_key: dict[str, list[dict]] = {}
    for row in reads:
        by_key.setdefault(row["key_prefix"], []).append(row)
    assert len(by_key) == 2  # the editor's key and the viewer's: two callers
    for rows, expected in zip(by_key.values(), (TILES, 3), strict=True):
        # One entry a minute (two when the reads straddled a minute's end), all reads counted.
        assert 1 <= len(rows) <= 2, rows
        assert sum(r["details"]["count"] for r in rows) == expected
        # `via` is the minute's first tile; every tile of the minute landed in its entry.
        assert all(r["details"]["via"].startswith("tile 14/") and r["read_slot"] for r in rows)
        assert all(r["at"].second == 0 and r["at"].microsecond == 0 for r in rows)


def test_other_reads_are_one_entry_each(client: TestClient, make_department: Callable) -> None:
    dept = make_department()
    layer = make_points_layer(client, dept.editor, n=2, access="private")
    for _ in range(3):
        assert client.get(f"/collections/{layer}/items", headers=dept.editor).status_code == 200
    reads = _reads(layer)
    assert [r["details"] for r in reads] == [{"via": "items"}] * 3
    assert all(r["read_slot"] is None for r in reads)


def test_counts_are_exact_under_concurrent_readers(database_url: str) -> None:
    """Each thread has its own connection, as each worker process has: the count is the
    database's, not a process's memory."""
    layer = "t_concurrent_reads"
    who = Principal("police", "viewer", "tjg_read", "10.0.0.9")
    threads, each = 8, 25

    def reader() -> None:
        for _ in range(each):
            with session_scope() as session:
                audit.record_read(session, who, layer, "tile", grant=17)

    started = datetime.now(UTC)
    workers = [threading.Thread(target=reader) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    reads = _reads(layer)
    assert sum(r["details"]["count"] for r in reads) == threads * each
    assert len(reads) == 1 or (len(reads) == 2 and datetime.now(UTC).minute != started.minute)
    assert all(r["details"]["grant"] == 17 for r in reads)


def test_a_minute_is_sealed_once_over_and_never_changes_after(database_url: str) -> None:
    who = Principal("police", "viewer", "tjg_seal")
    layer = "t_sealed_minute"
    _clear_of_a_minute_end()
    with tampering() as session:
        # The chain's head locked by the snapshot's first statement: a server's periodic sealer
        # moving it after the snapshot made this transaction's own seal a serialization failure
        # (a CI run); it now waits for the rollback instead.
        session.execute(text("SELECT 1 FROM audit_chain WHERE id = 1 FOR UPDATE"))
        audit.record_read(session, who, layer, "tile")
        # Still this minute: its count may grow, so the sealer leaves it.
        seal_pending(session)
        row = session.execute(
            text(
                "SELECT id, seq, at, clock_timestamp() - at AS age FROM audit_log WHERE target = :t"
            ),
            {"t": layer},
        ).one()
        assert row.age.total_seconds() < 60 and row.seq is None
        # The same entry as if its minute had ended two minutes ago (its slot, this minute's,
        # unchanged): sealed now.
        session.execute(
            text("UPDATE audit_log SET at = at - interval '2 minutes' WHERE id = :id"),
            {"id": row.id},
        )
        seal_pending(session)
        sealed = session.execute(
            text("SELECT seq, hash, details FROM audit_log WHERE id = :id"), {"id": row.id}
        ).one()
        assert sealed.seq is not None and sealed.hash
        # A later read landing on that sealed slot does not change the sealed entry.
        audit.record_read(session, who, layer, "tile")
        after = (
            session.execute(text("SELECT details FROM audit_log WHERE target = :t"), {"t": layer})
            .scalars()
            .all()
        )
        assert after == [sealed.details] == [{"via": "tile", "count": 1}]

"""The audit trail's hash chain: committed entries are sealed once each, in a chain that
`geo audit verify` (and GET /audit/verify) recompute; changing, deleting or reordering a sealed
entry, or deleting the newest ones, is found and the first broken entry named."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from bench.write_load import run_write_load
from geo import audit
from geo.audit.chain import GENESIS, entry_hash, seal, seal_pending, verify
from geo.auth import Principal
from geo.db import session_scope
from tests.audit_helpers import sealed_ids, tampering, with_admin, write_entries
from tests.layers_helpers import make_points_layer
from tests.live_server import live_server


def geo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


def test_untouched_chain_verifies(database_url: str) -> None:
    action = write_entries(5)
    seal()
    with session_scope() as session:
        report = verify(session)
        entries = sealed_ids(session, action)
        head = session.execute(text("SELECT seq, hash FROM audit_chain")).one()
    assert report.ok and report.broken is None, report
    assert len(entries) == 5
    assert report.sealed == report.head_seq == head[0] >= 5
    assert report.head_hash == head[1] != GENESIS


def test_entries_are_sealed_once_in_id_order_with_contiguous_places(database_url: str) -> None:
    action = write_entries(4)
    seal()
    with session_scope() as session:
        entries = sealed_ids(session, action)
        ids = [i for i, _ in entries]
        assert ids == sorted(ids)
        # Nothing else was written meanwhile: the four took four consecutive places.
        seqs = [s for _, s in entries]
        assert seqs == list(range(seqs[0], seqs[0] + 4))
    assert seal() == 0  # sealing again finds nothing left


@pytest.mark.parametrize(
    "change",
    [
        "target = 'someone else'",
        "details = '{\"i\": 99}'",
        "at = at - interval '1 hour'",
        "key_prefix = 'tjg_fake'",
        "department_code = NULL",
        "hash = repeat('a', 64)",
        "action = 'test.innocent'",
        "account = 'mallory'",
    ],
)
def test_an_altered_entry_is_found(database_url: str, change: str) -> None:
    action = write_entries(3)
    seal()
    with tampering() as session:
        _, (middle, seq), _ = sealed_ids(session, action)
        session.execute(text(f"UPDATE audit_log SET {change} WHERE id = :id"), {"id": middle})
        report = verify(session)
    assert not report.ok
    assert report.broken is not None
    assert (report.broken.problem, report.broken.id, report.broken.seq) == ("altered", middle, seq)
    assert report.sealed == seq - 1
    with session_scope() as session:
        assert verify(session).ok  # the tampering was rolled back


def test_a_deleted_entry_is_found(database_url: str) -> None:
    action = write_entries(3)
    seal()
    with tampering() as session:
        _, (middle, seq), (last, _) = sealed_ids(session, action)
        session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": middle})
        report = verify(session)
    assert report.broken is not None
    assert (report.broken.problem, report.broken.seq) == ("missing", seq)
    assert f"id {last}" in report.broken.message


def test_an_entry_taken_out_of_the_chain_is_found(database_url: str) -> None:
    action = write_entries(3)
    seal()
    with tampering() as session:
        _, (middle, seq), _ = sealed_ids(session, action)
        session.execute(text("UPDATE audit_log SET seq = NULL WHERE id = :id"), {"id": middle})
        report = verify(session)
    assert report.broken is not None
    assert (report.broken.problem, report.broken.seq) == ("missing", seq)


def test_reordered_entries_are_found(database_url: str) -> None:
    action = write_entries(3)
    seal()
    with tampering() as session:
        (a, sa), (b, sb), _ = sealed_ids(session, action)
        swap = "UPDATE audit_log SET seq = :seq, hash = :hash WHERE id = :id"
        rows = {
            r[0]: r[1]
            for r in session.execute(
                text("SELECT id, hash FROM audit_log WHERE id IN (:a, :b)"), {"a": a, "b": b}
            )
        }
        session.execute(text("UPDATE audit_log SET seq = -1 WHERE id = :id"), {"id": a})
        session.execute(text(swap), {"seq": sa, "hash": rows[b], "id": b})
        session.execute(text(swap), {"seq": sb, "hash": rows[a], "id": a})
        report = verify(session)
    assert report.broken is not None
    assert (report.broken.problem, report.broken.seq, report.broken.id) == ("altered", sa, b)


def test_deleting_the_newest_entries_is_found(database_url: str) -> None:
    write_entries(2)
    seal()
    with tampering() as session:
        newest = session.execute(text("SELECT max(seq) FROM audit_log")).scalar()
        session.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": newest})
        report = verify(session)
    assert report.broken is not None
    assert (report.broken.problem, report.broken.seq) == ("head", newest)


def test_a_rewritten_chain_is_caught_by_an_earlier_anchor(database_url: str) -> None:
    """Plain SHA-256 can be recomputed by whoever rewrites rows: the chain then holds, but the
    head an inspector noted earlier is no longer in it."""
    action = write_entries(3)
    seal()
    with session_scope() as session:
        anchor = (verify(session).head_seq, verify(session).head_hash)
    with tampering() as session:
        (first, seq), _, _ = sealed_ids(session, action)
        session.execute(
            text("UPDATE audit_log SET target = 'rewritten' WHERE id = :id"), {"id": first}
        )
        previous = (
            session.execute(
                text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": seq - 1}
            ).scalar()
            or GENESIS
        )
        rows = (
            session.execute(
                text("SELECT * FROM audit_log WHERE seq >= :s ORDER BY seq"), {"s": seq}
            )
            .mappings()
            .all()
        )
        for row in rows:
            previous = entry_hash(previous, row["seq"], row)
            session.execute(
                text("UPDATE audit_log SET hash = :h WHERE id = :id"),
                {"h": previous, "id": row["id"]},
            )
        session.execute(text("UPDATE audit_chain SET hash = :h"), {"h": previous})
        report = verify(session, anchor)
    assert report.broken is None  # the rewrite is self-consistent...
    assert report.anchor_ok is False and not report.ok  # ...but the noted head is gone
    with session_scope() as session:
        assert verify(session, anchor).anchor_ok is True


def test_concurrent_writers_and_sealers_leave_a_chain_that_verifies(database_url: str) -> None:
    """Sixteen writers (some rolling back), a transaction holding a low id open while others
    commit and are sealed, and two sealers racing the server's own: every committed entry is
    sealed exactly once, in a chain that verifies."""
    action = "test.concurrent"
    who = Principal("platform", "editor", "tjg_conc")
    per_writer, writers = 40, 16
    stop = threading.Event()
    committed: list[int] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(per_writer):
                try:
                    with session_scope() as session:
                        audit.record(session, who, action, f"{n}/{i}")
                        session.flush()
                        if i % 10 == 9:
                            raise RuntimeError("rolled back")
                    committed.append(1)
                except RuntimeError:
                    pass
        except BaseException as exc:
            errors.append(exc)

    def sealer() -> None:
        while not stop.is_set():
            seal(wait=False)

    slow_open, slow_go = threading.Event(), threading.Event()

    def slow() -> None:
        with session_scope() as session:
            audit.record(session, who, action, "slow")
            session.flush()  # takes its id now, before the writers' ids
            slow_open.set()
            slow_go.wait(60)
        committed.append(1)

    slow_thread = threading.Thread(target=slow)
    slow_thread.start()
    slow_open.wait(30)
    sealers = [threading.Thread(target=sealer) for _ in range(2)]
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for t in (*sealers, *threads):
        t.start()
    for t in threads:
        t.join()
    seal()
    slow_go.set()
    slow_thread.join()
    stop.set()
    for t in sealers:
        t.join()
    seal()
    assert not errors, errors
    with session_scope() as session:
        report = verify(session)
        rows = session.execute(
            text("SELECT id, seq, target FROM audit_log WHERE action = :a ORDER BY id"),
            {"a": action},
        ).all()
    assert report.ok, report
    assert len(rows) == len(committed) == writers * (per_writer - per_writer // 10) + 1
    assert all(seq is not None for _, seq, _ in rows)
    # The slow entry has the lowest id but committed last: it took the last place.
    slow_row = next(r for r in rows if r[2] == "slow")
    assert slow_row[0] == rows[0][0] and slow_row[1] == max(r[1] for r in rows)


def test_one_sealer_at_a_time(database_url: str) -> None:
    write_entries(2)
    with session_scope() as first:
        assert seal_pending(first) is not None
        with session_scope() as second:
            assert seal_pending(second, wait=False) is None  # the head is taken: skip the turn


def test_cli_verify_exits_non_zero_naming_the_first_broken_entry(database_url: str) -> None:
    action = write_entries(3)
    ok = geo("audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "审计链完整" in ok.stdout and "待封存" in ok.stdout
    with session_scope() as session:
        _, (middle, seq), _ = sealed_ids(session, action)
        original = session.execute(
            text("SELECT target FROM audit_log WHERE id = :id"), {"id": middle}
        ).scalar()
        session.execute(text("UPDATE audit_log SET target = 'x' WHERE id = :id"), {"id": middle})
    try:
        broken = geo("audit", "verify")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"第 {seq} 条（编号 {middle}）：内容被改动" in broken.stdout
        assert f"entry #{seq} (id {middle}) was altered" in broken.stdout
    finally:
        with session_scope() as session:
            session.execute(
                text("UPDATE audit_log SET target = :t WHERE id = :id"),
                {"t": original, "id": middle},
            )
    head = ok.stdout.split("head #")[1].split()[:2]
    anchored = geo("audit", "verify", "--anchor", f"{head[0]}:{head[1]}")
    assert anchored.returncode == 0, anchored.stdout + anchored.stderr
    assert "与上次记下的链头一致" in anchored.stdout
    bad = geo("audit", "verify", "--anchor", "12:nothex")
    assert bad.returncode == 2 and "SEQ:HASH" in bad.stderr


def test_cli_seal_and_list(database_url: str) -> None:
    action = write_entries(2)
    sealed = geo("audit", "seal")
    assert sealed.returncode == 0 and "已封存" in sealed.stderr
    listed = geo("audit", "list", "--action", action, "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    assert [line.count('"target-') for line in listed.stdout.splitlines()] == [1, 1]


def test_verify_over_http_is_for_the_platform_admin(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable
) -> None:
    seal()
    r = client.get("/audit/verify", headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["broken"] is None and body["anchorOk"] is None
    head = body["head"]
    anchored = client.get(
        "/audit/verify", params={"anchor": f"{head['seq']}:{head['hash']}"}, headers=admin_headers
    )
    assert anchored.json()["anchorOk"] is True
    bad = client.get("/audit/verify", params={"anchor": "1:xyz"}, headers=admin_headers)
    assert bad.status_code == 400 and "anchor" in bad.json()["message"]
    police = with_admin(client, admin_headers, make_department)
    refused = client.get("/audit/verify", headers=police.admin)
    assert refused.status_code == 403 and refused.json()["details"]["rule"] == "platform-admin"
    assert client.get("/audit/verify").status_code == 401


def test_the_chain_verifies_after_sixteen_writers_on_a_live_server(
    client: TestClient, make_department: Callable
) -> None:
    """The concurrent-writer workload (bench/write_load.py) against a real server with two
    workers, each with its sealer, sealing every half second while the writes land."""
    dept = make_department()
    layer = make_points_layer(client, dept.editor, n=1, access="private")
    env = {"GEO_RATE_LIMITS": "off", "GEO_AUDIT_SEAL_SECONDS": "0.5"}
    with live_server(workers=2, env=env) as server:
        load = run_write_load(server.base, layer, dept.editor, writers=16, seconds=5.0)
        assert not load.failures, load.failures[:3]
        time.sleep(2)  # the servers' own sealers catch up
        with session_scope() as session:
            unsealed = session.execute(
                text(
                    "SELECT count(*) FROM audit_log WHERE action = 'feature.create' "
                    "AND target LIKE :t AND seq IS NULL"
                ),
                {"t": f"{layer}/%"},
            ).scalar()
            report = verify(session)
            created = session.execute(
                text(
                    "SELECT count(*) FROM audit_log "
                    "WHERE action = 'feature.create' AND target LIKE :t"
                ),
                {"t": f"{layer}/%"},
            ).scalar()
    assert len(load.acknowledged) > 50
    assert created == len(load.acknowledged)
    assert unsealed == 0
    assert report.ok, report


def _plan(sql: str, params: dict[str, object]) -> str:
    """EXPLAIN on the table as it is in service: many sealed entries, a few unsealed ones.

    The test database's audit_log is small and its statistics whatever the last autovacuum saw,
    so the planner's choice between two cheap paths there is a coin toss. Here 20,000 sealed
    entries (negative places, so no sealer running beside us can meet them) are added and
    analysed in a transaction that is rolled back: the statistics and rows vanish with it.
    """
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO audit_log (action, seq, hash) "
                "SELECT 'plan.filler', -g, repeat('0', 64) FROM generate_series(1, 20000) g"
            )
        )
        session.execute(text("ANALYZE audit_log"))
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(session.execute(text("EXPLAIN " + sql), params).scalars())
        session.rollback()
        return plan


def test_sealing_and_verifying_use_their_indexes(database_url: str) -> None:
    """The sealer runs every few seconds on a table that only grows: its work list must come
    from an index of the unsealed entries, not a scan; verify walks the seq index.

    Two indexes serve the sealer equally well and the planner picks either: the partial one of
    unsealed entries (already in id order), or the seq index, whose NULLs are the unsealed."""
    from geo.audit.chain import UNSEALED

    sealer = _plan(UNSEALED.text, {"margin": 5, "limit": 10})
    by_index = "ix_audit_log_unsealed" in sealer or (
        "ix_audit_log_seq" in sealer and "Index Cond: (seq IS NULL)" in sealer
    )
    assert by_index and "Seq Scan" not in sealer, sealer
    walk = _plan("SELECT * FROM audit_log WHERE seq IS NOT NULL ORDER BY seq", {})
    assert "ix_audit_log_seq" in walk and "Seq Scan" not in walk, walk

"""The hash chain over the audit trail: sealing committed entries, and verifying the chain.

Writers insert entries unchained (geo.audit.entries): a chain extended inside every writing
transaction would hold one lock from the entry's INSERT to its COMMIT and so put every write of
the service, on any layer or department, in one queue (bench/bench_audit.py measures it). The
sealer instead takes the committed entries not yet sealed, in id order, and gives each its place
`seq` (1, 2, 3...) and ``hash = SHA-256(previous hash + "\\n" + canonical JSON of the entry)``,
in one short transaction that also moves the head (audit_chain). An entry that commits after
an entry with a higher id simply takes the next place when it is sealed: the chain's order is
the order of sealing, and every entry is sealed exactly once.

The canonical JSON is the entry's fields (`FIELDS`, and each of `LATER_FIELDS` that is set)
with `seq`, keys sorted, no whitespace, UTF-8, `at` in UTC with microseconds: anyone holding
a copy (the CSV export has every field) can recompute it. A plain SHA-256 rather than a keyed
one: a key would live on the same server as the database, within reach of whoever can rewrite
rows, and would keep the inspector from checking a copy alone. What plain hashes cannot stop,
someone rewriting the whole chain from an entry onwards, the head printed by `geo audit verify`
does: written down by the inspector, it is checked against the chain on the next visit
(`--anchor SEQ:HASH`).

Per-minute read entries (geo.audit.entries.record_read) are sealed only once their minute is
over (and MARGIN more), since until then their count still grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.db import session_scope

GENESIS = "0" * 64
BATCH = 2000
MARGIN_S = 5
# What an entry's hash covers, beside its seq and the previous entry's hash.
FIELDS = (
    "id",
    "at",
    "department_code",
    "key_prefix",
    "role",
    "action",
    "target",
    "client",
    "details",
    "read_slot",
)
# Covered when set, left out when null: added after entries were first sealed, whose hashes
# must not change (an entry given one, or losing it, still no longer matches its hash).
LATER_FIELDS = ("account",)
_COLUMNS = ", ".join(FIELDS + LATER_FIELDS)

_LOCK_HEAD = "SELECT seq, hash FROM audit_chain WHERE id = 1 FOR UPDATE"
# FOR UPDATE: a per-minute read entry's count cannot change between hashing and sealing.
UNSEALED = text(
    f"""
    SELECT {_COLUMNS} FROM audit_log
    WHERE seq IS NULL
      AND (read_slot IS NULL
           OR at < date_trunc('minute', clock_timestamp() - make_interval(secs => :margin)))
    ORDER BY id
    LIMIT :limit
    FOR UPDATE
    """
)
_SEAL = text(
    """
    UPDATE audit_log AS a SET seq = v.seq, hash = v.hash
    FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]), CAST(:hashes AS text[]))
        AS v (id, seq, hash)
    WHERE a.id = v.id
    """
)
_MOVE_HEAD = text("UPDATE audit_chain SET seq = :seq, hash = :hash, sealed_at = now() WHERE id = 1")


def canonical(seq: int, row: Mapping[Any, Any]) -> bytes:
    fields = {name: row[name] for name in FIELDS}
    fields.update({name: row[name] for name in LATER_FIELDS if row[name] is not None})
    fields["at"] = row["at"].astimezone(UTC).isoformat(timespec="microseconds")
    fields["client"] = str(row["client"]) if row["client"] is not None else None
    fields["seq"] = seq
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def entry_hash(previous: str, seq: int, row: Mapping[Any, Any]) -> str:
    return hashlib.sha256(previous.encode() + b"\n" + canonical(seq, row)).hexdigest()


def seal_pending(session: Session, wait: bool = True, limit: int = BATCH) -> int | None:
    """Seal up to `limit` entries in the session's transaction: the number sealed, or None when
    `wait` is False and another sealer holds the head. The head stays locked until the
    transaction ends; writers never wait for it (they do not touch the head)."""
    head = session.execute(text(_LOCK_HEAD + ("" if wait else " SKIP LOCKED"))).first()
    if head is None:
        return None
    seq, previous = head
    rows = session.execute(UNSEALED, {"margin": MARGIN_S, "limit": limit}).mappings().all()
    if not rows:
        return 0
    ids, seqs, hashes = [], [], []
    for row in rows:
        seq += 1
        previous = entry_hash(previous, seq, row)
        ids.append(row["id"])
        seqs.append(seq)
        hashes.append(previous)
    session.execute(_SEAL, {"ids": ids, "seqs": seqs, "hashes": hashes})
    session.execute(_MOVE_HEAD, {"seq": seq, "hash": previous})
    return len(rows)


def seal(wait: bool = True) -> int:
    """Seal every committed entry that may be sealed, a batch per transaction: how many."""
    total = 0
    while True:
        with session_scope() as session:
            sealed = seal_pending(session, wait)
        total += sealed or 0
        if not sealed or sealed < BATCH:
            return total


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold."""

    seq: int
    id: int | None
    problem: str  # "altered", "missing", "head"
    message: str


@dataclass(frozen=True)
class ChainReport:
    sealed: int
    unsealed: int
    head_seq: int
    head_hash: str
    checked_at: datetime
    broken: Break | None = None
    anchor_ok: bool | None = None  # None: no anchor given

    @property
    def ok(self) -> bool:
        return self.broken is None and self.anchor_ok is not False

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sealed": self.sealed,
            "unsealed": self.unsealed,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "checkedAt": self.checked_at.isoformat(),
            "broken": None if self.broken is None else vars(self.broken),
            "anchorOk": self.anchor_ok,
        }


def _sealed_rows(session: Session) -> Iterator[Mapping[Any, Any]]:
    result = session.execute(
        text(f"SELECT seq, hash, {_COLUMNS} FROM audit_log WHERE seq IS NOT NULL ORDER BY seq"),
        execution_options={"yield_per": BATCH},
    )
    yield from result.mappings()


def _walk(session: Session, head_seq: int, head_hash: str) -> tuple[int, Break | None]:
    """Recompute every sealed entry's hash in chain order: (entries that hold, first break)."""
    expected, previous = 1, GENESIS
    for row in _sealed_rows(session):
        seq = row["seq"]
        if seq != expected:
            return expected - 1, Break(
                expected,
                None,
                "missing",
                f"entry #{expected} is missing (deleted, or its place changed); the next "
                f"sealed entry is #{seq} (id {row['id']})",
            )
        if entry_hash(previous, seq, row) != row["hash"]:
            return expected - 1, Break(
                seq, row["id"], "altered", f"entry #{seq} (id {row['id']}) was altered"
            )
        previous = row["hash"]
        expected += 1
    last = expected - 1
    if last != head_seq or previous != head_hash:
        return last, Break(
            last + 1,
            None,
            "head",
            f"the chain ends at #{last} but its head says #{head_seq} ({head_hash[:12]}...): "
            "the newest entries were deleted, or the head was changed",
        )
    return last, None


def verify(session: Session, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Walk the sealed chain from its first entry, in one snapshot (REPEATABLE READ, so a
    sealer at work meanwhile is not half seen). `anchor` (seq, hash), written down at an
    earlier verification, must still be in the chain. In a session already at work, its
    transaction's own isolation holds."""
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    head_seq, head_hash = session.execute(
        text("SELECT seq, hash FROM audit_chain WHERE id = 1")
    ).one()
    unsealed = session.execute(text("SELECT count(*) FROM audit_log WHERE seq IS NULL")).scalar()
    holding, broken = _walk(session, head_seq, head_hash)
    anchor_ok = None
    if anchor is not None:
        found = session.execute(
            text("SELECT hash FROM audit_log WHERE seq = :seq"), {"seq": anchor[0]}
        ).scalar()
        anchor_ok = found == anchor[1] and (broken is None or anchor[0] < broken.seq)
    return ChainReport(
        sealed=holding,
        unsealed=int(unsealed or 0),
        head_seq=head_seq,
        head_hash=head_hash,
        checked_at=datetime.now(UTC),
        broken=broken,
        anchor_ok=anchor_ok,
    )

"""The audit trail's tables, owned by geo.audit: the entries, and the head of their hash chain.

An entry is written unchained by the transaction it records (geo.audit.entries, .reads); the
sealer (geo.audit.chain) later gives each committed entry its place in the chain (`seq`) and
its `hash`, once, and moves the chain's head. Nothing else updates or deletes an entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base


class AuditEvent(Base):
    """Who did what, when, from where."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_department_at", "department_code", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
        # verify walks the chain in this order; unique, so no two entries claim one place.
        Index("ix_audit_log_seq", "seq", unique=True),
        # The sealer's work list: small (entries of the last seconds), whatever the table's size.
        Index("ix_audit_log_unsealed", "id", postgresql_where=text("seq IS NULL")),
        # A layer's changes, newest first, ties in order (geo.audit.listing.layer_events):
        # entries whose target is the layer ("roads") or one of its features ("roads/12"), reads
        # left out (they are most of the log and no layer's history).
        Index(
            "ix_audit_log_layer_at",
            text("split_part(target, '/', 1)"),
            "at",
            "id",
            postgresql_where=text("action <> 'layer.read'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    department_code: Mapped[str | None] = mapped_column(String(64))
    key_prefix: Mapped[str | None] = mapped_column(String(16))
    # The username of a person signed in by cookie (geo.accounts), who acts with no key.
    account: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(500))
    client: Mapped[str | None] = mapped_column(INET)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Reads counted per minute (geo.audit.reads): minute, layer, caller, way and grant; the
    # unique key their upsert lands on. NULL for every other entry.
    read_slot: Mapped[str | None] = mapped_column(String(1000), unique=True)
    # Place in the hash chain and the entry's hash, set once by the sealer; NULL until then.
    seq: Mapped[int | None] = mapped_column(BigInteger)
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditChain(Base):
    """The chain's head: how many entries are sealed and the last one's hash. One row, locked
    by the sealer while it works (only one sealer at a time extends the chain). verify compares
    it with the last sealed entry, so deleting the newest entries does not go unnoticed."""

    __tablename__ = "audit_chain"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_chain_one_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

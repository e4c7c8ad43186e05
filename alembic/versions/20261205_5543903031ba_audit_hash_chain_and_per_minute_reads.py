"""audit hash chain and per-minute reads: audit_log.seq, .hash, .read_slot; audit_chain

Entries are written unchained by the transaction they record; the sealer (geo.audit.chain)
gives each committed entry its place `seq` and its SHA-256 `hash` over the previous entry's
hash and the entry's fields, and keeps the chain's head in audit_chain (one row). Tile reads
are counted per layer, caller and minute in one entry, found again through `read_slot`.
Entries written before this migration are sealed by the first sealing, in id order.

Revision ID: 5543903031ba
Revises: 232fef47a94e
Create Date: 2026-12-05 15:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "5543903031ba"
down_revision: str | None = "232fef47a94e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("read_slot", sa.String(length=1000), nullable=True))
    op.add_column("audit_log", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_log", sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_unique_constraint("audit_log_read_slot_key", "audit_log", ["read_slot"])
    op.create_index("ix_audit_log_seq", "audit_log", ["seq"], unique=True)
    op.create_index(
        "ix_audit_log_unsealed", "audit_log", ["id"], postgresql_where=sa.text("seq IS NULL")
    )
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column(
            "sealed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("id = 1", name="ck_audit_chain_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(f"INSERT INTO audit_chain (id, seq, hash) VALUES (1, 0, '{GENESIS}')")


def downgrade() -> None:
    op.drop_table("audit_chain")
    op.drop_index("ix_audit_log_unsealed", table_name="audit_log")
    op.drop_index("ix_audit_log_seq", table_name="audit_log")
    op.drop_constraint("audit_log_read_slot_key", "audit_log", type_="unique")
    op.drop_column("audit_log", "hash")
    op.drop_column("audit_log", "seq")
    op.drop_column("audit_log", "read_slot")

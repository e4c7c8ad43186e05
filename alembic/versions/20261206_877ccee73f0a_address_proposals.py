"""address_proposals: proposals for the address library awaiting review (issue 15 part 2)

An editor proposes a new address, a change or a retirement; the checks' findings are stored
with it; the address authority approves (published through addressbook.lifecycle) or rejects
with a reason. Queues list a status by district (ix_address_proposals_queue); a department reads
its own (ix_address_proposals_department).

Revision ID: 877ccee73f0a
Revises: b4c1e7a9d203
Create Date: 2026-12-06 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "877ccee73f0a"
down_revision: str | None = "b4c1e7a9d203"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "address_proposals",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("address_id", sa.BigInteger(), nullable=True),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("district_code", sa.String(length=12), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("standard", sa.String(length=400), nullable=True),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("findings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("department_code", sa.String(length=64), nullable=False),
        sa.Column("proposed_by", sa.String(length=140), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("decided_by", sa.String(length=140), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint("kind IN ('create', 'change', 'retire')", name="ck_proposals_kind"),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name="ck_proposals_status"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_address_proposals_queue",
        "address_proposals",
        ["status", "district_code", "id"],
    )
    op.create_index(
        "ix_address_proposals_department",
        "address_proposals",
        ["department_code", "status", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_address_proposals_department", table_name="address_proposals")
    op.drop_index("ix_address_proposals_queue", table_name="address_proposals")
    op.drop_table("address_proposals")

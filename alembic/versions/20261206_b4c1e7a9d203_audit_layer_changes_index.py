"""audit: an index for a layer's changes, newest first

GET /collections/{id}/changes reads the entries whose target is the layer or one of its
features ("roads", "roads/12"), newest first, a page at a time. The index keys them by the
target's first part, time and id (the page's order, ties included); reads (layer.read, most of
the log) are left out of it.

Revision ID: b4c1e7a9d203
Revises: 17c3091edb23
Create Date: 2026-12-06 03:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "b4c1e7a9d203"
down_revision: str | None = "17c3091edb23"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_log_layer_at",
        "audit_log",
        [sa.text("split_part(target, '/', 1)"), "at", "id"],
        postgresql_where=sa.text("action <> 'layer.read'"),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_layer_at", table_name="audit_log")

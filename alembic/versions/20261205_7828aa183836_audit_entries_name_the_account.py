"""audit entries name the account: audit_log.account

A person signed in by cookie (geo.accounts) acts with no key, so an entry's key prefix alone
left them unnamed; `account` holds their username. The hash chain covers it when it is set and
leaves it out when it is null, so entries sealed before this migration keep their hashes.

Revision ID: 7828aa183836
Revises: 5543903031ba
Create Date: 2026-12-05 16:25:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "7828aa183836"
down_revision: str | None = "5543903031ba"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("account", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "account")

"""graded keys (scope, read-only, expiry, bootstrap) and staff accounts with sessions

Keys:
- `scope`: what a key reaches. Department-held `admin` keys were platform administrators
  before; they now administer their own department only (geo.auth.key_scope), and this
  migration records that on each key: "platform" for admin keys of the platform department,
  "department" for every other key, those former platform-wide admin keys included. Listings
  (`GET /departments/{code}/keys`) show it; docs/upgrade-notes.md tells operators.
- `read_only` and `expires_at`: optional for new keys; existing keys stay read-write and
  unlimited.
- `bootstrap`: the key installed from GEO_ADMIN_KEY, revoked when the setting changes. Earlier
  versions installed it without an audit entry, unlike every key issued over HTTP or the
  console, so the platform admin keys with no label and no `key.create` entry are marked.

Staff accounts (`accounts`) and their web sessions (`account_sessions`), keyed by the SHA-256 of
the cookie's token.

Revision ID: e30abd52b606
Revises: 232fef47a94e
Create Date: 2026-12-05 15:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "e30abd52b606"
down_revision: str | None = "232fef47a94e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "api_keys",
        sa.Column("scope", sa.String(16), server_default=sa.text("'department'"), nullable=False),
    )
    op.add_column(
        "api_keys", sa.Column("read_only", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column(
        "api_keys", sa.Column("bootstrap", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.execute(
        "UPDATE api_keys SET scope = 'platform' FROM departments d "
        "WHERE d.id = api_keys.department_id AND d.code = 'platform' AND api_keys.role = 'admin'"
    )
    op.execute(
        "UPDATE api_keys SET bootstrap = true WHERE scope = 'platform' AND label IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.action = 'key.create' "
        "AND a.target = 'platform/' || api_keys.prefix)"
    )

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column(
            "must_change_password", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column("failed_signins", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_signin_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_index("ix_accounts_department_id", "accounts", ["department_id"])
    op.create_table(
        "account_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_account_sessions_account_id", "account_sessions", ["account_id"])


def downgrade() -> None:
    op.drop_table("account_sessions")
    op.drop_table("accounts")
    for column in ("bootstrap", "read_only", "scope", "expires_at"):
        op.drop_column("api_keys", column)

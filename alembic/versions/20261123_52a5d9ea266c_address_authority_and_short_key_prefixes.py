"""address authority flag on departments; stored key prefixes cut to 8 characters

Only the address authority (and the platform department) may write the standard address
library, so departments get an `address_authority` flag that the platform administrator sets.

Keys used to be remembered by their first 12 characters: "tjg_" and 8 characters of the secret
(48 bits), in api_keys and everywhere a caller is named (the audit trail, `updated_by` of
addresses and layer features, history rows, layers.created_by). Now nothing keeps more than 8
characters ("tjg_" and 4); this cuts what is already stored. Named callers are written
"<department>/<key prefix>", so there only the part after the last "/" is cut. Labels that are
not key prefixes ("console", "sample") are 8 characters or shorter and stay as they are. The
audit trail is append-only for the service; this one-off rewrite of the prefixes in it is the
exception, made so that no copy of the longer prefixes survives.

The cut cannot be undone: downgrade only drops the flag.

Revision ID: 52a5d9ea266c
Revises: 9b1e6c3d2a70
Create Date: 2026-11-23 09:12:41.503210
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "52a5d9ea266c"
down_revision: str | None = "9b1e6c3d2a70"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = 8
# "<department>/<prefix longer than 8>" -> "<department>/<first 8 of the prefix>"
NAMED = rf"^([^/]*/.{{{PREFIX}}}).+$"
LONG_NAMED = rf"^[^/]*/.{{{PREFIX + 1},}}$"


def _cut_named(table: str, column: str, extra: str = "") -> None:
    op.execute(
        f"UPDATE {table} SET {column} = regexp_replace({column}, '{NAMED}', '\\1') "
        f"WHERE {column} ~ '{LONG_NAMED}'{extra}"
    )


def upgrade() -> None:
    op.add_column(
        "departments",
        sa.Column("address_authority", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.execute(
        f"UPDATE api_keys SET prefix = left(prefix, {PREFIX}) WHERE length(prefix) > {PREFIX}"
    )
    op.execute(
        f"UPDATE audit_log SET key_prefix = left(key_prefix, {PREFIX}) "
        f"WHERE length(key_prefix) > {PREFIX}"
    )
    # Key events name their key as "<department>/<prefix>".
    _cut_named("audit_log", "target", " AND action IN ('key.create', 'key.revoke')")
    op.execute(
        f"UPDATE layers SET created_by = left(created_by, {PREFIX}) "
        f"WHERE length(created_by) > {PREFIX}"
    )
    _cut_named("addresses", "updated_by")
    _cut_named("address_history", "changed_by")
    # Layer tables are made at run time (schema layerdata, outside Alembic): every table there
    # with a column naming a caller.
    op.execute(
        f"""
        DO $$
        DECLARE c record;
        BEGIN
            FOR c IN SELECT table_name, column_name FROM information_schema.columns
                     WHERE table_schema = 'layerdata'
                       AND column_name IN ('updated_by', 'archived_by')
            LOOP
                EXECUTE format(
                    'UPDATE layerdata.%I SET %I = regexp_replace(%I, %L, %L) WHERE %I ~ %L',
                    c.table_name, c.column_name, c.column_name, '{NAMED}', '\\1',
                    c.column_name, '{LONG_NAMED}');
            END LOOP;
        END $$;
        """
    )


def downgrade() -> None:
    op.drop_column("departments", "address_authority")

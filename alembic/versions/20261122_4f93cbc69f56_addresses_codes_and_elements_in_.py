"""addresses: codes and elements in collation C

Byte-wise comparison for the code and element columns: equality is unchanged, but sorts and
btree builds (the bulk import rebuilds them) use abbreviated keys and run several times faster,
and prefix LIKE can use the btree indexes. Indexes on these columns are rebuilt by PostgreSQL.

Revision ID: 4f93cbc69f56
Revises: 475d15caf34a
Create Date: 2026-11-22 16:38:42.076021
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '4f93cbc69f56'
down_revision: str | None = '475d15caf34a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "code": 40,
    "district_code": 12,
    "subdistrict_code": 12,
    "community_code": 12,
    "grid_code": 32,
    "road": 100,
    "house_number": 20,
    "compound": 100,
    "building": 20,
    "unit": 20,
    "room": 20,
}


def upgrade() -> None:
    for name, length in COLUMNS.items():
        op.alter_column(
            "addresses", name, type_=sa.String(length, collation="C"),
            existing_type=sa.String(length),
        )


def downgrade() -> None:
    for name, length in COLUMNS.items():
        op.alter_column(
            "addresses", name, type_=sa.String(length),
            existing_type=sa.String(length, collation="C"),
        )

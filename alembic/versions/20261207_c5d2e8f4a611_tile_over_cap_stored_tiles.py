"""tile_over_cap keeps the tile itself: an over-full tile of lines or polygons is made once per
layer version by the build and served by one primary-key read, instead of its cap of rows read
by id and encoded on every request

Builds are derived data (remade from the layer on first need), so the existing ones are removed
rather than converted: their tiles would have to be encoded here, with the layer's tile SQL.

Revision ID: c5d2e8f4a611
Revises: 71210f31df59
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "c5d2e8f4a611"
down_revision: str | None = "71210f31df59"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM tile_cluster_builds")
    op.drop_column("tile_over_cap", "kept")
    op.drop_column("tile_over_cap", "dropped")
    op.add_column("tile_over_cap", sa.Column("tile", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM tile_cluster_builds")
    op.drop_column("tile_over_cap", "tile")
    op.add_column("tile_over_cap", sa.Column("dropped", sa.BigInteger(), nullable=True))
    op.add_column(
        "tile_over_cap", sa.Column("kept", postgresql.ARRAY(sa.BigInteger()), nullable=True)
    )

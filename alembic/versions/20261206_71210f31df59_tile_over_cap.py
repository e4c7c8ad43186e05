"""tile_over_cap: the tiles of a cluster build known to exceed the feature cap, and for lines and
polygons the ids of the features each keeps (chosen once per layer version)

Revision ID: 71210f31df59
Revises: 877ccee73f0a
Create Date: 2026-12-06 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "71210f31df59"
down_revision: str | None = "877ccee73f0a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tile_over_cap",
        sa.Column("build_id", sa.BigInteger(), nullable=False),
        sa.Column("z", sa.SmallInteger(), nullable=False),
        sa.Column("tx", sa.Integer(), nullable=False),
        sa.Column("ty", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=True),
        sa.Column("kept", postgresql.ARRAY(sa.BigInteger()), nullable=True),
        sa.ForeignKeyConstraint(["build_id"], ["tile_cluster_builds.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("build_id", "z", "tx", "ty"),
    )


def downgrade() -> None:
    op.drop_table("tile_over_cap")

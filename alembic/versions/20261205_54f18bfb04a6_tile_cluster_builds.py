"""tile cluster builds: per-version point clusters and complete-from zooms

Revision ID: 54f18bfb04a6
Revises: 33443e655c44
Create Date: 2026-12-05 19:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '54f18bfb04a6'
down_revision: str | None = '33443e655c44'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tile_cluster_builds',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('layer', sa.String(length=200), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('recipe', sa.String(length=40), nullable=False),
    sa.Column('complete_from_zoom', sa.SmallInteger(), nullable=True),
    sa.Column('built_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('layer', 'version', 'recipe')
    )
    op.create_table('tile_clusters',
    sa.Column('build_id', sa.BigInteger(), nullable=False),
    sa.Column('z', sa.SmallInteger(), nullable=False),
    sa.Column('tx', sa.Integer(), nullable=False),
    sa.Column('ty', sa.Integer(), nullable=False),
    sa.Column('cx', sa.Integer(), nullable=False),
    sa.Column('cy', sa.Integer(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.Column('sx', sa.Float(precision=53), nullable=False),
    sa.Column('sy', sa.Float(precision=53), nullable=False),
    sa.Column('sums', postgresql.ARRAY(sa.Float(precision=53)), nullable=False),
    sa.ForeignKeyConstraint(['build_id'], ['tile_cluster_builds.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('build_id', 'z', 'tx', 'ty', 'cx', 'cy')
    )


def downgrade() -> None:
    op.drop_table('tile_clusters')
    op.drop_table('tile_cluster_builds')

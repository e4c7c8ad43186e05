"""addresses: trigram index only on rows without a name

The geocoder's text-similarity step now reaches addresses through their road or compound names
(the small trigram-indexed address_names, then the structured btrees), so the GIN index over
every full form (the longest single step of a bulk import's index rebuild) goes; what stays is a
partial one over the rows with neither a road nor a compound, which no name leads to.

Revision ID: 9b1e6c3d2a70
Revises: 4f93cbc69f56
Create Date: 2026-11-22 19:33:35.764945
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '9b1e6c3d2a70'
down_revision: str | None = '4f93cbc69f56'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNNAMED = sa.text('road IS NULL AND compound IS NULL')


def upgrade() -> None:
    op.drop_index('ix_addresses_full_trgm', table_name='addresses')
    op.create_index(
        'ix_addresses_unnamed_trgm', 'addresses', ['full_address'], unique=False,
        postgresql_using='gin', postgresql_ops={'full_address': 'gin_trgm_ops'},
        postgresql_where=UNNAMED,
    )


def downgrade() -> None:
    op.drop_index('ix_addresses_unnamed_trgm', table_name='addresses')
    op.create_index(
        'ix_addresses_full_trgm', 'addresses', ['full_address'], unique=False,
        postgresql_using='gin', postgresql_ops={'full_address': 'gin_trgm_ops'},
    )

"""layer grants (分级授权): layer_grants, and each shared_with entry as a view grant

A grant gives a department (or every department: grantee NULL) view, download or edit access
to a layer, possibly narrowed to an area (kept in EPSG:4326 as given and in the layers' storage
CRS, EPSG:4490, which queries read), to some attributes, and by an expiry date (layers.scope).
The departments a `shared` layer named in `shared_with` become whole-layer view grants
(origin 'shared_with'), which the catalogue keeps in step with the list from now on.

Revision ID: 039e9778789b
Revises: 232fef47a94e
Create Date: 2026-12-05 15:40:00.000000
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "039e9778789b"
down_revision: str | None = "232fef47a94e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "layer_grants",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "layer_id",
            sa.String(length=50),
            sa.ForeignKey("layers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("grantee", sa.String(length=64), nullable=True),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("area_code", sa.String(length=12), nullable=True),
        sa.Column(
            "area",
            geoalchemy2.Geometry("MULTIPOLYGON", srid=4326, spatial_index=False),
            nullable=True,
        ),
        sa.Column(
            "area_storage",
            geoalchemy2.Geometry("MULTIPOLYGON", srid=4490, spatial_index=False),
            nullable=True,
        ),
        sa.Column("attributes", postgresql.ARRAY(sa.String(length=63)), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("origin", sa.String(length=12), server_default="grant", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.CheckConstraint("level IN ('view', 'download', 'edit')", name="ck_layer_grants_level"),
    )
    op.create_index("ix_layer_grants_layer", "layer_grants", ["layer_id"])
    op.create_index("ix_layer_grants_grantee", "layer_grants", ["grantee"])
    op.execute(
        """
        INSERT INTO layer_grants (layer_id, grantee, level, origin, created_by)
        SELECT l.id, s.code, 'view', 'shared_with', 'migration'
        FROM layers l CROSS JOIN LATERAL unnest(l.shared_with) AS s(code)
        WHERE l.access = 'shared'
        """
    )


def downgrade() -> None:
    op.drop_index("ix_layer_grants_grantee", table_name="layer_grants")
    op.drop_index("ix_layer_grants_layer", table_name="layer_grants")
    op.drop_table("layer_grants")

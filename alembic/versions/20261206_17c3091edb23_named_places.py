"""places: named places (地名 / 兴趣点) of the address library

A place has a category from a fixed list (the CHECK; README), a name and aliases, a point and an
optional outline in the storage CRS, an optional link to its standard address, and the admin
areas and grid its point lies in (derived on write). GiST on the point (nearby searches, tiles),
a trigram GIN on the name (lookups by similar name; the suggester and the geocoder search the
names through address_names and the in-memory gazetteer).

Revision ID: 17c3091edb23
Revises: 01d7449887c6
Create Date: 2026-12-06 03:10:00.000000
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "17c3091edb23"
down_revision: str | None = "01d7449887c6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATEGORIES = (
    "government",
    "school",
    "hospital",
    "station",
    "park",
    "compound",
    "commercial",
    "other",
)


def upgrade() -> None:
    op.create_table(
        "places",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "aliases",
            postgresql.ARRAY(sa.String(length=100)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            geoalchemy2.Geometry("POINT", srid=4490, spatial_index=False),
            nullable=False,
        ),
        sa.Column(
            "outline",
            geoalchemy2.Geometry("MULTIPOLYGON", srid=4490, spatial_index=False),
            nullable=True,
        ),
        sa.Column(
            "address_id",
            sa.BigInteger(),
            sa.ForeignKey("addresses.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("subdistrict_code", sa.String(length=12), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "category IN (" + ", ".join(f"'{c}'" for c in CATEGORIES) + ")",
            name="ck_places_category",
        ),
    )
    op.create_index("idx_places_geom", "places", ["geom"], postgresql_using="gist")
    op.create_index(
        "ix_places_name_trgm",
        "places",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index("ix_places_district_code", "places", ["district_code"])
    op.create_index("ix_places_source", "places", ["source"])


def downgrade() -> None:
    op.drop_table("places")

"""sharing catalogue fields on layers, and access requests (issue 11, parts 4 and 5)

Layers get the catalogue's fields: sharing type (无条件共享 / 有条件共享 / 不予共享), update
cycle, theme, contact, declared coverage, and two generated columns: ``open_data`` (开放), which
is ``access = 'public'`` so that the two can never disagree, and ``search_text``, the text the
catalogue's ``q`` searches, indexed with pg_trgm (GIN) so that ``ILIKE '%道路%'`` on Chinese
titles does not read every row. The search text is built by an IMMUTABLE SQL function because
array_to_string alone is only STABLE and a generated column (and an index) needs immutability;
for text arguments the function's result depends on its arguments alone.

Existing layers get a sharing type from their access: public -> unconditional (and open data,
as before), shared -> conditional (the departments named keep reading), private -> none.

Revision ID: f7b108c8885e
Revises: 232fef47a94e
Create Date: 2026-12-05 15:30:00.000000
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "f7b108c8885e"
down_revision: str | None = "232fef47a94e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_TEXT = "layer_search_text(title, description, keywords, theme)"
UPDATE_CYCLES = (
    "'continual', 'daily', 'weekly', 'fortnightly', 'monthly', 'quarterly', 'biannually', "
    "'annually', 'asNeeded', 'irregular', 'notPlanned', 'unknown'"
)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        """
        CREATE FUNCTION layer_search_text(title text, description text,
                                          keywords character varying[], theme text)
        RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT concat_ws(' ', title, description, theme, array_to_string(keywords, ' ')) $$
        """
    )
    op.add_column(
        "layers",
        sa.Column("sharing_type", sa.String(length=16), server_default="none", nullable=False),
    )
    op.add_column(
        "layers",
        sa.Column(
            "open_data",
            sa.Boolean(),
            sa.Computed("access = 'public'", persisted=True),
            nullable=False,
        ),
    )
    op.add_column("layers", sa.Column("update_cycle", sa.String(length=20), nullable=True))
    op.add_column("layers", sa.Column("theme", sa.String(length=100), nullable=True))
    op.add_column(
        "layers",
        sa.Column("contact", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "layers",
        sa.Column(
            "coverage",
            geoalchemy2.types.Geometry(geometry_type="POLYGON", srid=4490, spatial_index=False),
            nullable=True,
        ),
    )
    op.add_column(
        "layers",
        sa.Column(
            "search_text", sa.Text(), sa.Computed(SEARCH_TEXT, persisted=True), nullable=False
        ),
    )
    op.execute(
        "UPDATE layers SET sharing_type = CASE access WHEN 'public' THEN 'unconditional' "
        "WHEN 'shared' THEN 'conditional' ELSE 'none' END"
    )
    op.create_check_constraint(
        "ck_layers_sharing_type",
        "layers",
        "sharing_type IN ('unconditional', 'conditional', 'none')",
    )
    op.create_check_constraint(
        "ck_layers_update_cycle",
        "layers",
        f"update_cycle IS NULL OR update_cycle IN ({UPDATE_CYCLES})",
    )
    op.create_index(
        "ix_layers_search_trgm",
        "layers",
        ["search_text"],
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
    )
    op.create_index("ix_layers_coverage", "layers", ["coverage"], postgresql_using="gist")

    op.create_table(
        "access_requests",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("layer_id", sa.String(length=50), nullable=False),
        sa.Column("requester", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("area_code", sa.String(length=12), nullable=True),
        sa.Column(
            "area",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON", srid=4326, spatial_index=False
            ),
            nullable=True,
        ),
        sa.Column("attributes", postgresql.ARRAY(sa.String(length=63)), nullable=True),
        sa.Column("duration_days", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'withdrawn')",
            name="ck_access_requests_status",
        ),
        sa.CheckConstraint(
            "duration_days IS NULL OR duration_days > 0", name="ck_access_requests_duration"
        ),
        sa.ForeignKeyConstraint(["layer_id"], ["layers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_access_requests_pending",
        "access_requests",
        ["layer_id", "requester"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_access_requests_requester", "access_requests", ["requester", "created_at"])
    op.create_index("ix_access_requests_owner", "access_requests", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_table("access_requests")
    op.drop_index("ix_layers_coverage", table_name="layers")
    op.drop_index("ix_layers_search_trgm", table_name="layers")
    op.drop_constraint("ck_layers_update_cycle", "layers")
    op.drop_constraint("ck_layers_sharing_type", "layers")
    for column in (
        "search_text",
        "coverage",
        "contact",
        "theme",
        "update_cycle",
        "open_data",
        "sharing_type",
    ):
        op.drop_column("layers", column)
    op.execute("DROP FUNCTION layer_search_text(text, text, character varying[], text)")

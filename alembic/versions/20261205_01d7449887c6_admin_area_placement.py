"""admin_areas.placement: whether a derived outline rests on a location on record

Derived subdistrict and community outlines are Voronoi cells around one point each: the area's
own centroid when the records have one ('recorded'), else a generated point spread over the
parent ('spread'). The second kind is an estimate, and answers say so (issue 15 part 4). The
column is filled by the next area import (`geo areas import`; `make run` and the tests import
on an empty table); until then it is NULL and nothing is flagged. current_admin_areas shows it
(appended, so the view is replaced in place and its dependants stay).

Revision ID: 01d7449887c6
Revises: 54f18bfb04a6
Create Date: 2026-12-06 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "01d7449887c6"
down_revision: str | None = "54f18bfb04a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = """id, code, name, official_name, level, parent_code, kind, urban_rural,
               valid_from, valid_to, successor_code, geom, centroid, source"""


def upgrade() -> None:
    op.add_column("admin_areas", sa.Column("placement", sa.String(length=8), nullable=True))
    op.execute(
        f"""
        CREATE OR REPLACE VIEW current_admin_areas AS
        SELECT {_COLUMNS}, placement
        FROM admin_areas WHERE valid_to IS NULL
        """
    )


def downgrade() -> None:
    # A view cannot lose a column in place: rebuild both views without it.
    op.execute("DROP VIEW current_admin_area_tree")
    op.execute("DROP VIEW current_admin_areas")
    op.execute(
        f"CREATE VIEW current_admin_areas AS SELECT {_COLUMNS} "
        "FROM admin_areas WHERE valid_to IS NULL"
    )
    op.execute(
        """
        CREATE VIEW current_admin_area_tree AS
        SELECT a.code, a.name, a.official_name, a.level, a.kind, a.parent_code,
               CASE a.level WHEN 'district' THEN a.code
                            WHEN 'subdistrict' THEN a.parent_code
                            ELSE s.parent_code END AS district_code,
               CASE a.level WHEN 'subdistrict' THEN a.code
                            WHEN 'community' THEN a.parent_code END AS subdistrict_code,
               CASE a.level WHEN 'community' THEN a.code END AS community_code,
               a.geom, a.centroid
        FROM current_admin_areas a
        LEFT JOIN current_admin_areas s ON a.level = 'community' AND s.code = a.parent_code
        WHERE a.level IN ('district', 'subdistrict', 'community')
        """
    )
    op.drop_column("admin_areas", "placement")

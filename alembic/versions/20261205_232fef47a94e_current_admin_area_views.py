"""views of the admin areas in force: current_admin_areas, current_admin_area_tree

Admin areas keep every version of a code (valid_from, valid_to); almost every reader wants the
version in force, and the address library wrote `valid_to IS NULL` some fifty times, and the
join from a community to its subdistrict's district a dozen. The views say it once. They are
plain views (no materialisation): the planner inlines them, so a query through them uses the
same indexes as one written against admin_areas (codes, GiST on geom and centroid).

- current_admin_areas: the rows of admin_areas in force.
- current_admin_area_tree: the current districts, subdistricts and communities, each with the
  codes of its district, its subdistrict (for a subdistrict: itself) and its community.

Revision ID: 232fef47a94e
Revises: 52a5d9ea266c
Create Date: 2026-12-05 13:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "232fef47a94e"
down_revision: str | None = "52a5d9ea266c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW current_admin_areas AS
        SELECT id, code, name, official_name, level, parent_code, kind, urban_rural,
               valid_from, valid_to, successor_code, geom, centroid, source
        FROM admin_areas WHERE valid_to IS NULL
        """
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


def downgrade() -> None:
    op.execute("DROP VIEW current_admin_area_tree")
    op.execute("DROP VIEW current_admin_areas")

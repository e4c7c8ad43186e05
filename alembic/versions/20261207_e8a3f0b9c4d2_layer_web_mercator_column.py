"""Every layer table keeps its geometry in Web Mercator too (geom_3857, a generated column with
a GiST index of its own), which vector tiles search and draw instead of transforming each row
(layers.storage.MERCATOR_COLUMN, tiles.sql)

Adding a stored generated column rewrites each layer table once. The tile statements change
with it, so every cluster build (derived data, remade on first need) is removed: their recipes
are no longer asked for.

Revision ID: e8a3f0b9c4d2
Revises: c5d2e8f4a611
Create Date: 2026-12-07 03:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e8a3f0b9c4d2"
down_revision: str | None = "c5d2e8f4a611"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The catalogue's layer tables that exist with a `geom` column (a table is made with its layer,
# in the same transaction, but a catalogue row may outlive a table dropped or changed by hand),
# with or without the copy.
_TABLES = """
    SELECT l.table_name FROM layers l
    WHERE EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = to_regclass(format('layerdata.%I', l.table_name))
          AND a.attname = 'geom' AND NOT a.attisdropped)
      AND {negation} EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = to_regclass(format('layerdata.%I', l.table_name))
          AND a.attname = 'geom_3857' AND NOT a.attisdropped)
"""


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        DECLARE t text;
        BEGIN
          FOR t IN {_TABLES.format(negation="NOT")} LOOP
            EXECUTE format(
              'ALTER TABLE layerdata.%I ADD COLUMN geom_3857 '
              'geometry(Geometry, 3857) GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED',
              t);
            EXECUTE format('CREATE INDEX ON layerdata.%I USING gist (geom_3857)', t);
            EXECUTE format('ANALYZE layerdata.%I', t);
          END LOOP;
        END $$;
        """
    )
    op.execute("DELETE FROM tile_cluster_builds")


def downgrade() -> None:
    op.execute(
        f"""
        DO $$
        DECLARE t text;
        BEGIN
          FOR t IN {_TABLES.format(negation="")} LOOP
            EXECUTE format('ALTER TABLE layerdata.%I DROP COLUMN geom_3857', t);
          END LOOP;
        END $$;
        """
    )
    op.execute("DELETE FROM tile_cluster_builds")

"""The Alembic migrations: the models describe the same schema, and a data migration does what
it says on a database the previous version left."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, text

from alembic import command
from geo.db import ensure_extensions, get_engine
from geo.migrations import alembic_config, include_object, load_models, upgrade
from tests.layers_helpers import mercator_mismatches


def test_models_and_migrations_agree(database_url: str) -> None:
    metadata = load_models()  # every package's models, as alembic/env.py sees them
    with get_engine().connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": include_object,
                "render_item": alembic_helpers.render_item,
                "compare_type": True,
                "target_metadata": metadata,
            },
        )
        diff = compare_metadata(context, metadata)
    assert diff == [], f"models and migrations differ; run autogenerate: {diff}"


def test_layer_tables_get_their_web_mercator_copy(scratch_database: str) -> None:
    """e8a3f0b9c4d2: a layer table made before it gets geom_3857 (equal to its geometry
    transformed, indexed), and a downgrade takes it away again."""
    engine = create_engine(scratch_database)
    try:
        ensure_extensions(engine)
        upgrade(scratch_database, "c5d2e8f4a611")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO departments (code, name) VALUES ('old', '旧部门')"))
            conn.execute(
                text(
                    "INSERT INTO layers (id, title, geometry_type, owner, table_name) "
                    "VALUES ('old', '旧图层', 'Point', 'old', 'l_old')"
                )
            )
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS layerdata"))
            conn.execute(
                text(
                    "CREATE TABLE layerdata.l_old (id bigint PRIMARY KEY, "
                    "geom geometry(Point, 4490) NOT NULL)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO layerdata.l_old VALUES "
                    "(1, ST_SetSRID(ST_MakePoint(117.2, 39.13), 4490)), "
                    "(2, ST_SetSRID(ST_MakePoint(117.3, 39.2), 4490))"
                )
            )
        upgrade(scratch_database, "e8a3f0b9c4d2")
        with engine.connect() as conn:
            copies = mercator_mismatches(conn, "l_old")
            indexed = conn.execute(
                text(
                    "SELECT count(*) FROM pg_indexes WHERE schemaname = 'layerdata' "
                    "AND tablename = 'l_old' AND indexdef LIKE '%gist (geom_3857)%'"
                )
            ).scalar_one()
        assert (copies, indexed) == ((2, 0), 1)
        with engine.begin() as conn:  # a write after the migration keeps it current
            conn.execute(
                text("UPDATE layerdata.l_old SET geom = ST_SetSRID(ST_MakePoint(0, 0), 4490)")
            )
            assert conn.execute(
                text(
                    "SELECT bool_and(ST_Equals(geom_3857, 'SRID=3857;POINT(0 0)')) "
                    "FROM layerdata.l_old"
                )
            ).scalar_one()
        command.downgrade(alembic_config(scratch_database), "c5d2e8f4a611")
        with engine.connect() as conn:
            columns = conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'layerdata' AND table_name = 'l_old' ORDER BY 1"
                )
            ).scalars()
            assert list(columns) == ["geom", "id"]
    finally:
        engine.dispose()

"""The Alembic migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers

from geo.db import get_engine
from geo.migrations import include_object, load_models


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

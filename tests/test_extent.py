"""geo.extent: the city-extent check of single points and the planner's table extents, shared by
the address library, layers and tiles."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import text

from geo.db import libpq_url, session_scope
from geo.errors import ApiError
from geo.extent import city_point, estimated_extent, estimated_extent_async

TABLE = "public.extent_probe"


def test_a_point_in_the_city_comes_back_in_storage_crs() -> None:
    x, y = city_point(13046000.0, 4741000.0, "EPSG:3857")
    assert 116.4 < x < 118.4 and 38.2 < y < 40.6


@pytest.mark.parametrize(
    ("x", "y", "crs"), [(39.13, 117.2, "CRS84"), (121.47, 31.23, "CRS84"), (117.2, 39.1, "3857")]
)
def test_a_point_outside_the_city_is_a_400(x: float, y: float, crs: str) -> None:
    with pytest.raises(ApiError) as caught:
        city_point(x, y, crs)
    assert caught.value.status == 400 and caught.value.code == "OutsideExtent"
    assert caught.value.details["point"] == [x, y]


@pytest.fixture(scope="module")
def probe(database_url: str) -> str:
    with session_scope() as session:
        session.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        # No autovacuum: the "never analysed" case must stay so until the test analyses it.
        session.execute(
            text(
                f"CREATE TABLE {TABLE} (geom geometry(Point, 4490)) WITH (autovacuum_enabled = off)"
            )
        )
        session.execute(
            text(
                f"INSERT INTO {TABLE} SELECT ST_SetSRID(ST_MakePoint(117 + i / 1000.0, 39), 4490) "
                "FROM generate_series(0, 999) i"
            )
        )
    return TABLE


def _unanalysed_then_analysed(probe: str) -> None:
    with session_scope() as session:
        # Never analysed: no estimate, and the session's transaction is still usable.
        assert estimated_extent(session, probe, "geom") is None
        assert session.execute(text("SELECT 1")).scalar() == 1
        assert estimated_extent(session, "public.no_such_table", "geom") is None
    with session_scope() as session:
        session.execute(text(f"ANALYZE {probe}"))


def test_estimated_extent_in_a_session(probe: str) -> None:
    _unanalysed_then_analysed(probe)
    with session_scope() as session:
        bounds = estimated_extent(session, probe, "geom")
    assert bounds is not None
    assert bounds[0] == pytest.approx(117.0, abs=0.01) and bounds[2] == pytest.approx(118, abs=0.01)


def test_estimated_extent_on_an_async_connection(probe: str, database_url: str) -> None:
    async def read() -> tuple[object, object]:
        url = libpq_url(database_url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f"ANALYZE {probe}")
            found = await estimated_extent_async(conn, probe, "geom")
            missing = await estimated_extent_async(conn, '"public"."no_such"', "geom")
            return found, missing

    found, missing = asyncio.run(read())
    assert missing is None
    assert isinstance(found, tuple) and found[1] == pytest.approx(39.0, abs=0.01)

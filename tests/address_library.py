"""A small address library for the query-side tests (geocode, reverse, suggest, batch, edits).

The bundled admin areas and a few thousand addresses from the demo generator (fixed seed),
loaded through the real importer, as an operator would load them; loading again changes nothing
(the importer upserts by code). Tests pick their addresses from the database and look them up as
users would, so other test modules' data in the same database does not disturb them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas.import_areas import import_areas
from addressbook.geocoding import gazetteer
from addressbook.ingest import demo
from addressbook.ingest.importer import import_addresses
from geo.auth import Principal
from geo.db import get_engine, session_scope

COUNT = 3000
SEED = 20261122
CONSOLE = Principal("platform", "admin", "console")


def load(count: int = COUNT, seed: int = SEED) -> None:
    with session_scope() as session:
        districts = session.execute(
            text(
                "SELECT count(*) FROM current_admin_areas WHERE level = 'community' "
                "AND geom IS NOT NULL"
            )
        ).scalar_one()
        if districts == 0:
            import_areas(session)
    with session_scope() as session:
        areas = demo.load_communities(session)
    data = io.BytesIO()
    demo.write_csv(data, areas, count, seed)
    data.seek(0)
    with session_scope() as session:
        import_addresses(session, data, "demo-addresses.csv", CONSOLE)
    gazetteer.expire()


@contextmanager
def fresh_names() -> Iterator[None]:
    """The gazetteer checks the data versions on every call (not once a second), so that a test
    sees its own imports at once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gazetteer, "CHECK_INTERVAL", 0.0)
        yield


@dataclass(frozen=True)
class Stored:
    """An address as stored, with the names of its areas."""

    id: int
    code: str
    full_address: str
    district: str
    district_code: str
    subdistrict: str | None
    subdistrict_code: str | None
    community_code: str | None
    road: str | None
    house_number: str | None
    compound: str | None
    building: str | None
    unit: str | None
    room: str | None
    lon: float
    lat: float


_PICK = """
SELECT a.id, a.code, a.full_address, d.name, a.district_code, s.name, a.subdistrict_code,
       a.community_code, a.road, a.house_number, a.compound, a.building, a.unit, a.room,
       ST_X(a.geom), ST_Y(a.geom)
FROM addresses a
JOIN current_admin_areas d ON d.code = a.district_code
LEFT JOIN current_admin_areas s ON s.code = a.subdistrict_code
WHERE a.status = 'active' AND a.code LIKE '12%' AND {where}
ORDER BY md5(a.code) LIMIT :n
"""


def pick(session: Session, where: str, n: int = 1, **params: Any) -> list[Stored]:
    """Library addresses matching an SQL condition on `a` (addresses), in a stable order."""
    rows = session.execute(text(_PICK.format(where=where)), {"n": n, **params}).tuples()
    return [Stored(*row) for row in rows]


# Room-level addresses in compounds, and village houses (road + house number only).
ROOMS = "a.room IS NOT NULL AND a.compound IS NOT NULL AND a.road IS NOT NULL"
HOUSES = "a.building IS NULL AND a.compound IS NULL AND a.road IS NOT NULL"


def plans(sql: str, params: dict[str, Any]) -> str:
    """EXPLAIN of a statement with sequential scans disabled: what remains a Seq Scan has no
    index path at all (the tables here are small enough for the planner to prefer scans)."""
    with get_engine().connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        rows = conn.exec_driver_sql("EXPLAIN " + sql, params).scalars().all()
        conn.execute(text("RESET enable_seqscan"))
    return "\n".join(rows)


@contextmanager
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement (with its parameters) the code under test sends."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)

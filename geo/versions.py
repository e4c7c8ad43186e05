"""Data versions: one counter per dataset (a layer, the addresses, the grids...).

Every write bumps its dataset's counter in the same transaction, and caches (tiles, ETags) key on
the counter. Because the counter lives in the database, every worker and every replica sees an
edit at once: no cache has to be told to forget anything, it simply stops asking for old keys.
Each bump also announces the new version on the channel CHANNEL when it commits, so that
workers can hold versions in memory (geo.version_watch) instead of reading them per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import BigInteger, DateTime, String, func, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo.db import Base


class DataVersion(Base):
    __tablename__ = "data_versions"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The upsert and its notice in one statement: the notice is queued in the writer's transaction,
# so listeners (geo.version_watch) hear of a version only once it is committed, and never of a
# rolled-back one. Payload `<version>:<name>`, the version first because names hold colons.
CHANNEL = "data_versions"
BUMP_SQL = text(
    f"""
    WITH bumped AS (
        INSERT INTO {DataVersion.__tablename__} (name, version) VALUES (:name, 1)
        ON CONFLICT (name) DO UPDATE
            SET version = {DataVersion.__tablename__}.version + 1, changed_at = now()
        RETURNING version)
    SELECT version, pg_notify('{CHANNEL}', version || ':' || :name) FROM bumped
    """
)


# Session.info key: the names this session's transaction bumped (geo.version_watch forgets them
# in this process when the transaction commits, before its request answers).
BUMPED = "geo.versions.bumped"


def bump(session: Session, name: str) -> int:
    """Increase `name`'s version (creating it at 1), tell every listener at commit, and return
    the new value."""
    version = int(session.execute(BUMP_SQL, {"name": name}).scalar_one())
    session.info.setdefault(BUMPED, set()).add(name)
    return version


def parse_notice(payload: str) -> tuple[str, int] | None:
    """`bump`'s notice as (name, version); None for anything else on the channel."""
    version, sep, name = payload.partition(":")
    if not sep or not name or not version.isdigit():
        return None
    return name, int(version)


# Plain SQL, not the ORM: the tile path runs it on a psycopg pool on every tile request, where
# one prepared statement is the whole cost (see versions_async).
CURRENT_SQL = f"SELECT name, version FROM {DataVersion.__tablename__} WHERE name = ANY(%s)"


def _complete(wanted: Sequence[str], found: Mapping[str, int]) -> dict[str, int]:
    """A dataset never written has version 0."""
    return {name: int(found.get(name, 0)) for name in wanted}


def versions(session: Session, names: Iterable[str]) -> dict[str, int]:
    """Current versions, read in the session's transaction."""
    wanted = list(names)
    rows = session.connection().exec_driver_sql(CURRENT_SQL, (wanted,))
    return _complete(wanted, dict(rows.tuples().all()))


async def versions_async(conn: AsyncConnection[Any], names: Sequence[str]) -> dict[str, int]:
    """`versions` on an async psycopg connection (the tile pool's), as one prepared statement."""
    cursor = await conn.execute(CURRENT_SQL, (list(names),), prepare=True)
    return _complete(names, dict(await cursor.fetchall()))

"""Data versions: one counter per dataset (a layer, the addresses, the grids...).

Every write bumps its dataset's counter in the same transaction, and caches (tiles, ETags) key on
the counter. Because the counter lives in the database, every worker and every replica sees an
edit at once: no cache has to be told to forget anything, it simply stops asking for old keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo.db import Base


class DataVersion(Base):
    __tablename__ = "data_versions"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def bump(session: Session, name: str) -> int:
    """Increase `name`'s version (creating it at 1) and return the new value."""
    insert_new = insert(DataVersion).values(name=name, version=1)
    upsert = insert_new.on_conflict_do_update(
        index_elements=["name"],
        set_={"version": DataVersion.version + 1, "changed_at": func.now()},
    ).returning(DataVersion.version)
    return int(session.execute(upsert).scalar_one())


def versions(session: Session, names: Iterable[str]) -> dict[str, int]:
    """Current versions; a dataset never written has version 0."""
    wanted = list(names)
    rows = session.execute(
        select(DataVersion.name, DataVersion.version).where(DataVersion.name.in_(wanted))
    )
    found = dict(rows.tuples().all())
    return {name: int(found.get(name, 0)) for name in wanted}

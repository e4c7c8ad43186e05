"""Small facts about a database the service must remember, such as which samples are loaded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo.db import Base


class PlatformState(Base):
    __tablename__ = "platform_state"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)


def get_state(session: Session, key: str) -> Any:
    return session.scalar(select(PlatformState.value).where(PlatformState.key == key))


def setdefault_state(session: Session, key: str, value: Any) -> Any:
    """The stored value of `key`, storing `value` first when there is none.

    The first writer wins, so workers that race to create the same fact (a generated secret)
    all end up with one value instead of each keeping its own."""
    stmt = insert(PlatformState).values(key=key, value=value)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
    return get_state(session, key)


def set_state(session: Session, key: str, value: Any) -> None:
    stmt = insert(PlatformState).values(key=key, value=value)
    session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

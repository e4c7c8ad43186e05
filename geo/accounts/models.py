"""The staff accounts' tables, owned by `geo/` like departments and keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from geo.db import Base
from geo.models import Department


class Account(Base):
    """A person of a department, with that department's roles (viewer, editor, admin).

    Only the argon2id hash of the password is kept (geo.accounts.passwords). Accounts are never
    deleted, only disabled, so the audit trail keeps naming someone who existed."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    # Set when an administrator chose the password (creation, reset): every request but the
    # password change is refused until the person picks their own.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, server_default=text("true"), default=True
    )
    failed_signins: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_signin_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    department: Mapped[Department] = relationship()


class AccountSession(Base):
    """A signed-in browser. The cookie's token is random (256 bits); only its SHA-256 is kept,
    so whoever reads the table or a backup cannot sign in with it."""

    __tablename__ = "account_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # The absolute end (GEO_SESSION_LIFETIME_HOURS after sign-in), however busy the session.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

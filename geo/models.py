"""Platform tables owned by `geo/`: departments and their API keys (the audit trail's are in
geo.audit.models)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, String, false, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from geo.db import Base

ROLES = ("admin", "editor", "viewer")


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # May write the standard address library (addressbook.lifecycle, imports). Set by the
    # platform administrator; the platform department counts as one whatever this says.
    address_authority: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    keys: Mapped[list[ApiKey]] = relationship(back_populates="department")


class ApiKey(Base):
    """A key is shown once; we keep its SHA-256 (keys are 256-bit random, so a slow hash adds
    nothing but latency on every request) and a short prefix people can recognise it by."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Past it the key is refused with a 401 naming the expiry; NULL: it never expires.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the key reaches (geo.auth.key_scope): "platform" for the platform administrator's
    # admin keys, "department" for every other key, which acts within its own department.
    scope: Mapped[str] = mapped_column(
        String(16), server_default=text("'department'"), default="department"
    )
    # A read-only key never writes, whatever its role (geo.auth.principal).
    read_only: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    # Installed from GEO_ADMIN_KEY: a new value revokes the bootstrap keys installed before it.
    bootstrap: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)

    department: Mapped[Department] = relationship(back_populates="keys")

"""The proposals table: what an editor proposed, what the checks found, and the decision.

A proposal keeps the fields as proposed (areas by name or code, elements as written, the
location already in EPSG:4490), the standard form and code they would publish as when
submitted, and the address's version then (`base_version`): approving a change or retirement
of an address changed since is refused rather than overwriting the newer version unseen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base

KINDS: Final = ("create", "change", "retire")
STATUSES: Final = ("pending", "approved", "rejected")


class AddressProposal(Base):
    __tablename__ = "address_proposals"
    __table_args__ = (
        CheckConstraint("kind IN ('create', 'change', 'retire')", name="ck_proposals_kind"),
        CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name="ck_proposals_status"
        ),
        # Queues: a status (pending, mostly) by district, oldest first; counts by district.
        Index("ix_address_proposals_queue", "status", "district_code", "id"),
        # A department's own proposals (what a non-reviewer may list).
        Index("ix_address_proposals_department", "department_code", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(10), server_default="pending")
    # The address changed or retired; for a new address, the one published on approval.
    address_id: Mapped[int | None] = mapped_column(BigInteger)
    base_version: Mapped[int | None] = mapped_column(Integer)
    district_code: Mapped[str] = mapped_column(String(12))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB)
    standard: Mapped[str | None] = mapped_column(String(400))
    code: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(String(500))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    department_code: Mapped[str] = mapped_column(String(64))
    # Who proposed and who decided, as the library names its editors (lifecycle.actor).
    proposed_by: Mapped[str] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_by: Mapped[str | None] = mapped_column(String(140))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(500))

"""The layer catalogue table: one row per department layer (an OGC API collection).

The features themselves live in one table per layer in the ``layerdata`` schema, made at runtime
by :mod:`layers.storage`; only this catalogue belongs to the platform's Alembic-managed schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base

ACCESS_LEVELS = ("public", "shared", "private")


class Layer(Base):
    __tablename__ = "layers"
    __table_args__ = (Index("ix_layers_owner", "owner"),)

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(ARRAY(String(100)), server_default="{}")
    geometry_type: Mapped[str] = mapped_column(String(20))
    # [{"name", "type", "required", "title"}], in column order; see layers.schema.
    properties: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    # The property upserts match on unless an upload names another one.
    key_property: Mapped[str | None] = mapped_column(String(63))
    access: Mapped[str] = mapped_column(String(10), server_default="private")
    shared_with: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    owner: Mapped[str] = mapped_column(String(64))
    # Table name inside the layerdata schema (unquoted); the history table adds "__history".
    table_name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(String(64))

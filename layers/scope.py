"""Grants (分级授权): the table, and which grant, if any, lets a department read a layer.

A grant gives one department, or every department (``grantee`` NULL: government-internal, not
public), one level on one layer: ``view`` (features, tiles, overlay, identify, history),
``download`` (view plus export) or ``edit`` (download plus feature edits). It may be narrowed
to an area (an admin area code or a polygon: the grantee sees only features intersecting it),
to some attributes (the others are withheld everywhere), and by an expiry date.

The rules are borrowed from GeoServer GeoFence's per-user rules (a rule matches a user, a layer
and an access level, and may carry an area and allowed attributes), kept simpler: the caller's
own department's grants go before grants to every department, and among those the widest one
applies (no area before an area, every attribute before some, the highest level, the newest),
so one grant, named in the audit entry, decides what a request sees. Grants never add up.

This module only reads grants; :mod:`layers.grants` creates and revokes them. The catalogue
turns the chosen grant into the caller's :class:`geo.sources.LayerSource` (`scope_of`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import shapely
from geoalchemy2 import Geometry
from geoalchemy2.shape import to_shape
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    case,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo.db import Base
from geo.sources import Scope
from layers.schema import quote_ident

# In rising order: each level includes the ones before it.
LEVELS = ("view", "download", "edit")
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS, 1)}
# Grants made by the catalogue for the departments of a layer's `shared_with` list.
ORIGINS = ("grant", "shared_with")
AREA_SRID = 4326
STORAGE_SRID = 4490


class Grant(Base):
    __tablename__ = "layer_grants"
    __table_args__ = (
        Index("ix_layer_grants_layer", "layer_id"),
        Index("ix_layer_grants_grantee", "grantee"),
        CheckConstraint("level IN ('view', 'download', 'edit')", name="ck_layer_grants_level"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer_id: Mapped[str] = mapped_column(String(50), ForeignKey("layers.id", ondelete="CASCADE"))
    # A department code; NULL for every department (government-internal, never anonymous).
    grantee: Mapped[str | None] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(10))
    area_code: Mapped[str | None] = mapped_column(String(12))
    # The area as given (EPSG:4326), and in the layers' storage CRS, which every query reads.
    area: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=AREA_SRID, spatial_index=False), nullable=True
    )
    area_storage: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=STORAGE_SRID, spatial_index=False), nullable=True
    )
    # The attributes the grantee may see; NULL for all of them.
    attributes: Mapped[list[str] | None] = mapped_column(ARRAY(String(63)))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    # The access request (layers.requests) this grant answers, if any.
    request_id: Mapped[int | None] = mapped_column(BigInteger)
    origin: Mapped[str] = mapped_column(String(12), server_default="grant")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(String(64))
    # Revoked grants stay: audit entries name them.
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(64))

    def active(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def area_geojson(self) -> dict[str, Any] | None:
        if self.area is None:
            return None
        shape = to_shape(self.area)
        return dict(shapely.geometry.mapping(shape))

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "collection": self.layer_id,
            "grantee": self.grantee,
            "level": self.level,
            "area_code": self.area_code,
            "area": self.area_geojson() if self.area_code is None else None,
            "attributes": list(self.attributes) if self.attributes is not None else None,
            "expires_at": iso(self.expires_at),
            "note": self.note,
            "request_id": self.request_id,
            "origin": self.origin,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "revoked_at": iso(self.revoked_at),
            "revoked_by": self.revoked_by,
            "active": self.active(),
        }


def _in_force(now: datetime) -> Any:
    return (Grant.revoked_at.is_(None)) & (Grant.expires_at.is_(None) | (Grant.expires_at > now))


def _level_at_least(need: str) -> Any:
    return Grant.level.in_([lv for lv in LEVELS if LEVEL_RANK[lv] >= LEVEL_RANK[need]])


# The widest grant first (module docstring).
_PRECEDENCE = (
    Grant.grantee.is_(None),
    Grant.area_storage.isnot(None),
    Grant.attributes.isnot(None),
    case({lv: -rank for lv, rank in LEVEL_RANK.items()}, value=Grant.level),
    Grant.id.desc(),
)


def applicable(
    session: Session, department: str | None, layer_ids: list[str], need: str = "view"
) -> dict[str, Grant]:
    """The grant each layer is read through by ``department`` at level ``need`` or above
    (layers without one are absent). Anonymous callers hold no grants."""
    if department is None or not layer_ids:
        return {}
    stmt = (
        select(Grant)
        .where(
            Grant.layer_id.in_(layer_ids),
            or_(Grant.grantee == department, Grant.grantee.is_(None)),
            _in_force(datetime.now(UTC)),
            _level_at_least(need),
        )
        .order_by(Grant.layer_id, *_PRECEDENCE)
    )
    chosen: dict[str, Grant] = {}
    for grant in session.scalars(stmt):
        chosen.setdefault(grant.layer_id, grant)
    return chosen


def granted_layer_ids(department: str | None) -> Any:
    """A subquery of the layers ``department`` holds a grant in force on (catalogue listings)."""
    return select(Grant.layer_id).where(
        or_(Grant.grantee == department, Grant.grantee.is_(None)),
        _in_force(datetime.now(UTC)),
    )


def area_predicate(grant_id: int, geometry_column: str) -> str:
    """SQL keeping the rows whose geometry intersects the grant's area.

    The area is read from the grant's row by a scalar subquery, which PostgreSQL runs once per
    statement (an InitPlan) and hands to the outer query as a parameter: the layer's GiST index
    serves ``geom && $area`` exactly as for a bound geometry (tests/test_grants_scope.py checks the
    plan), PostGIS caches the prepared polygon across rows, and the statement text stays small
    and the same for every request of that grant, so the tile server prepares it once. The grant
    id is an integer written by the service, never request text.
    """
    return (
        f"ST_Intersects({quote_ident(geometry_column)}, "
        f"(SELECT g.area_storage FROM {Grant.__tablename__} g WHERE g.id = {int(grant_id)}))"
    )


def intersects_area(session: Session, grant_id: int, ewkb_hex: str) -> bool:
    """Whether a geometry (hex EWKB in the storage CRS) intersects the grant's area."""
    found = session.execute(
        select(
            func.ST_Intersects(
                func.ST_GeomFromEWKB(func.decode(ewkb_hex, "hex")), Grant.area_storage
            )
        ).where(Grant.id == grant_id)
    ).scalar_one_or_none()
    return bool(found)


def scope_of(grant: Grant, properties: list[str], geometry_column: str) -> Scope:
    hidden = (
        ()
        if grant.attributes is None
        else tuple(n for n in properties if n not in set(grant.attributes))
    )
    area = area_predicate(grant.id, geometry_column) if grant.area_storage is not None else None
    return Scope(grant.id, grant.level, area, hidden, grant.expires_at)

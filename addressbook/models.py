"""Tables of the address library: admin areas, grids, standard addresses, aliases, history,
named places.

Admin areas carry their 12-digit statistical codes with validity dates, because codes change
(the 2016 and 2023 township lists disagree on about 25): a code is a fact about a period, not a
name. Addresses keep the admin codes of their district, subdistrict, community and grid, so
"which grid is this in" is a column, not a spatial query, once an address is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Final, cast

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.db import Base

SRID = 4490
# Levels of the hierarchy, shallow to deep; match levels reported by the geocoder use the same
# names (DESIGN.md: district ... room).
AREA_LEVELS = ("province", "city", "district", "subdistrict", "community")
# The elements of an address below its admin areas, as the standard form writes them (街路巷
# 门牌号 小区 楼栋 单元 户室): the columns of `addresses`, of an import file, of an edit and of a
# parse. Declared once here; the importer, the edits, the geocoder and the scorer read it.
ELEMENTS: Final = ("road", "house_number", "compound", "building", "unit", "room")


class AdminArea(Base):
    __tablename__ = "admin_areas"
    __table_args__ = (
        UniqueConstraint("code", "valid_from", name="uq_admin_areas_code_valid_from"),
        Index("ix_admin_areas_parent_code", "parent_code"),
        Index("ix_admin_areas_level_name", "level", "name"),
        Index(
            "ix_admin_areas_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), index=True)
    # The place name written in addresses (花园路社区); `official_name` is the statistical
    # table's wording, which names the committee (花园路社区居委会).
    name: Mapped[str] = mapped_column(String(100))
    official_name: Mapped[str | None] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(String(12))
    # 街道/镇/乡/社区/村...: what kind of area within its level.
    kind: Mapped[str | None] = mapped_column(String(16))
    # 统计用城乡分类代码 (111 main urban area ... 220 village), from the divisions table.
    urban_rural: Mapped[str | None] = mapped_column(String(3))
    valid_from: Mapped[date] = mapped_column(Date, server_default=text("'2016-07-31'"))
    valid_to: Mapped[date | None] = mapped_column(Date)
    # The area that took over when this one was superseded (a new code for the same place).
    successor_code: Mapped[str | None] = mapped_column(String(12))
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=SRID, spatial_index=True), nullable=True
    )
    centroid: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=SRID, spatial_index=True), nullable=True
    )
    source: Mapped[str | None] = mapped_column(String(200))
    # Derived outlines: drawn around a location on record ('recorded') or around a generated
    # point where the records give none ('spread', an estimate); NULL for real boundaries.
    placement: Mapped[str | None] = mapped_column(String(8))


class Grid(Base):
    """网格: the unit of grid-based city management, inside one community."""

    __tablename__ = "grids"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    community_code: Mapped[str | None] = mapped_column(String(12), index=True)
    staff_name: Mapped[str | None] = mapped_column(String(100))
    staff_phone: Mapped[str | None] = mapped_column(String(50))
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=True))
    # Where the grid came from (a file name, or 'demo'): re-importing a source replaces its grids.
    source: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Address(Base):
    """A standard address (标准地址) at the deepest level it has, down to the room."""

    __tablename__ = "addresses"
    __table_args__ = (
        # Text similarity reaches addresses through their road or compound names (the small
        # trigram-indexed address_names); only rows with neither, which no name leads to, need
        # their full form indexed. A GIN over every full form would be half a bulk import.
        Index(
            "ix_addresses_unnamed_trgm",
            "full_address",
            postgresql_using="gin",
            postgresql_ops={"full_address": "gin_trgm_ops"},
            postgresql_where=text("road IS NULL AND compound IS NULL"),
        ),
        Index(
            "ix_addresses_structured",
            "district_code",
            "road",
            "house_number",
            "building",
            "unit",
            "room",
        ),
        Index("ix_addresses_compound", "district_code", "compound", "building", "unit", "room"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Codes and elements compare byte-wise (collation "C"): equality is the same as under the
    # database's C.UTF-8, but sorts and btree builds use abbreviated keys and run several
    # times faster, which the bulk import's index rebuild needs; prefix LIKE can use the btrees.
    code: Mapped[str] = mapped_column(String(40, collation="C"), unique=True)
    district_code: Mapped[str | None] = mapped_column(String(12, collation="C"))
    subdistrict_code: Mapped[str | None] = mapped_column(String(12, collation="C"), index=True)
    community_code: Mapped[str | None] = mapped_column(String(12, collation="C"), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(32, collation="C"), index=True)
    road: Mapped[str | None] = mapped_column(String(100, collation="C"))
    house_number: Mapped[str | None] = mapped_column(String(20, collation="C"))
    compound: Mapped[str | None] = mapped_column(String(100, collation="C"))
    building: Mapped[str | None] = mapped_column(String(20, collation="C"))
    unit: Mapped[str | None] = mapped_column(String(20, collation="C"))
    room: Mapped[str | None] = mapped_column(String(20, collation="C"))
    # The standard full form, 天津市河西区友谊路街道...友谊路32号...1号楼2单元301室.
    full_address: Mapped[str] = mapped_column(String(400))
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True))
    status: Mapped[str] = mapped_column(String(10), server_default="active")
    successor_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_by: Mapped[str | None] = mapped_column(String(64))


# The widths of the element columns, read from the table itself: imports and edits check them
# to name the element that is too long, before the database could only say that some value is.
ELEMENT_WIDTHS: Final[Mapping[str, int]] = MappingProxyType(
    {name: int(cast(String, Address.__table__.c[name].type).length or 0) for name in ELEMENTS}
)


class AddressAlias(Base):
    """Another name for a road, a compound or one address (old names, nicknames)."""

    __tablename__ = "address_aliases"
    __table_args__ = (
        UniqueConstraint("kind", "alias", "canonical", "district_code", name="uq_address_aliases"),
        Index("ix_address_aliases_alias", "alias"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # road | compound | address
    alias: Mapped[str] = mapped_column(String(200))
    canonical: Mapped[str] = mapped_column(String(200))
    district_code: Mapped[str | None] = mapped_column(String(12))
    address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id", ondelete="CASCADE"))
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AddressHistory(Base):
    """Every previous version of every address, as it was, and who changed it."""

    __tablename__ = "address_history"
    __table_args__ = (Index("ix_address_history_address_version", "address_id", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address_id: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # create | update | retire | rename
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    changed_by: Mapped[str | None] = mapped_column(String(64))


class AddressName(Base):
    """The names the parser and the suggester know: one row per (kind, name, district).

    Maintained by imports and edits, so a road is recognised the moment it is imported, and
    searchable by prefix, full pinyin and pinyin initials without scanning millions of addresses.
    """

    __tablename__ = "address_names"
    __table_args__ = (
        UniqueConstraint("kind", "name", "district_code", name="uq_address_names"),
        Index("ix_address_names_name_prefix", "name", postgresql_ops={"name": "text_pattern_ops"}),
        Index(
            "ix_address_names_pinyin_prefix",
            "pinyin",
            postgresql_ops={"pinyin": "text_pattern_ops"},
        ),
        Index(
            "ix_address_names_initials_prefix",
            "initials",
            postgresql_ops={"initials": "text_pattern_ops"},
        ),
        Index(
            "ix_address_names_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(
        String(16)
    )  # district | subdistrict | community | road | compound
    name: Mapped[str] = mapped_column(String(200))
    district_code: Mapped[str | None] = mapped_column(String(12))
    area_code: Mapped[str | None] = mapped_column(String(12))
    pinyin: Mapped[str] = mapped_column(String(400))
    initials: Mapped[str] = mapped_column(String(100))
    # How many addresses use the name: ranks suggestions.
    weight: Mapped[int] = mapped_column(Integer, server_default="0")
    centroid: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=SRID, spatial_index=False), nullable=True
    )


# The kinds of named places (地名 / 兴趣点), as the README lists them; the table's CHECK holds
# the same list.
PLACE_CATEGORIES: Final = (
    "government",
    "school",
    "hospital",
    "station",
    "park",
    "compound",
    "commercial",
    "other",
)


class Place(Base):
    """A named place (天津站, 南开大学, a residents' committee office): what people search for by
    name rather than by address. Its admin areas and grid are derived from its point on write,
    as an address's are; `address_id` links the standard address it stands at, when known."""

    __tablename__ = "places"
    __table_args__ = (
        CheckConstraint(
            "category IN (" + ", ".join(f"'{c}'" for c in PLACE_CATEGORIES) + ")",
            name="ck_places_category",
        ),
        Index(
            "ix_places_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    # Short names and former names (南大, 天津火车站), searched like the name.
    aliases: Mapped[list[str]] = mapped_column(
        ARRAY(String(100)), server_default=text("'{}'::varchar[]")
    )
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=True))
    outline: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=True
    )
    address_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("addresses.id", ondelete="SET NULL")
    )
    district_code: Mapped[str | None] = mapped_column(String(12), index=True)
    subdistrict_code: Mapped[str | None] = mapped_column(String(12))
    community_code: Mapped[str | None] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(32))
    # The file (or 'demo') it came from: importing a source again replaces its places.
    source: Mapped[str] = mapped_column(String(200), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

"""Importing named places: every row checked, a report per row, all or nothing unless
`skip_invalid`, in the caller's transaction; the address authority's to do, as the addresses
are.

A file is a source (its name, or 'demo'): importing a source again replaces its places, so an
operator corrects a list by importing it again. Each place's admin areas are those whose
outlines contain its point (addressbook.areas.coverage.areas_at, as reverse geocoding finds
them) and its grid the one containing it (the grid lookup of /grids/at). The write bumps the
"places" data version (tiles and caches of the `places` collection) and the place spellings the
suggester and the geocoder read (address_names, the gazetteer's snapshot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas import coverage
from addressbook.areas.grids import GRID_AT_SQL
from addressbook.geocoding import gazetteer, names
from addressbook.lifecycle import require_authority
from addressbook.models import PLACE_CATEGORIES, Place
from addressbook.places.read import Row
from geo import audit, versions
from geo.auth import Principal
from geo.crs import STORAGE_CRS, resolve, transform
from geo.errors import ApiError
from geo.extent import city_point

MAX_ALIASES: Final = 20
NAME_WIDTH: Final = 100
MAX_REPORTED: Final = 200
# Two places of one name closer than this (degrees, ~1 cm) stand at the same point.
SAME_POINT: Final = 1e-7


@dataclass
class PlaceReport:
    source: str
    rows: int = 0
    imported: int = 0
    replaced: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "imported": self.imported,
            "replaced": self.replaced,
            "skipped": self.skipped,
            "errors": self.errors[:MAX_REPORTED],
        }


@dataclass(frozen=True)
class Checked:
    """A row ready to store (EPSG:4490)."""

    line: int
    category: str
    name: str
    aliases: tuple[str, ...]
    x: float
    y: float
    outline: str | None  # WKT MultiPolygon
    address_id: int | None
    codes: dict[str, str | None]


class RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _outline(value: str, crs: str) -> BaseGeometry:
    try:
        shape = shapely.from_geojson(value) if value.lstrip().startswith("{") else None
        shape = shape if shape is not None else shapely.from_wkt(value)
    except shapely.errors.GEOSException as exc:
        raise RowError("outline", f"not a WKT or GeoJSON geometry: {exc}") from exc
    if shape.geom_type == "Polygon":
        shape = shapely.MultiPolygon([shape])
    if shape.geom_type != "MultiPolygon" or shape.is_empty:
        raise RowError("outline", f"an outline is a polygon, not a {shape.geom_type}")
    if not shape.is_valid:
        raise RowError("outline", "the outline is not a valid polygon (it crosses itself?)")
    moved: BaseGeometry = transform(shape, crs, STORAGE_CRS)
    return moved


def _point(row: Row, crs: str, outline: BaseGeometry | None) -> tuple[float, float]:
    if row.lon is None and row.lat is None and outline is not None:
        inside = outline.point_on_surface()
        return city_point(inside.x, inside.y, STORAGE_CRS)
    try:
        lon, lat = float(row.lon), float(row.lat)
    except (TypeError, ValueError) as exc:
        raise RowError("lon", f"lon/lat must be numbers, got {row.lon!r}, {row.lat!r}") from exc
    try:
        return city_point(lon, lat, crs)
    except ApiError as exc:
        raise RowError("lon", exc.message) from exc


def _codes(session: Session, x: float, y: float) -> dict[str, str | None]:
    found = coverage.by_level(coverage.areas_at(session, x, y))
    if "district" not in found:
        raise RowError("lon", f"the point {x:.6f}, {y:.6f} lies outside every district of 天津市")
    codes = {f"{level}_code": found.get(level, {}).get("code") for level in coverage.LEVELS[:3]}
    codes["grid_code"] = session.execute(text(GRID_AT_SQL), {"x": x, "y": y}).scalar()
    return codes


def _check(session: Session, row: Row, crs: str, addresses: dict[str, int]) -> Checked:
    if row.category not in PLACE_CATEGORIES:
        raise RowError(
            "category",
            f"unknown category {row.category!r}: one of {', '.join(PLACE_CATEGORIES)}",
        )
    if not row.name:
        raise RowError("name", "a place needs a name")
    for value in (row.name, *row.aliases):
        if len(value) > NAME_WIDTH:
            raise RowError("name", f"{value[:20]!r}... is longer than {NAME_WIDTH} characters")
    if len(row.aliases) > MAX_ALIASES:
        raise RowError("aliases", f"{len(row.aliases)} aliases; at most {MAX_ALIASES}")
    outline = _outline(row.outline, crs) if row.outline else None
    x, y = _point(row, crs, outline)
    address_id = None
    if row.address_code is not None:
        address_id = addresses.get(row.address_code)
        if address_id is None:
            raise RowError("address_code", f"no address has the code {row.address_code!r}")
    return Checked(
        line=row.line,
        category=row.category,
        name=row.name,
        aliases=tuple(a for a in row.aliases if a != row.name),
        x=x,
        y=y,
        outline=outline.wkt if outline is not None else None,
        address_id=address_id,
        codes=_codes(session, x, y),
    )


def _addresses(session: Session, rows: Sequence[Row]) -> dict[str, int]:
    codes = sorted({r.address_code for r in rows if r.address_code})
    if not codes:
        return {}
    found = session.execute(
        text("SELECT code, id FROM addresses WHERE code = ANY(:codes)"), {"codes": codes}
    ).tuples()
    return {code: int(id_) for code, id_ in found}


def _others(session: Session, source: str, rows: Sequence[Checked]) -> dict[str, list[Any]]:
    """Places of other sources with the names of `rows`: name -> [(x, y)] (ix_places_name_trgm
    does not serve equality; the few rows per name come from a scan of a small table)."""
    found: dict[str, list[Any]] = {}
    names_ = sorted({r.name for r in rows})
    if not names_:
        return found
    for name, x, y in session.execute(
        text(
            "SELECT name, ST_X(geom), ST_Y(geom) FROM places "
            "WHERE source <> :source AND name = ANY(:names)"
        ),
        {"source": source, "names": names_},
    ).tuples():
        found.setdefault(name, []).append((x, y))
    return found


def _duplicates(session: Session, source: str, rows: list[Checked]) -> dict[int, str]:
    """Rows naming a place already at the same point (earlier in the file or stored)."""
    out: dict[int, str] = {}
    seen: dict[str, list[Checked]] = {}
    stored = _others(session, source, rows)
    for row in rows:
        for other in seen.get(row.name, ()):
            if abs(other.x - row.x) < SAME_POINT and abs(other.y - row.y) < SAME_POINT:
                out[row.line] = f"{row.name} is already at this point (line {other.line})"
        for x, y in stored.get(row.name, ()):
            if abs(x - row.x) < SAME_POINT and abs(y - row.y) < SAME_POINT:
                out[row.line] = f"{row.name} is already at this point (another source)"
        seen.setdefault(row.name, []).append(row)
    return out


_INSERT: Final = f"""
INSERT INTO {Place.__tablename__} (category, name, aliases, geom, outline, address_id,
    district_code, subdistrict_code, community_code, grid_code, source)
VALUES (:category, :name, CAST(:aliases AS varchar[]), ST_SetSRID(ST_MakePoint(:x, :y), 4490),
    ST_GeomFromText(CAST(:outline AS text), 4490), :address_id, :district_code,
    :subdistrict_code, :community_code, :grid_code, :source)
"""


def import_places(
    session: Session,
    rows: Sequence[Row],
    source: str,
    who: Principal,
    crs: str = "CRS84",
    skip_invalid: bool = False,
) -> PlaceReport:
    """Check every row, then (all valid, or `skip_invalid`) replace the source's places."""
    require_authority(session, who)
    crs = resolve(crs).id
    report = PlaceReport(source=source, rows=len(rows))
    addresses = _addresses(session, rows)
    checked: list[Checked] = []
    for row in rows:
        try:
            checked.append(_check(session, row, crs, addresses))
        except RowError as exc:
            report.errors.append({"line": row.line, "field": exc.field, "message": exc.message})
    duplicates = _duplicates(session, source, checked)
    report.errors += [
        {"line": line, "field": "name", "message": message} for line, message in duplicates.items()
    ]
    report.errors.sort(key=lambda e: int(e["line"]))
    good = [r for r in checked if r.line not in duplicates]
    if report.errors and not skip_invalid:
        raise ApiError(
            400,
            "InvalidPlaces",
            f"{len(report.errors)} of {len(rows)} rows are invalid (the first on line "
            f"{report.errors[0]['line']}: {report.errors[0]['message']}); nothing was imported",
            {"errors": report.errors[:MAX_REPORTED], "invalid": len(report.errors)},
        )
    report.skipped = len(rows) - len(good)
    report.replaced = len(
        session.execute(
            text(f"DELETE FROM {Place.__tablename__} WHERE source = :source RETURNING id"),
            {"source": source},
        ).all()
    )
    if good:
        session.execute(
            text(_INSERT),
            [
                {
                    "category": r.category,
                    "name": r.name,
                    "aliases": list(r.aliases),
                    "x": r.x,
                    "y": r.y,
                    "outline": r.outline,
                    "address_id": r.address_id,
                    **r.codes,
                    "source": source,
                }
                for r in good
            ],
        )
    report.imported = len(good)
    names.refresh_places(session)
    versions.bump(session, "places")
    versions.bump(session, "address_names")
    gazetteer.expire()
    audit.record(
        session,
        who,
        "places.import",
        f"places/{source}",
        {k: v for k, v in report.as_dict().items() if k != "errors"},
    )
    return report

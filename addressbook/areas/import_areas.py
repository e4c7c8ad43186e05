"""Admin areas from the statistical divisions table, the 2023 township list and district fences.

The divisions table (2016) gives every level down to 社区/村 with 12-digit codes and, for some
rows, a GCJ-02 centroid; the 2023 township list gives the codes in force since 2023-06; the fences
give real polygons for the 16 districts only. The import turns that into one table with code
history (valid_from / valid_to), converts everything to the storage CRS through geo.crs, and
derives approximate polygons for the levels that have none (see
:mod:`addressbook.areas.import_derived`).

Re-importing replaces the whole admin area table in the caller's transaction: the areas are one
dataset, and a half-replaced hierarchy would be worse than either version.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from addressbook.areas.area import DATA, DIVISIONS, Area
from addressbook.areas.import_derived import derive_polygons
from addressbook.geocoding import names
from addressbook.models import AdminArea
from geo import versions
from geo.crs import STORAGE_CRS, transform, transform_xy
from geo.errors import ApiError
from geo.text_files import detect_file

TOWNSHIPS = DATA / "townships_2023.csv"
BOUNDARIES = DATA / "districts_gcj02.geojson"
BOUNDARIES_CRS = "GCJ02"
VALID_2023 = date(2023, 6, 1)
PROVINCE_CODE = "120000000000"

_DIVISION_COLUMNS = ("code", "parent", "name", "level", "ur_code", "longitude_gcj02")
_TOWNSHIP_COLUMNS = ("code", "name", "areaCode")
_LEVELS = {"province": "province", "county": "district", "town": "subdistrict"}


# --- names and kinds ----------------------------------------------------------------------------

_COMMITTEE = (
    (re.compile(r"村?农工商联合公司（村委会）$"), "村"),
    (re.compile(r"村?村民委员会$|村?村委会$"), "村"),
    (re.compile(r"(?:社区)?(?:居民委员会|居委会|居委|委员会|家委会|工作站)$|社居委会$"), "社区"),
    (re.compile(r"(居民委员会|居委会)$"), "社区"),
)


def community_name(official: str) -> str:
    """The place name of a 居委会/村委会: what people write in an address."""
    for pattern, replacement in _COMMITTEE:
        if pattern.search(official):
            stripped = pattern.sub("", official)
            # 官港社区第一居委会 -> 官港社区第一社区 would be odd: keep the stem then.
            return (
                stripped if replacement == "社区" and "社区" in stripped else stripped + replacement
            )
    return official


def community_kind(name: str) -> str:
    if "虚拟" in name:
        return "虚拟社区"
    for kind in ("村", "社区", "生活区"):
        if name.endswith(kind):
            return kind
    return "其他"


def subdistrict_name(official: str) -> str:
    return official.removesuffix("办事处") if official.endswith("街道办事处") else official


def subdistrict_kind(name: str) -> str:
    for kind in ("街道", "镇", "乡", "农场"):
        if name.endswith(kind):
            return kind
    return "功能区"  # 开发区, 工业园区, 保税区...: administered like a subdistrict


def _stem(name: str) -> str:
    """What survives a change of kind or spelling: 双环村街道 / 双环邨街道 -> 双环村."""
    stem = re.sub(r"(街道办事处|街道|满族乡|镇|乡)$", "", name)
    return stem.replace("邨", "村")


# --- reading ------------------------------------------------------------------------------------


def _read_csv(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    try:
        encoding = detect_file(path, f"{what} {path.name}").codec
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except (OSError, pd.errors.ParserError) as exc:
        raise ApiError(400, "InvalidFile", f"{what} {path}: {exc}") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ApiError(
            400,
            "MissingColumns",
            f"{what} {path.name} lacks column(s): {', '.join(missing)}",
            {"missing": missing},
        )
    return frame


def _centroids(frame: pd.DataFrame) -> np.ndarray:
    """GCJ-02 centroids of the table, as storage-CRS points (None where the table has none)."""
    lon = pd.to_numeric(frame["longitude_gcj02"], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(frame["latitude_gcj02"], errors="coerce").to_numpy(dtype=np.float64)
    known = np.isfinite(lon) & np.isfinite(lat)
    x, y = transform_xy(lon[known], lat[known], "GCJ02", STORAGE_CRS)
    points = np.full(len(frame), None, dtype=object)
    points[known] = shapely.points(x, y)
    return points


def read_divisions(path: Path = DIVISIONS) -> list[Area]:
    frame = _read_csv(path, _DIVISION_COLUMNS, "divisions table")
    centroids = _centroids(frame)
    areas: list[Area] = []
    city_codes = set(frame.loc[frame["level"] == "city", "code"])
    for row, centroid in zip(frame.itertuples(index=False), centroids, strict=True):
        if row.level == "city":
            continue  # 市辖区 is a statistical device, not a place: districts hang off 天津市
        parent = PROVINCE_CODE if row.parent in city_codes else row.parent
        kind: str | None
        if row.level == "village":
            name = community_name(row.name)
            level, kind = "community", community_kind(name)
        elif row.level in _LEVELS:
            level = _LEVELS[row.level]
            name = subdistrict_name(row.name) if level == "subdistrict" else row.name
            kind = subdistrict_kind(name) if level == "subdistrict" else None
        else:
            raise ApiError(400, "InvalidFile", f"divisions table: unknown level {row.level!r}")
        areas.append(
            Area(
                code=row.code,
                name=name,
                level=level,
                parent_code=parent or None,
                official_name=row.name,
                kind=kind,
                urban_rural=row.ur_code or None,
                centroid=centroid,
                source=path.name,
            )
        )
    return areas


# --- code history -------------------------------------------------------------------------------


def apply_townships(areas: list[Area], path: Path = TOWNSHIPS) -> None:
    """Add the 2023 township versions and close the 2016 ones they supersede (in place)."""
    frame = _read_csv(path, _TOWNSHIP_COLUMNS, "township list")
    old = {a.code: a for a in areas if a.level == "subdistrict"}
    new_codes: set[str] = set()
    added: list[Area] = []
    for row in frame.itertuples(index=False):
        code = row.code.ljust(12, "0")
        parent = row.areaCode.ljust(12, "0")
        name = subdistrict_name(row.name)
        new_codes.add(code)
        before = old.get(code)
        if before and before.parent_code == parent and before.name == name:
            continue
        area = Area(
            code=code,
            name=name,
            level="subdistrict",
            parent_code=parent,
            official_name=row.name,
            kind=subdistrict_kind(name),
            urban_rural=before.urban_rural if before else None,
            valid_from=VALID_2023,
            centroid=before.centroid if before else None,
            source=path.name,
        )
        if before:
            before.valid_to, before.successor_code = VALID_2023, code
        added.append(area)
    fresh = [a for a in added if a.code not in old]
    for gone in (a for a in old.values() if a.code not in new_codes):
        gone.valid_to = VALID_2023
        successor = _successor(gone, fresh)
        if successor:
            gone.successor_code = successor.code
            if successor.centroid is None:
                successor.centroid = gone.centroid
    areas.extend(added)
    _carry_communities(areas)


def _successor(gone: Area, fresh: list[Area]) -> Area | None:
    """The new township continuing a vanished one: same name stem, the same district first."""
    stem = _stem(gone.name)

    def related(a: Area) -> bool:
        other = _stem(a.name)
        return len(min(stem, other, key=len)) >= 2 and (
            other.startswith(stem) or stem.startswith(other)
        )

    candidates = [a for a in fresh if related(a)]
    same_district = [a for a in candidates if a.parent_code == gone.parent_code]
    chosen = same_district or candidates
    return chosen[0] if len(chosen) == 1 else None


def _carry_communities(areas: list[Area]) -> None:
    """Communities of a township that got a new code move to it as new versions."""
    moved = {
        a.code: a.successor_code
        for a in areas
        if a.level == "subdistrict" and a.successor_code and a.successor_code != a.code
    }
    carried = []
    for area in areas:
        if area.level == "community" and area.current and area.parent_code in moved:
            area.valid_to = VALID_2023
            carried.append(
                Area(
                    code=area.code,
                    name=area.name,
                    level="community",
                    parent_code=moved[area.parent_code],
                    official_name=area.official_name,
                    kind=area.kind,
                    urban_rural=area.urban_rural,
                    valid_from=VALID_2023,
                    centroid=area.centroid,
                    source=area.source,
                )
            )
    areas.extend(carried)


# --- boundaries ---------------------------------------------------------------------------------


def _multipolygon(geom: Any) -> MultiPolygon:
    """Polygons of any (repaired) geometry as one MultiPolygon, the column's type."""
    geom = shapely.make_valid(geom)
    parts = [
        p
        for p in shapely.get_parts(geom)
        if p.geom_type in ("Polygon", "MultiPolygon") and not p.is_empty
    ]
    polygons = [q for p in parts for q in shapely.get_parts(p)]
    return MultiPolygon(polygons)


def apply_boundaries(areas: list[Area], path: Path = BOUNDARIES, crs: str = BOUNDARIES_CRS) -> None:
    """Set the district polygons from a GeoJSON file of fences (matched by code, adcode or name)."""
    try:
        document = json.loads(path.read_bytes())
    except UnicodeDecodeError as exc:
        raise ApiError(400, "InvalidEncoding", f"boundaries {path.name} are not UTF-8") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ApiError(400, "InvalidFile", f"boundaries {path}: {exc}") from exc
    document = transform(document, crs, STORAGE_CRS)
    districts = [a for a in areas if a.level == "district" and a.current]
    by_key = {k: a for a in districts for k in (a.code, a.code[:6], a.name)}
    unmatched = []
    for index, feature in enumerate(document.get("features", [])):
        props = feature.get("properties") or {}
        keys = [str(props[k]) for k in ("code", "adcode", "name") if props.get(k)]
        area = next((by_key[k] for k in keys if k in by_key), None)
        if area is None or feature.get("geometry") is None:
            unmatched.append({"feature": index, "properties": props})
            continue
        area.geom = _multipolygon(shapely.geometry.shape(feature["geometry"]))
        area.source = path.name
    if unmatched:
        raise ApiError(
            400,
            "UnknownDistrict",
            f"{len(unmatched)} boundary feature(s) match no district by code, adcode or name",
            {"unmatched": unmatched[:20]},
        )
    province = next((a for a in areas if a.level == "province"), None)
    shapes = [a.geom for a in districts if a.geom is not None]
    if province and shapes:
        province.geom = _multipolygon(shapely.union_all(shapes))
        province.source = path.name


# --- writing ------------------------------------------------------------------------------------


def _row(area: Area) -> dict[str, Any]:
    return {
        "code": area.code,
        "name": area.name,
        "official_name": area.official_name,
        "level": area.level,
        "parent_code": area.parent_code,
        "kind": area.kind,
        "urban_rural": area.urban_rural,
        "valid_from": area.valid_from,
        "valid_to": area.valid_to,
        "successor_code": area.successor_code,
        "geom": from_shape(area.geom, srid=4490) if area.geom is not None else None,
        "centroid": from_shape(area.centroid, srid=4490) if area.centroid is not None else None,
        "source": area.source,
        "placement": area.placement,
    }


def build_areas(
    divisions: Path = DIVISIONS,
    townships: Path | None = TOWNSHIPS,
    boundaries: Path | None = BOUNDARIES,
    boundaries_crs: str = BOUNDARIES_CRS,
) -> list[Area]:
    areas = read_divisions(divisions)
    if townships is not None:
        apply_townships(areas, townships)
    if boundaries is not None:
        apply_boundaries(areas, boundaries, boundaries_crs)
        derive_polygons(areas)
    return areas


def import_areas(
    session: Session,
    divisions: Path = DIVISIONS,
    townships: Path | None = TOWNSHIPS,
    boundaries: Path | None = BOUNDARIES,
    boundaries_crs: str = BOUNDARIES_CRS,
) -> dict[str, int]:
    """Replace the admin areas; returns how many rows of each level are current."""
    areas = build_areas(divisions, townships, boundaries, boundaries_crs)
    session.execute(delete(AdminArea))
    session.execute(insert(AdminArea), [_row(a) for a in areas])
    names.refresh_areas(session)
    versions.bump(session, "admin_areas")
    counts: dict[str, int] = {"rows": len(areas)}
    for area in areas:
        if area.current:
            counts[area.level] = counts.get(area.level, 0) + 1
    counts["derived_polygons"] = sum(1 for a in areas if a.source == "derived-voronoi")
    return counts

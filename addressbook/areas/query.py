"""Reading admin areas: one area with its parents, children and code history; lists.

An area code is a fact about a period, so an area answers with the version in force (or its
last one, if the code was retired) and lists every version of the code it has carried.
"""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.models import AREA_LEVELS
from geo.crs import STORAGE_CRS, resolve, transform
from geo.errors import ApiError

_FIELDS = """code, name, official_name, level, kind, parent_code, urban_rural, valid_from,
             valid_to, successor_code, source"""


def _row(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    for key in ("valid_from", "valid_to"):
        if data.get(key) is not None:
            data[key] = data[key].isoformat()
    data["current"] = data.get("valid_to") is None
    return data


def geometry_json(wkb: bytes | None, crs: str) -> dict[str, Any] | None:
    if wkb is None:
        return None
    shape = shapely.from_wkb(bytes(wkb))
    return shapely.geometry.mapping(transform(shape, STORAGE_CRS, crs))


def get_area(
    session: Session, code: str, crs: str = "CRS84", geometry: bool = True
) -> dict[str, Any]:
    """The area's version in force (else its latest), parents, current children, history."""
    crs = resolve(crs).id
    versions = session.execute(
        text(
            f"""
            SELECT {_FIELDS}, ST_AsBinary(geom) AS geom, ST_AsBinary(centroid) AS centroid
            FROM admin_areas WHERE code = :code
            ORDER BY valid_to IS NULL DESC, valid_from DESC
            """
        ),
        {"code": code},
    ).all()
    if not versions:
        raise ApiError(404, "UnknownArea", f"no admin area has the code {code!r}", {"code": code})
    area = _row(versions[0])
    geom, centroid = area.pop("geom"), area.pop("centroid")
    area["parents"] = _parents(session, area["parent_code"])
    area["children"] = [
        _row(r)
        for r in session.execute(
            text(
                f"SELECT {_FIELDS} FROM current_admin_areas WHERE parent_code = :code ORDER BY code"
            ),
            {"code": code},
        )
    ]
    area["history"] = [
        {k: v for k, v in _row(r).items() if k not in ("geom", "centroid")} for r in versions
    ]
    area["centroid"] = geometry_json(centroid, crs)
    area["geometry"] = geometry_json(geom, crs) if geometry else None
    area["crs"] = crs
    return area


def _parents(session: Session, parent_code: str | None) -> list[dict[str, Any]]:
    """The chain up to 天津市, nearest first (current versions; codes do not loop)."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    while parent_code and parent_code not in seen:
        seen.add(parent_code)
        row = session.execute(
            text(
                "SELECT code, name, level, parent_code FROM admin_areas WHERE code = :c "
                "ORDER BY valid_to IS NULL DESC, valid_from DESC LIMIT 1"
            ),
            {"c": parent_code},
        ).first()
        if row is None:
            break
        chain.append({"code": row.code, "name": row.name, "level": row.level})
        parent_code = row.parent_code
    return chain


def list_areas(
    session: Session,
    level: str | None = None,
    parent: str | None = None,
    q: str | None = None,
    include_retired: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Areas by level, parent and name (substring, trigram index); current ones by default."""
    if level is not None and level not in AREA_LEVELS:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"level must be one of {', '.join(AREA_LEVELS)}, not {level!r}",
        )
    table = "admin_areas" if include_retired else "current_admin_areas"
    where = ["true"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if level:
        where.append("level = :level")
        params["level"] = level
    if parent:
        where.append("parent_code = :parent")
        params["parent"] = parent
    if q:
        # ix_admin_areas_name_trgm serves the substring match
        where.append("(name LIKE :q OR official_name LIKE :q OR code LIKE :prefix)")
        params["q"] = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params["prefix"] = q + "%"
    condition = " AND ".join(where)
    total = session.execute(
        text(f"SELECT count(*) FROM {table} WHERE {condition}"), params
    ).scalar_one()
    rows = session.execute(
        text(
            f"SELECT {_FIELDS} FROM {table} WHERE {condition} "
            "ORDER BY code, valid_from LIMIT :limit OFFSET :offset"
        ),
        params,
    )
    return {"areas": [_row(r) for r in rows], "numberMatched": total}

"""Feature writes (OGC API - Features Part 4) with optimistic locking and full history.

Every change first copies the row as it was into the layer's history table (same transaction),
then writes the new version with ``version + 1``; the version is the feature's ETag, so a client
holding an old ETag gets a 412 instead of overwriting someone else's edit. Single features go
through the same geometry and value checks as uploads (layers.ingest), so the rules cannot drift.

An ``edit`` grantee (layers.scope) edits through its grant's scope: features outside the grant's
area do not exist for it, new geometries must intersect the area, and withheld attributes are
neither shown, nor accepted, nor changed (they keep their values).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit, versions
from geo.auth import Principal
from geo.errors import ApiError
from geo.settings import get_settings
from geo.sources import Scope
from layers import catalogue, scope, storage
from layers.ingest import geometry
from layers.ingest.target import actor
from layers.ingest.values import ValueProblem, coerce
from layers.models import Layer
from layers.schema import PropertySpec, quote_ident, specs_of


def _invalid(reason: str) -> ApiError:
    return ApiError(422, "InvalidFeature", reason, {"reason": reason})


def check_geometry(value: Any, source_crs: str, layer: Layer) -> str:
    """A GeoJSON geometry to hex EWKB in EPSG:4490, or a 422 naming the problem."""
    geoms, errors = geometry.from_geojson([value])
    if errors:
        raise _invalid(errors[0])
    geoms, errors, _ = geometry.prepare(geoms, source_crs, get_settings().extent, repair=False)
    if errors:
        raise _invalid(errors[0])
    geoms, errors = geometry.conform(geoms, layer.geometry_type)
    if errors:
        raise _invalid(errors[0])
    return str(geometry.ewkb_hex(np.asarray(geoms))[0])


def check_properties(values: Any, specs: list[PropertySpec]) -> dict[str, Any]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise _invalid("properties must be an object")
    known = {s.name: s for s in specs}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise _invalid(
            f"properties not in the layer schema: {', '.join(unknown)} "
            f"(schema: {', '.join(known) or 'none'})"
        )
    out: dict[str, Any] = {}
    for spec in specs:
        try:
            out[spec.name] = coerce(values.get(spec.name), spec.type)
        except ValueProblem as exc:
            raise _invalid(f"property {spec.name!r}: {exc}") from exc
        if out[spec.name] is None and spec.required:
            raise _invalid(f"property {spec.name!r} is required")
    return out


def _feature_parts(body: Any) -> tuple[Any, Any]:
    if not isinstance(body, dict) or body.get("type") != "Feature":
        raise ApiError(400, "InvalidGeoJSON", "the body must be a GeoJSON Feature")
    if "geometry" not in body or body["geometry"] is None:
        raise _invalid("the feature has no geometry")
    return body["geometry"], body.get("properties")


def _write_params(values: dict[str, Any], ewkb: str, who: Principal) -> dict[str, Any]:
    params = {f"p{i}": v for i, v in enumerate(values.values())}
    params.update(g=ewkb, who=actor(who))
    return params


def _bump(
    session: Session, who: Principal, layer: Layer, action: str, fid: int, grant: Scope | None
) -> None:
    versions.bump(session, catalogue.version_key(layer.id))
    details = {"grant": grant.grant_id} if grant else None
    audit.record(session, who, action, f"{layer.id}/{fid}", details)


def visible_specs(layer: Layer, grant: Scope | None) -> list[PropertySpec]:
    """The attributes the editor may see and write: all, or those its grant does not withhold."""
    hidden = set(grant.hidden) if grant else set()
    return [s for s in specs_of(layer.properties) if s.name not in hidden]


def _check_area(session: Session, grant: Scope | None, ewkb: str | None) -> None:
    if grant is None or not grant.area or ewkb is None:
        return
    if not scope.intersects_area(session, grant.grant_id, ewkb):
        raise ApiError(
            422,
            "OutsideGrantArea",
            f"the geometry lies outside the area of grant {grant.grant_id}",
            {"grant": grant.grant_id},
        )


def create(
    session: Session,
    who: Principal,
    layer: Layer,
    body: Any,
    source_crs: str,
    grant: Scope | None = None,
) -> tuple[int, int]:
    geom, props = _feature_parts(body)
    specs = visible_specs(layer, grant)
    values = check_properties(props, specs)
    withheld = [s.name for s in specs_of(layer.properties) if s.required and s not in specs]
    if withheld:
        raise _invalid(
            f"required attributes {', '.join(withheld)} are withheld by your grant: "
            "only the owner can add features"
        )
    ewkb = check_geometry(geom, source_crs, layer)
    _check_area(session, grant, ewkb)
    columns = "".join(f"{quote_ident(n)}, " for n in values)
    binds = "".join(f":p{i}, " for i in range(len(values)))
    row = session.execute(
        text(
            f"INSERT INTO {storage.table_ref(layer.table_name)} ({columns}geom, updated_by) "
            f"VALUES ({binds}CAST(:g AS geometry), :who) RETURNING id, version"
        ),
        _write_params(values, ewkb, who),
    ).one()
    _bump(session, who, layer, "feature.create", row[0], grant)
    return int(row[0]), int(row[1])


def _lock(session: Session, layer: Layer, fid: int, grant: Scope | None) -> dict[str, Any]:
    """The current row (visible properties as stored, version), locked until the transaction
    ends; a row outside the grant's area is as absent as a missing one."""
    specs = visible_specs(layer, grant)
    area = f" AND {grant.area}" if grant and grant.area else ""
    row = session.execute(
        text(
            f"SELECT t.version, {storage.properties_jsonb('t', specs)}::text "
            f"FROM {storage.table_ref(layer.table_name)} t WHERE t.id = :fid{area} FOR UPDATE"
        ),
        {"fid": fid},
    ).first()
    if row is None:
        raise ApiError(404, "NotFound", f"no feature {fid} in {layer.id!r}")
    return {"version": int(row[0]), "properties": orjson.loads(row[1])}


def _archive(session: Session, who: Principal, layer: Layer, fid: int, action: str) -> None:
    sql = storage.archive_sql(layer.table_name, specs_of(layer.properties), "t.id = :fid")
    session.execute(text(sql), {"fid": fid, "action": action, "who": actor(who)})


def _update(
    session: Session,
    who: Principal,
    layer: Layer,
    fid: int,
    values: dict[str, Any],
    ewkb: str | None,
    grant: Scope | None,
) -> int:
    sets = [f"{quote_ident(n)} = :p{i}" for i, n in enumerate(values)]
    if ewkb is not None:
        sets.append("geom = CAST(:g AS geometry)")
    sets += ["version = version + 1", "updated_by = :who", "updated_at = now()"]
    version = session.execute(
        text(
            f"UPDATE {storage.table_ref(layer.table_name)} SET {', '.join(sets)} "
            "WHERE id = :fid RETURNING version"
        ),
        {**_write_params(values, ewkb or "", who), "fid": fid},
    ).scalar_one()
    _bump(session, who, layer, "feature.update", fid, grant)
    return int(version)


Changes = Callable[
    [Layer, list[PropertySpec], int, Any, str, dict[str, Any]], tuple[dict[str, Any], str | None]
]


def _replaced(
    layer: Layer,
    specs: list[PropertySpec],
    fid: int,
    body: Any,
    source_crs: str,
    current: dict[str, Any],
) -> tuple[dict[str, Any], str | None]:
    """PUT: the whole feature (the attributes the editor may see)."""
    if isinstance(body, dict) and body.get("id") not in (None, fid, str(fid)):
        raise ApiError(400, "InvalidParameterValue", f"body id {body['id']!r} is not {fid}")
    geom, props = _feature_parts(body)
    values = check_properties(props, specs)
    return values, check_geometry(geom, source_crs, layer)


def _merged(
    layer: Layer,
    specs: list[PropertySpec],
    fid: int,
    body: Any,
    source_crs: str,
    current: dict[str, Any],
) -> tuple[dict[str, Any], str | None]:
    """PATCH as JSON merge patch (RFC 7396): members given replace, null removes."""
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameterValue", "a merge patch must be a JSON object")
    unknown = sorted(set(body) - {"type", "id", "geometry", "properties"})
    if unknown:
        raise ApiError(400, "InvalidParameterValue", f"cannot patch {', '.join(unknown)}")
    merged = dict(current["properties"])
    patch_props = body.get("properties") or {}
    if not isinstance(patch_props, dict):
        raise _invalid("properties must be an object")
    for name, value in patch_props.items():
        merged[name] = value
    values = check_properties(merged, specs)
    ewkb = None
    if "geometry" in body:
        if body["geometry"] is None:
            raise _invalid("the geometry cannot be removed")
        ewkb = check_geometry(body["geometry"], source_crs, layer)
    return values, ewkb


def _edit(
    changes: Changes,
    session: Session,
    who: Principal,
    layer: Layer,
    fid: int,
    body: Any,
    source_crs: str,
    check_version: Any,
    grant: Scope | None = None,
) -> int:
    """Lock the row, ``check_version(current)`` (raises on a stale If-Match), then update it."""
    current = _lock(session, layer, fid, grant)
    check_version(current["version"])
    values, ewkb = changes(layer, visible_specs(layer, grant), fid, body, source_crs, current)
    _check_area(session, grant, ewkb)
    _archive(session, who, layer, fid, "update")
    return _update(session, who, layer, fid, values, ewkb, grant)


replace = partial(_edit, _replaced)
patch = partial(_edit, _merged)


def delete(
    session: Session,
    who: Principal,
    layer: Layer,
    fid: int,
    check_version: Any,
    grant: Scope | None = None,
) -> None:
    current = _lock(session, layer, fid, grant)
    check_version(current["version"])
    _archive(session, who, layer, fid, "delete")
    session.execute(
        text(f"DELETE FROM {storage.table_ref(layer.table_name)} WHERE id = :fid"), {"fid": fid}
    )
    _bump(session, who, layer, "feature.delete", fid, grant)


def history(
    session: Session, layer: Layer, fid: int, grant: Scope | None = None
) -> list[dict[str, Any]]:
    """Every version of a feature, newest first: the current one (if it still exists), then the
    archived ones, each with who wrote it, when, and what replaced it.

    Through a grant: only versions whose geometry intersects its area, and only the attributes
    it lets the reader see (archived versions keep every attribute, so they are filtered here).
    """
    specs = visible_specs(layer, grant)
    visible = {s.name for s in specs}
    area = f" AND {grant.area}" if grant and grant.area else ""
    rows = session.execute(
        text(
            f"SELECT version, {storage.properties_jsonb('t', specs)}::text, ST_AsGeoJSON(geom, 8),"
            " updated_by, updated_at, NULL, NULL, NULL "
            f"FROM {storage.table_ref(layer.table_name)} t WHERE id = :fid{area} "
            "UNION ALL "
            "SELECT version, properties::text, ST_AsGeoJSON(geom, 8), updated_by, updated_at,"
            " action, archived_by, archived_at "
            f"FROM {storage.history_ref(layer.table_name)} WHERE fid = :fid{area} "
            "ORDER BY 1 DESC, 8 DESC NULLS FIRST"
        ),
        {"fid": fid},
    ).all()
    return [
        {
            "version": r[0],
            "properties": {k: v for k, v in orjson.loads(r[1]).items() if k in visible},
            "geometry": orjson.loads(r[2]) if r[2] else None,
            "updated_by": r[3],
            "updated_at": r[4].isoformat() if r[4] else None,
            "current": r[5] is None,
            "superseded_by": r[5],
            "archived_by": r[6],
            "archived_at": r[7].isoformat() if r[7] else None,
        }
        for r in rows
    ]

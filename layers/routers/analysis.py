"""Overlay, identify and statistics over every collection the caller may read."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from fastapi import Depends, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from geo import crs as geo_crs
from geo.auth import Principal, principal
from geo.db import DbSession
from geo.errors import ApiError
from geo.extent import city_point
from geo.http import json_body, model
from geo.inputs import BIGINT_MAX
from geo.openapi import CSV, FEATURE_COLLECTION, errors, returns
from geo.routing import api_router
from geo.settings import get_settings
from geo.sources import LayerSource
from layers import catalogue, identify, overlay
from layers.cql import Compiler, parse
from layers.http import GEOJSON, content_crs
from layers.ingest import geometry

router = api_router(tags=["analysis"])
AREA_LEVELS = {
    "district": "districts",
    "subdistrict": "subdistricts",
    "community": "communities",
    "grid": "grids",
}
MAX_OVERLAY_LIMIT = 100_000


class OverlayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: str = Field(description="the collection whose features are matched")
    other: str = Field(description="the collection they are matched against (grouped by)")
    predicate: Literal["intersects", "within", "contains", "dwithin"] = "intersects"
    distance: float | None = Field(default=None, description="metres, for dwithin")
    output: Literal["features", "aggregate"] = "features"
    property: str | None = Field(default=None, description="numeric attribute of layer to sum")
    filter: Any = Field(default=None, description="CQL2 (text or JSON) on layer")
    other_filter: Any = Field(default=None, description="CQL2 (text or JSON) on other")
    filter_crs: str = geo_crs.DEFAULT_CRS
    format: Literal["geojson", "csv"] = "geojson"
    crs: str = geo_crs.DEFAULT_CRS
    limit: int | None = Field(default=None, ge=1, le=MAX_OVERLAY_LIMIT)
    offset: int = Field(default=0, ge=0, le=BIGINT_MAX)


# Matched features or aggregates: GeoJSON, or CSV when asked (format=csv, f=csv).
_JOINED = returns({GEOJSON: FEATURE_COLLECTION, CSV: None}, "GeoJSON, or CSV") | errors(404)
_IDENTIFIED = returns({GEOJSON: FEATURE_COLLECTION}, "the features found") | errors(404)


def _compiled(value: Any, source: Any, filter_crs: str, prefix: str) -> Any:
    if value is None:
        return None
    import orjson

    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    lang = "cql2-text" if isinstance(value, str) else "cql2-json"
    return Compiler(source, filter_crs, alias=prefix, prefix=prefix + "f").compile(
        parse(text, lang)
    )


def _respond(result: overlay.Result, fmt: str, target: str, name: str) -> Response:
    headers = content_crs(target)
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer).writerows(overlay.csv_rows(result, target))
        headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return Response(
            buffer.getvalue().encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    return StreamingResponse(
        overlay.as_geojson(result, target), media_type=GEOJSON, headers=headers
    )


@router.post(
    "/overlay",
    summary="Join two collections spatially: matched features or aggregates per feature",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": OverlayIn.model_json_schema()}},
        }
    },
    response_class=Response,
    responses=_JOINED,
)
def overlay_route(
    session: DbSession, raw: Any = Depends(json_body), who: Principal = Depends(principal)
) -> Response:
    body = model(OverlayIn, raw)
    target = geo_crs.resolve(body.crs).id
    overlay.check_join(body.predicate, body.distance)
    layer, other = catalogue.readable_sources(session, who, [body.layer, body.other])
    join = overlay.Join(
        overlay.Side(layer, "l", _compiled(body.filter, layer, body.filter_crs, "l")),
        overlay.Side(other, "o", _compiled(body.other_filter, other, body.filter_crs, "o")),
        body.predicate,
        body.distance,
    )
    limit = body.limit or get_settings().max_items_limit
    if body.output == "aggregate":
        result = overlay.aggregate(session, join, body.property, limit, body.offset)
    else:
        if body.property is not None:
            raise ApiError(400, "InvalidParameterValue", "property goes with output=aggregate")
        result = overlay.features(session, join, limit, body.offset)
    catalogue.audit_read(session, who, [layer, other], "overlay")
    return _respond(result, body.format, target, f"{layer.id}-{other.id}")


@router.get(
    "/identify",
    summary="Features of every readable collection at or near a point",
    response_class=Response,
    responses=_IDENTIFIED,
)
def identify_route(
    session: DbSession,
    lon: float = Query(description="x of the point in crs"),
    lat: float = Query(description="y of the point in crs"),
    radius: float = Query(default=20.0, ge=0, le=identify.MAX_RADIUS_M, description="metres"),
    crs: str = Query(default=geo_crs.DEFAULT_CRS, description="CRS of lon/lat and of the output"),
    layers: str | None = Query(default=None, description="comma-separated collections"),
    limit: int = Query(default=50, ge=1, le=1000),
    who: Principal = Depends(principal),
) -> Response:
    target = geo_crs.resolve(crs).id
    x, y = city_point(lon, lat, target)
    requested = [s for s in layers.split(",") if s] if layers else None
    sources = _identify_sources(session, who, requested)
    found = identify.identify(session, sources, x, y, radius, limit, target)
    return _identified(session, who, sources, found, target)


class IdentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    geometry: dict[str, Any] = Field(description="GeoJSON geometry, usually a Polygon")
    crs: str = Field(default=geo_crs.DEFAULT_CRS, description="CRS of geometry and of the output")
    layers: list[str] | None = Field(default=None, description="collections (default: all)")
    limit: int = Field(default=50, ge=1, le=1000)


@router.post(
    "/identify",
    summary="Features of every readable collection in a polygon, nearest its centre first",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": IdentifyIn.model_json_schema()}},
        }
    },
    response_class=Response,
    responses=_IDENTIFIED,
)
def identify_in_route(
    session: DbSession, raw: Any = Depends(json_body), who: Principal = Depends(principal)
) -> Response:
    body = model(IdentifyIn, raw)
    target = geo_crs.resolve(body.crs).id
    geoms, errors = geometry.from_geojson([body.geometry])
    if not errors:
        geoms, errors, _ = geometry.prepare(geoms, target, get_settings().extent, repair=False)
    if errors:
        raise ApiError(400, "InvalidGeometry", f"geometry: {errors[0]}")
    sources = _identify_sources(session, who, body.layers)
    found = identify.identify_in(session, sources, geoms[0], body.limit, target)
    return _identified(session, who, sources, found, target)


def _identify_sources(
    session: Session, who: Principal, requested: list[str] | None
) -> list[LayerSource]:
    if requested:
        return catalogue.readable_sources(session, who, identify.requested_layers(requested))
    return catalogue.all_readable_sources(session, who)


def _identified(
    session: Session,
    who: Principal,
    sources: list[LayerSource],
    found: list[dict[str, Any]],
    target: str,
) -> Response:
    """The answer, with the reads of the non-public collections that contributed audited."""
    catalogue.audit_read(
        session,
        who,
        [s for s in sources if s.id in {f["properties"]["collection"] for f in found}],
        "identify",
    )
    return JSONResponse(
        {"type": "FeatureCollection", "features": found, "numberReturned": len(found)},
        media_type=GEOJSON,
        headers=content_crs(target),
    )


@router.get(
    "/collections/{collection_id}/stats",
    summary="Counts (and sums of an attribute) per district, subdistrict, community or grid",
    response_class=Response,
    responses=_JOINED,
)
def stats_route(
    collection_id: str,
    session: DbSession,
    by: Literal["district", "subdistrict", "community", "grid"] = Query(),
    property: str | None = Query(default=None, description="numeric attribute to sum"),
    crs: str = Query(default=geo_crs.DEFAULT_CRS),
    f: Literal["json", "geojson", "csv"] = Query(default="json"),
    who: Principal = Depends(principal),
) -> Response:
    target = geo_crs.resolve(crs).id
    layer, areas = catalogue.readable_sources(session, who, [collection_id, AREA_LEVELS[by]])
    join = overlay.Join(overlay.Side(layer, "l"), overlay.Side(areas, "o"), "assign")
    result = overlay.aggregate(session, join, property, MAX_OVERLAY_LIMIT)
    catalogue.audit_read(session, who, [layer], "stats")
    return _respond(result, "csv" if f == "csv" else "geojson", target, f"{collection_id}-{by}")

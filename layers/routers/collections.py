"""Catalogue routes and OGC API - Features reads (Parts 1, 2 and 3)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from geo import crs, inputs
from geo.auth import Principal, principal, require
from geo.db import DbSession
from geo.errors import ApiError
from geo.http import json_body, model
from geo.openapi import CSV, FEATURE, FEATURE_COLLECTION, HTML, errors, returns
from geo.preconditions import etag
from geo.routing import ALWAYS_ALLOWED, api_router
from geo.settings import get_settings
from geo.sources import PROPERTY_TYPES, LayerSource
from layers import catalogue, documents, editing, features, html, temporal
from layers.cql import CompiledFilter, Compiler, parse
from layers.http import (
    GEOJSON,
    base_url,
    content_crs,
    parse_bbox,
    self_url,
    wants,
)
from layers.models import ACCESS_LEVELS
from layers.schema import GEOMETRY_TYPES, parse_properties

router = api_router(tags=["collections"])
editor = require("editor")


# The catalogue's columns: a longer keyword or department code cannot be stored.
Keyword = Annotated[str, Field(max_length=100)]
DepartmentCode = Annotated[str, Field(max_length=64)]


class PropertyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: Literal[PROPERTY_TYPES]  # type: ignore[valid-type]
    required: bool = False
    title: str | None = Field(default=None, max_length=200)


class LayerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    keywords: list[Keyword] = Field(default_factory=list, max_length=50)
    geometry_type: Literal[GEOMETRY_TYPES]  # type: ignore[valid-type]
    properties: list[PropertyIn] = Field(default_factory=list)
    access: Literal[ACCESS_LEVELS] = "private"  # type: ignore[valid-type]
    shared_with: list[DepartmentCode] = Field(default_factory=list, max_length=500)
    key_property: str | None = None


class LayerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    keywords: list[Keyword] | None = Field(default=None, max_length=50)
    access: Literal[ACCESS_LEVELS] | None = None  # type: ignore[valid-type]
    shared_with: list[DepartmentCode] | None = Field(default=None, max_length=500)
    key_property: str | None = None


def _layer_body(schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema.model_json_schema()}},
        }
    }


_COLLECTION_JSON = {"type": "object", "required": ["id", "links"]}


def _collection_doc(
    session: Session, request: Request, who: Principal, source: LayerSource
) -> dict[str, Any]:
    layer = (
        None
        if catalogue.is_system(source.id)
        else catalogue.readable_layer(session, who, source.id)
    )
    return documents.collection(session, base_url(request), source, layer)


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


@router.get(
    "/collections",
    summary="Collections the caller may read",
    response_class=Response,
    responses=returns(
        {"application/json": {"type": "object", "required": ["collections"]}, HTML: None},
        "the collections (HTML for browsers or f=html)",
    ),
)
def list_collections(
    request: Request, session: DbSession, who: Principal = Depends(principal)
) -> Response:
    fmt = wants(request)
    base = base_url(request)
    sources = catalogue.all_readable_sources(session, who)
    layers = {x.id: x for x in catalogue.readable_layers(session, who)}
    doc = {
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/collections"},
            {"rel": "alternate", "type": "text/html", "href": f"{base}/collections?f=html"},
        ],
        "collections": [documents.collection(session, base, s, layers.get(s.id)) for s in sources],
        "crs": documents.crs_uris(),
    }
    if fmt == "html":
        return HTMLResponse(html.collections(doc))
    return _json(doc)


@router.post(
    "/collections",
    status_code=201,
    summary="Register a layer",
    openapi_extra=_layer_body(LayerIn),
    response_class=Response,
    responses=returns({"application/json": _COLLECTION_JSON}, "the new collection", 201)
    | errors(403, 409),
)
def create_collection(
    request: Request,
    session: DbSession,
    raw: Any = Depends(json_body),
    who: Principal = Depends(editor),
) -> Response:
    body = model(LayerIn, raw)
    layer = catalogue.create_layer(
        session,
        who,
        body.id,
        title=body.title,
        geometry_type=body.geometry_type,
        properties=parse_properties([p.model_dump() for p in body.properties]),
        description=body.description,
        keywords=body.keywords,
        access=body.access,
        shared_with=body.shared_with,
        key_property=body.key_property,
    )
    session.flush()
    doc = documents.collection(session, base_url(request), catalogue.source_of(layer), layer)
    return _json(doc, 201, {"Location": doc["links"][0]["href"]})


@router.get(
    "/collections/{collection_id}",
    summary="One collection",
    response_class=Response,
    responses=returns({"application/json": _COLLECTION_JSON, HTML: None}, "the collection")
    | errors(404),
)
def get_collection(
    collection_id: str,
    request: Request,
    session: DbSession,
    who: Principal = Depends(principal),
) -> Response:
    fmt = wants(request)
    source = catalogue.readable_source(session, who, collection_id)
    doc = _collection_doc(session, request, who, source)
    if fmt == "html":
        return HTMLResponse(html.collection(doc))
    return _json(doc)


@router.patch(
    "/collections/{collection_id}",
    summary="Change a layer's metadata or access (owner or admin)",
    openapi_extra=_layer_body(LayerPatch),
    response_class=Response,
    responses=returns({"application/json": _COLLECTION_JSON}, "the collection as changed")
    | errors(403, 404, 405),
)
def patch_collection(
    collection_id: str,
    request: Request,
    session: DbSession,
    raw: Any = Depends(json_body),
    who: Principal = Depends(editor),
) -> Response:
    body = model(LayerPatch, raw)
    changes = body.model_dump(exclude_unset=True)
    layer = catalogue.update_layer(session, who, collection_id, changes)
    doc = documents.collection(session, base_url(request), catalogue.source_of(layer), layer)
    return _json(doc)


@router.delete(
    "/collections/{collection_id}",
    status_code=204,
    summary="Delete a layer",
    response_class=Response,
    responses=errors(403, 404, 405),
)
def delete_collection(
    collection_id: str, session: DbSession, who: Principal = Depends(editor)
) -> Response:
    catalogue.delete_layer(session, who, collection_id)
    return Response(status_code=204)


@router.get(
    "/collections/{collection_id}/queryables",
    summary="Queryables (JSON Schema)",
    response_class=Response,
    responses=returns({"application/schema+json": {"type": "object"}}, "the queryables")
    | errors(404),
)
def queryables(
    collection_id: str,
    request: Request,
    session: DbSession,
    who: Principal = Depends(principal),
) -> Response:
    source = catalogue.readable_source(session, who, collection_id)
    return Response(
        orjson.dumps(documents.queryables(base_url(request), source)),
        media_type="application/schema+json",
    )


# -- items ---------------------------------------------------------------------------------------

ITEM_PARAMS = frozenset(
    {
        "bbox",
        "bbox-crs",
        "crs",
        "datetime",
        "limit",
        "offset",
        "filter",
        "filter-lang",
        "filter-crs",
        "properties",
        "sortby",
    }
)


def _names(value: str | None, source: LayerSource, what: str) -> list[str]:
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    unknown = [n.lstrip("+-") for n in names if n.lstrip("+-") not in source.properties]
    if unknown:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"{what}: unknown properties {', '.join(unknown)}",
            {"properties": list(source.properties)},
        )
    return names


def _query(request: Request, source: LayerSource) -> features.Query:
    params = request.query_params
    unknown = sorted(set(params) - ITEM_PARAMS - ALWAYS_ALLOWED - set(source.properties))
    if unknown:
        raise ApiError(
            400,
            "UnknownParameter",
            f"unknown query parameter(s): {', '.join(unknown)}",
            {"unknown": unknown, "allowed": sorted(ITEM_PARAMS | set(source.properties))},
        )
    settings = get_settings()
    try:
        limit = inputs.bounded_int("limit", params.get("limit"), 10)
        offset = inputs.bounded_int("offset", params.get("offset"), 0)
    except ValueError as exc:
        raise ApiError(400, "InvalidParameterValue", "limit and offset must be integers") from exc
    if limit < 1 or offset < 0:
        raise ApiError(400, "InvalidParameterValue", "limit must be >= 1 and offset >= 0")
    out_crs = crs.resolve(params.get("crs", crs.DEFAULT_CRS)).id
    query = features.Query(limit=min(limit, settings.max_items_limit), offset=offset, crs=out_crs)
    if "bbox" in params:
        query.bbox = parse_bbox(params["bbox"], params.get("bbox-crs"))
    elif "bbox-crs" in params:
        raise ApiError(400, "InvalidParameterValue", "bbox-crs without bbox")
    compiler = Compiler(source, params.get("filter-crs", crs.DEFAULT_CRS))
    if "filter" in params:
        query.filters.append(compiler.compile(parse(params["filter"], params.get("filter-lang"))))
    elif "filter-lang" in params or "filter-crs" in params:
        raise ApiError(400, "InvalidParameterValue", "filter-lang/filter-crs without filter")
    if "datetime" in params:
        query.filters.append(temporal.datetime_filter(compiler, source, params["datetime"]))
    for name in source.properties:
        if name in params:
            query.filters.append(
                CompiledFilter(compiler.equals(name, params[name]), compiler.params)
            )
    if "properties" in params:
        query.properties = _names(params["properties"], source, "properties")
    query.sortby = [
        (n.lstrip("+-"), n.startswith("-")) for n in _names(params.get("sortby"), source, "sortby")
    ]
    return query


def _links(
    request: Request, query: features.Query, matched: int, returned: int
) -> list[dict[str, Any]]:
    base = base_url(request)
    collection = request.url.path.rsplit("/items", 1)[0]
    links = [
        {"rel": "self", "type": GEOJSON, "href": self_url(request)},
        {"rel": "alternate", "type": "text/html", "href": self_url(request, f="html")},
        {"rel": "alternate", "type": "text/csv", "href": self_url(request, f="csv")},
        {"rel": "collection", "type": "application/json", "href": f"{base}{collection}"},
    ]
    if query.offset + returned < matched:
        links.append(
            {
                "rel": "next",
                "type": GEOJSON,
                "href": self_url(request, offset=query.offset + returned, limit=query.limit),
            }
        )
    if query.offset > 0:
        links.append(
            {
                "rel": "prev",
                "type": GEOJSON,
                "href": self_url(
                    request, offset=max(0, query.offset - query.limit), limit=query.limit
                ),
            }
        )
    return links


@router.get(
    "/collections/{collection_id}/items",
    summary="Features (bbox, datetime, crs, CQL2 filter, properties, sortby, property=value)",
    openapi_extra={
        "x-free-query": True,
        "parameters": [
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in sorted(ITEM_PARAMS)
        ],
    },
    response_class=Response,
    responses=returns(
        {GEOJSON: FEATURE_COLLECTION, HTML: None, CSV: None},
        "a page of features (HTML for browsers or f=html, CSV with f=csv)",
    )
    | errors(404),
)
def items(
    collection_id: str,
    request: Request,
    session: DbSession,
    who: Principal = Depends(principal),
) -> Response:
    fmt = wants(request, ("json", "html", "csv"))
    source = catalogue.readable_source(session, who, collection_id)
    query = _query(request, source)
    catalogue.audit_read(session, who, [source], "items")
    headers = content_crs(query.crs)
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer).writerows(features.csv_rows(session, source, query))
        return Response(
            buffer.getvalue().encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={**headers, "Content-Disposition": f'attachment; filename="{source.id}.csv"'},
        )
    page = features.page(session, source, query)
    matched = features.count(session, source, query)
    links = _links(request, query, matched, len(page))
    if fmt == "html":
        return HTMLResponse(html.items(source.title, page, links, matched), headers=headers)
    head = orjson.dumps(
        {
            "type": "FeatureCollection",
            "numberMatched": matched,
            "numberReturned": len(page),
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "links": links,
        }
    )
    body = head[:-1] + b',"features":[' + b",".join(page) + b"]}"
    return Response(body, media_type=GEOJSON, headers=headers)


def _fid(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(404, "NotFound", f"no feature {value!r}") from None


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="One feature",
    response_class=Response,
    responses=returns({GEOJSON: FEATURE, HTML: None}, "the feature, its version as ETag")
    | errors(404),
)
def item(
    collection_id: str,
    feature_id: str,
    request: Request,
    session: DbSession,
    crs_: str = Query(default=crs.DEFAULT_CRS, alias="crs"),
    who: Principal = Depends(principal),
) -> Response:
    fmt = wants(request)
    target = crs.resolve(crs_).id
    source = catalogue.readable_source(session, who, collection_id)
    fid = _fid(feature_id)
    found = features.one(session, source, fid, target)
    if found is None:
        raise ApiError(404, "NotFound", f"no feature {feature_id} in {collection_id!r}")
    catalogue.audit_read(session, who, [source], "item")
    feature, version = found
    headers = content_crs(target)
    if version is not None:
        headers["ETag"] = etag(version)
    if fmt == "html":
        return HTMLResponse(html.feature(source.title, feature), headers=headers)
    base = base_url(request)
    links = orjson.dumps(
        [
            {"rel": "self", "type": GEOJSON, "href": self_url(request)},
            {
                "rel": "collection",
                "type": "application/json",
                "href": f"{base}/collections/{collection_id}",
            },
        ]
    )
    body = feature[:-1] + b',"links":' + links + b"}"
    return Response(body, media_type=GEOJSON, headers=headers)


@router.get(
    "/collections/{collection_id}/items/{feature_id}/history",
    summary="Every version of a feature, newest first",
    responses=errors(404),
)
def item_history(
    collection_id: str,
    feature_id: str,
    session: DbSession,
    who: Principal = Depends(principal),
) -> JSONResponse:
    source = catalogue.readable_source(session, who, collection_id)
    if not source.versioned:
        raise ApiError(404, "NotFound", f"{collection_id!r} keeps no feature history")
    layer = catalogue.readable_layer(session, who, collection_id)
    versions = editing.history(session, layer, _fid(feature_id), source.scope)
    if not versions:
        raise ApiError(404, "NotFound", f"no feature {feature_id} in {collection_id!r}")
    catalogue.audit_read(session, who, [source], "history")
    return JSONResponse({"collection": collection_id, "id": int(feature_id), "versions": versions})

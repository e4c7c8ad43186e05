"""The sharing catalogue as OGC API - Records Part 1 (a searchable catalogue), rooted at
``/catalogue`` so that its record collection never shares a namespace with the layers'
``/collections``; and the owner's route to edit a layer's catalogue entry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Depends, Query, Request, Response
from sqlalchemy.orm import Session

from geo.auth import Principal, principal, require
from geo.db import DbSession
from geo.http import json_body, model
from geo.openapi import errors, returns
from geo.routing import api_router
from layers import records, records_query
from layers.http import GEOJSON, base_url, parse_bbox, self_url
from layers.records_query import MAX_LIMIT, MAX_TERMS, MAX_VALUES, RecordQuery, split_list

router = api_router(tags=["catalogue"])

RECORDS = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    f"{RECORDS}/core",
    f"{RECORDS}/record-core",
    f"{RECORDS}/record-collection",
    f"{RECORDS}/records-api",
    f"{RECORDS}/searchable-catalog",
    f"{RECORDS}/json",
)
CATALOGUE_ID = "layers"
_OBJECT = {"type": "object"}
_RECORDS = {
    "type": "object",
    "required": ["type", "features"],
    "properties": {"type": {"const": "FeatureCollection"}},
}
_RECORD = {
    "type": "object",
    "required": ["id", "type", "properties", "links"],
    "properties": {"type": {"const": "Feature"}},
}


def _json(doc: Any, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(doc), media_type=media_type)


@router.get(
    "/catalogue",
    summary="The sharing catalogue's landing page (OGC API - Records)",
    response_class=Response,
    responses=returns({"application/json": _OBJECT}, "the landing page"),
)
def landing(request: Request) -> Response:
    base = base_url(request)
    return _json(
        {
            "title": "天津市空间数据共享目录 / Tianjin spatial data sharing catalogue",
            "description": "各部门图层的共享目录：无条件共享、有条件共享与开放数据。",
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{base}/catalogue"},
                {
                    "rel": "conformance",
                    "type": "application/json",
                    "href": f"{base}/catalogue/conformance",
                },
                {
                    "rel": "data",
                    "type": "application/json",
                    "href": f"{base}/catalogue/collections",
                },
                {
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json",
                    "href": f"{base}/api",
                },
            ],
        }
    )


@router.get(
    "/catalogue/conformance",
    summary="The catalogue's conformance classes",
    response_class=Response,
    responses=returns({"application/json": _OBJECT}, "the conformance classes"),
)
def conformance() -> Response:
    return _json({"conformsTo": list(CONFORMANCE)})


def _catalogue(base: str) -> dict[str, Any]:
    href = f"{base}/catalogue/collections/{CATALOGUE_ID}"
    return {
        "id": CATALOGUE_ID,
        "title": "部门图层共享目录",
        "description": "每个部门图层一条记录；有条件共享的图层对其他部门仅展示元数据。",
        "itemType": "record",
        "type": "Collection",
        "conformsTo": [f"{RECORDS}/record-collection"],
        "links": [
            {"rel": "self", "type": "application/json", "href": href},
            {"rel": "items", "type": GEOJSON, "href": f"{href}/items"},
            {"rel": "root", "type": "application/json", "href": f"{base}/catalogue"},
        ],
    }


@router.get(
    "/catalogue/collections",
    summary="The catalogue's record collections",
    response_class=Response,
    responses=returns({"application/json": _OBJECT}, "the record collections"),
)
def catalogues(request: Request) -> Response:
    base = base_url(request)
    return _json(
        {
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{base}/catalogue/collections"}
            ],
            "collections": [_catalogue(base)],
        }
    )


@router.get(
    f"/catalogue/collections/{CATALOGUE_ID}",
    summary="The layers' record collection",
    response_class=Response,
    responses=returns({"application/json": _OBJECT}, "the record collection"),
)
def layers_catalogue(request: Request) -> Response:
    return _json(_catalogue(base_url(request)))


def _page(session: Session, request: Request, who: Principal, query: RecordQuery) -> dict[str, Any]:
    page, matched = records_query.search(session, who, query)
    states = records_query.access_states(session, who, page)
    names = records.provider_names(session)
    base = base_url(request)
    links = [{"rel": "self", "type": GEOJSON, "href": self_url(request)}]
    if query.offset + len(page) < matched:
        links.append(
            {
                "rel": "next",
                "type": GEOJSON,
                "href": self_url(request, offset=query.offset + len(page), limit=query.limit),
            }
        )
    if query.offset > 0:
        previous = max(0, query.offset - query.limit)
        links.append({"rel": "prev", "type": GEOJSON, "href": self_url(request, offset=previous)})
    return {
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": len(page),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "links": links,
        "features": [
            records.record(x, base, names.get(x.owner, x.owner), states[x.id]) for x in page
        ],
    }


@router.get(
    f"/catalogue/collections/{CATALOGUE_ID}/items",
    summary="Search the catalogue (q, bbox, type, ids, department, theme, sharing_type)",
    response_class=Response,
    responses=returns({GEOJSON: _RECORDS}, "a page of records"),
)
def search(
    request: Request,
    session: DbSession,
    who: Principal = Depends(principal),
    q: str | None = Query(
        default=None, max_length=1100, description="terms, comma-separated; any matches"
    ),
    bbox: str | None = Query(
        default=None, max_length=200, description="minx,miny,maxx,maxy (lon/lat)"
    ),
    type_: str | None = Query(default=None, alias="type", max_length=200),
    ids: str | None = Query(default=None, max_length=5100),
    department: str | None = Query(
        default=None, max_length=6500, description="providing department codes"
    ),
    theme: str | None = Query(default=None, max_length=10_100),
    sharing_type: str | None = Query(
        default=None, max_length=100, description="unconditional, conditional, none"
    ),
    limit: int = Query(default=10, ge=1, le=MAX_LIMIT),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> Response:
    query = RecordQuery(
        q=split_list("q", q, MAX_TERMS, 100),
        ids=split_list("ids", ids, MAX_VALUES, 50),
        departments=split_list("department", department, MAX_VALUES, 64),
        themes=split_list("theme", theme, MAX_VALUES, 100),
        sharing_types=records_query.sharing_types(sharing_type),
        types=split_list("type", type_, MAX_TERMS, 20),
        bbox=parse_bbox(bbox, None) if bbox is not None else None,
        limit=limit,
        offset=offset,
    )
    return _json(_page(session, request, who, query), GEOJSON)


@router.get(
    f"/catalogue/collections/{CATALOGUE_ID}/items/{{record_id}}",
    summary="One catalogue record",
    response_class=Response,
    responses=returns({GEOJSON: _RECORD}, "the record") | errors(404),
)
def one_record(
    record_id: str, request: Request, session: DbSession, who: Principal = Depends(principal)
) -> Response:
    layer = records_query.visible_layer(session, who, record_id)
    state = records_query.access_states(session, who, [layer])[layer.id]
    name = records.provider_names(session).get(layer.owner, layer.owner)
    return _json(records.record(layer, base_url(request), name, state), GEOJSON)


@router.patch(
    "/collections/{collection_id}/catalogue-entry",
    summary="Change a layer's catalogue entry (its owner's editors, or the platform admin)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": records.CatalogueEntryIn.model_json_schema()}
            },
        }
    },
    response_class=Response,
    responses=returns({GEOJSON: _RECORD}, "the layer's record as changed") | errors(403, 404, 405),
)
def patch_entry(
    collection_id: str,
    request: Request,
    session: DbSession,
    raw: Any = Depends(json_body),
    who: Principal = Depends(require("editor")),
) -> Response:
    changes = model(records.CatalogueEntryIn, raw).model_dump(exclude_unset=True)
    layer = records.set_catalogue_entry(session, who, collection_id, changes)
    name = records.provider_names(session).get(layer.owner, layer.owner)
    state = records_query.access_states(session, who, [layer])[layer.id]
    return _json(records.record(layer, base_url(request), name, state), GEOJSON)

"""OGC API - Features Part 4: create, replace, update (JSON merge patch) and delete features.

The input CRS comes from the ``Content-Crs`` header (CRS84 when absent). ``If-Match`` is honoured
(geo.preconditions): with a stale ETag the write is refused with 412; without one the write goes
through (clients that never read ETags still work), and every response carries the new ETag.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session

from geo import crs
from geo.auth import Principal, require
from geo.db import DbSession
from geo.errors import ApiError
from geo.http import json_body
from geo.openapi import FEATURE, errors, returns
from geo.preconditions import check_if_match, etag
from geo.routing import api_router
from geo.sources import LayerSource
from layers import catalogue, editing, features
from layers.http import GEOJSON, base_url
from layers.routers.collections import _fid

router = api_router(tags=["collections"])
editor = require("editor")
# Changes answer the feature as stored; the collection may be a read-only system one (405), the
# feature may have changed since the client read it (412), and a geometry that cannot be stored
# (outside the city, invalid) is a 422.
_CHANGE_ERRORS = errors(403, 404, 405, 412, 422)
_FEATURE_BODY = {
    "requestBody": {
        "required": True,
        "content": {GEOJSON: {"schema": {"type": "object", "description": "a GeoJSON Feature"}}},
    }
}


def _input_crs(request: Request) -> str:
    header = request.headers.get("content-crs")
    return crs.resolve(header.strip().strip("<>")).id if header else crs.DEFAULT_CRS


def _if_match(request: Request, fid: int) -> Callable[[int], None]:
    """The check of the request's If-Match against the feature's version, run under the row
    lock: honoured, not required (Part 4; geo.preconditions)."""
    header = request.headers.get("if-match")
    return partial(check_if_match, header, required=False, what=f"feature {fid}")


def _feature_response(
    session: Session, request: Request, source: LayerSource, fid: int, status: int
) -> Response:
    """The feature as written and as the editor may see it, with its new ETag (read back in the
    same transaction)."""
    found = features.one(session, source, fid, crs.DEFAULT_CRS)
    if found is None:
        raise ApiError(404, "NotFound", f"no feature {fid} in {source.id!r}")
    feature, version = found
    href = f"{base_url(request)}/collections/{source.id}/items/{fid}"
    return Response(
        feature,
        status,
        {"ETag": etag(version or 0), "Location": href},
        media_type=GEOJSON,
    )


def _edit_item(
    write: Callable[..., int],
    collection_id: str,
    feature_id: str,
    request: Request,
    body: Any,
    who: Principal,
    session: Session,
) -> Response:
    """PUT and PATCH: ``write`` (editing.replace or editing.patch), then the feature as written."""
    layer, source = catalogue.editable_source(session, who, collection_id)
    fid = _fid(feature_id)
    check = _if_match(request, fid)
    write(session, who, layer, fid, body, _input_crs(request), check, source.scope)
    return _feature_response(session, request, source, fid, 200)


@router.post(
    "/collections/{collection_id}/items",
    status_code=201,
    summary="Add a feature",
    openapi_extra=_FEATURE_BODY,
    response_class=Response,
    responses=returns({GEOJSON: FEATURE}, "the feature as stored, its version as ETag", 201)
    | errors(403, 404, 405, 422),
)
def create_item(
    collection_id: str,
    request: Request,
    session: DbSession,
    body: Any = Depends(json_body),
    who: Principal = Depends(editor),
) -> Response:
    layer, source = catalogue.editable_source(session, who, collection_id)
    fid, _ = editing.create(session, who, layer, body, _input_crs(request), source.scope)
    return _feature_response(session, request, source, fid, 201)


@router.put(
    "/collections/{collection_id}/items/{feature_id}",
    summary="Replace a feature",
    openapi_extra=_FEATURE_BODY,
    response_class=Response,
    responses=returns({GEOJSON: FEATURE}, "the feature as stored, its new version as ETag")
    | _CHANGE_ERRORS,
)
def replace_item(
    collection_id: str,
    feature_id: str,
    request: Request,
    session: DbSession,
    body: Any = Depends(json_body),
    who: Principal = Depends(editor),
) -> Response:
    return _edit_item(editing.replace, collection_id, feature_id, request, body, who, session)


@router.patch(
    "/collections/{collection_id}/items/{feature_id}",
    summary="Update a feature (JSON merge patch)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/merge-patch+json": {"schema": {"type": "object"}}},
        }
    },
    response_class=Response,
    responses=returns({GEOJSON: FEATURE}, "the feature as stored, its new version as ETag")
    | _CHANGE_ERRORS,
)
def patch_item(
    collection_id: str,
    feature_id: str,
    request: Request,
    session: DbSession,
    body: Any = Depends(json_body),
    who: Principal = Depends(editor),
) -> Response:
    return _edit_item(editing.patch, collection_id, feature_id, request, body, who, session)


@router.delete(
    "/collections/{collection_id}/items/{feature_id}",
    status_code=204,
    summary="Delete a feature",
    response_class=Response,
    responses=errors(403, 404, 405, 412),
)
def delete_item(
    collection_id: str,
    feature_id: str,
    request: Request,
    session: DbSession,
    who: Principal = Depends(editor),
) -> Response:
    layer, source = catalogue.editable_source(session, who, collection_id)
    fid = _fid(feature_id)
    editing.delete(session, who, layer, fid, _if_match(request, fid), source.scope)
    return Response(status_code=204)

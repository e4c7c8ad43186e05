"""``POST /collections/{id}/upload``: a file as multipart field ``file`` into a layer, and
``POST /collections/{id}/upload/preview``: the same request read and checked, nothing written."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy import event

from geo.auth import Principal, require
from geo.db import DbSession
from geo.errors import ApiError
from geo.http import model, parse_json
from geo.metrics import record_upload
from geo.openapi import errors
from geo.routing import api_router
from geo.settings import get_settings
from geo.spool import new_folder
from layers.ingest.limits import spool
from layers.ingest.pipeline import UploadOptions, preview, upload
from layers.ingest.preview import DEFAULT_FEATURES, MAX_FEATURES
from layers.routers.collections import LayerPatch, PropertyIn

router = api_router(tags=["collections"])
editor = require("editor")


class UploadMetadata(LayerPatch):
    """Catalogue entries for mode=create (all optional; the schema is inferred when absent)."""

    geometry_type: str | None = None
    properties: list[PropertyIn] | None = None


def upload_options(
    metadata: str | None = Form(
        default=None, description="JSON catalogue entries for mode=create (title, properties...)"
    ),
    mode: str = Query(default="create", description="create | append | replace | upsert"),
    crs: str | None = Query(default=None, description="CRS of the file's coordinates"),
    access: str | None = Query(default=None, description="public | shared | private (create)"),
    shared_with: str | None = Query(default=None, description="comma-separated departments"),
    key_property: str | None = Query(default=None, description="the property upserts match on"),
    make_valid: bool = Query(default=False, description="repair invalid geometries"),
    format: str | None = Query(default=None, description="override the extension's format"),
    layer: str | None = Query(default=None, description="layer inside a GeoPackage or zip"),
    lon_column: str | None = Query(default=None),
    lat_column: str | None = Query(default=None),
    address_column: str | None = Query(default=None),
) -> UploadOptions:
    """An upload's parameters, the same for the upload and its preview."""
    meta = model(UploadMetadata, parse_json(metadata.encode(), "metadata")) if metadata else None
    if mode != "create" and (meta is not None or access is not None):
        raise ApiError(400, "InvalidParameterValue", "metadata and access go with mode=create")
    opts = UploadOptions(
        mode=mode,
        crs=crs,
        format=format,
        make_valid=make_valid,
        key_property=key_property,
        source_layer=layer,
        lon_column=lon_column,
        lat_column=lat_column,
        address_column=address_column,
        access=access or (meta.access if meta and meta.access else "private"),
        shared_with=[s for s in (shared_with or "").split(",") if s]
        or (meta.shared_with or [] if meta else []),
    )
    if meta is not None:
        opts.title, opts.description = meta.title, meta.description
        opts.keywords = meta.keywords or []
        opts.geometry_type = meta.geometry_type
        if meta.properties is not None:
            opts.properties = [p.model_dump() for p in meta.properties]
        opts.key_property = opts.key_property or meta.key_property
    return opts


Options = Annotated[UploadOptions, Depends(upload_options)]


@contextmanager
def spooled(file: UploadFile) -> Iterator[tuple[Path, str, int]]:
    """The upload on disk under the upload limit: its path, its client name and size; removed
    when the block ends."""
    folder = new_folder("layer-upload-")
    try:
        name = Path(file.filename or "upload").name
        path = folder / ("upload" + Path(name).suffix.lower())
        size = spool(file.file, path, get_settings().max_upload_bytes)
        yield path, name, size
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.post(
    "/collections/{collection_id}/upload",
    status_code=201,
    summary="Upload GeoJSON, NDJSON, GeoPackage, zipped Shapefile, CSV or XLSX into a layer",
    responses=errors(403, 404, 405, 409, 415, 422),
)
def upload_file(
    collection_id: str,
    session: DbSession,
    opts: Options,
    file: UploadFile = File(description="the file"),
    who: Principal = Depends(editor),
) -> JSONResponse:
    with spooled(file) as (path, name, size):
        report = upload(session, who, collection_id, path, name, opts)
    # Counted when the request's transaction commits: a rolled-back upload loaded nothing.
    event.listen(
        session,
        "after_commit",
        lambda _: record_upload("layers", size, report["features"]),
        once=True,
    )
    return JSONResponse(report, status_code=201 if opts.mode == "create" else 200)


@router.post(
    "/collections/{collection_id}/upload/preview",
    summary="What an upload would store, without storing it: schema, count, bbox, first "
    "features (EPSG:4326) and the per-feature error report",
    responses=errors(403, 404, 405, 409, 415, 422),
)
def preview_upload(
    collection_id: str,
    session: DbSession,
    opts: Options,
    file: UploadFile = File(description="the file"),
    limit: int = Query(
        default=DEFAULT_FEATURES,
        ge=1,
        le=MAX_FEATURES,
        description="how many of the first valid features to return",
    ),
    who: Principal = Depends(editor),
) -> Response:
    with spooled(file) as (path, name, _):
        report = preview(session, who, collection_id, path, name, opts, limit)
    # orjson: dates and times in the features' properties as ISO 8601, like the items route.
    return Response(orjson.dumps(report), media_type="application/json")

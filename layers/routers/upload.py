"""``POST /collections/{id}/upload``: a file as multipart field ``file`` into a layer, and
``POST /collections/{id}/upload/preview``: the same request read and checked, nothing written.

Both can tell how far they got: asked for ``application/x-ndjson``, they answer a line
``{"read": n}`` after each batch of features read and checked, then one line with the outcome,
``{"status": 200, "result": {...}}`` (201 for a created layer; an upload's only once committed)
or ``{"status": 4xx, "error": {...}}``: the status and body the JSON answer would have had.
Errors found before reading starts (parameters, rights, size) are plain 4xx answers either way.
The console's processing bar follows it.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import event
from sqlalchemy.orm import Session

from geo.auth import Principal, require
from geo.db import DbSession, session_scope
from geo.errors import ApiError, error_body
from geo.http import model, parse_json
from geo.logs import request_id
from geo.metrics import record_upload
from geo.openapi import errors, returns
from geo.routing import api_router
from geo.settings import get_settings
from geo.spool import new_folder
from layers.ingest.limits import spool
from layers.ingest.pipeline import UploadOptions, preview, upload
from layers.ingest.preview import DEFAULT_FEATURES, MAX_FEATURES
from layers.routers.collections import LayerPatch, PropertyIn

router = api_router(tags=["collections"])
editor = require("editor")
log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"
REPORT: dict[str, Any] = {"type": "object"}
Progress = Callable[[int], None]


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
def spooled(file: UploadFile) -> Iterator[tuple[Path, str]]:
    """The upload on disk under the upload limit: its path and its client name; removed when
    the block ends."""
    folder = new_folder("layer-upload-")
    try:
        name = Path(file.filename or "upload").name
        path = folder / ("upload" + Path(name).suffix.lower())
        spool(file.file, path, get_settings().max_upload_bytes)
        yield path, name
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def streamed(
    request: Request,
    file: UploadFile,
    work: Callable[[Session, Path, str, Progress], dict[str, Any]],
    status: int,
) -> StreamingResponse | None:
    """When the client asked for NDJSON: ``work(session, path, name, progress)`` on the spooled
    file in its own thread and transaction, told as progress lines, ``status`` its outcome's
    when it succeeds; else None."""
    if NDJSON not in request.headers.get("accept", ""):
        return None
    stack = ExitStack()
    try:
        path, name = stack.enter_context(spooled(file))
    except BaseException:
        stack.close()
        raise
    return StreamingResponse(
        progress_lines(
            lambda session, progress: work(session, path, name, progress), status, stack.close
        ),
        media_type=NDJSON,
        # Each line as it is written, through the shipped nginx too (it buffers otherwise).
        headers={"X-Accel-Buffering": "no"},
    )


@router.post(
    "/collections/{collection_id}/upload",
    status_code=201,
    summary="Upload GeoJSON, NDJSON, GeoPackage, zipped Shapefile, CSV or XLSX into a layer",
    response_class=Response,
    responses=returns({"application/json": REPORT}, "the report (mode=create)", 201)
    | returns(
        {"application/json": REPORT, NDJSON: None},
        "the report (append, replace, upsert); as NDJSON (Accept), progress lines then the "
        "outcome, sent once committed",
    )
    | errors(403, 404, 405, 409, 415, 422),
)
def upload_file(
    request: Request,
    collection_id: str,
    session: DbSession,
    opts: Options,
    file: UploadFile = File(description="the file"),
    who: Principal = Depends(editor),
) -> Response:
    def load(s: Session, path: Path, name: str, progress: Progress | None) -> dict[str, Any]:
        size = path.stat().st_size
        report = upload(s, who, collection_id, path, name, opts, progress)
        # Counted when the transaction commits: a rolled-back upload loaded nothing.
        event.listen(
            s,
            "after_commit",
            lambda _: record_upload("layers", size, report["features"]),
            once=True,
        )
        return report

    status = 201 if opts.mode == "create" else 200
    stream = streamed(request, file, load, status)
    if stream is not None:
        return stream
    with spooled(file) as (path, name):
        report = load(session, path, name, None)
    return JSONResponse(report, status_code=status)


@router.post(
    "/collections/{collection_id}/upload/preview",
    summary="What an upload would store, without storing it: schema, count, bbox, first "
    "features (EPSG:4326) and the per-feature error report",
    response_class=Response,
    responses=returns(
        {"application/json": REPORT, NDJSON: None},
        "the preview; as NDJSON (Accept), progress lines then the outcome",
    )
    | errors(403, 404, 405, 409, 415, 422),
)
def preview_upload(
    request: Request,
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
    def look(s: Session, path: Path, name: str, progress: Progress | None) -> dict[str, Any]:
        return preview(s, who, collection_id, path, name, opts, limit, progress)

    stream = streamed(request, file, look, 200)
    if stream is not None:
        return stream
    with spooled(file) as (path, name):
        report = look(session, path, name, None)
    # orjson: dates and times in the features' properties as ISO 8601, like the items route.
    return Response(orjson.dumps(report), media_type="application/json")


def progress_lines(
    work: Callable[[Session, Progress], dict[str, Any]],
    status: int,
    cleanup: Callable[[], None],
) -> Iterator[bytes]:
    """Run ``work`` in its own thread and transaction (it outlives the handler), yielding a
    line per progress report and, once the transaction has committed, the outcome; ``cleanup``
    runs when the work is over, whether or not the client is still reading."""
    lines: queue.Queue[bytes | None] = queue.Queue()

    def line(value: dict[str, Any]) -> None:
        lines.put(orjson.dumps(value) + b"\n")

    def run() -> None:
        try:
            with session_scope() as session:
                outcome = work(session, lambda n: line({"read": n}))
            line({"status": status, "result": outcome})
        except ApiError as exc:
            line({"status": exc.status, "error": error_body(exc.code, exc.message, exc.details)})
        except Exception:
            log.exception("upload failed")
            message = "an unexpected error occurred; the service's log has the details"
            details = {"request_id": request_id.get() or "-"}
            line({"status": 500, "error": error_body("InternalError", message, details)})
        finally:
            cleanup()
            lines.put(None)

    # The thread keeps the request's context: its log lines carry the request id.
    threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True).start()
    while (item := lines.get()) is not None:
        yield item

"""`GET /tiles/{layers}.pmtiles`: an offline package (tiles.pmtiles_export) for administrators.

Who may: an admin key or account (geo.auth.require("admin")): the platform administrator for
any layers, a department's admin for the layers its department may read at the download level
(its own, public ones, and those granted to it with `download` or `edit`). Anyone else: 403
(anonymous: 401). An archive is built whole before its first byte is sent, so every refusal (a
layer not readable, too many tiles, nothing to export) is a JSON error, never a cut-off file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from fastapi import Depends, Query, Response
from fastapi.responses import StreamingResponse

from geo import spool
from geo.auth import Principal, require
from geo.openapi import errors, returns
from geo.routing import api_router
from tiles import pmtiles_export
from tiles.service import parse_layer_ids

CHUNK = 1024 * 1024

router = api_router(tags=["tiles"])

TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {
        **errors(413)[413],
        "description": "The archive would hold more tiles than GEO_PMTILES_MAX_TILES "
        "(code ExportTooLarge)",
    }
}


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    try:
        file.seek(0)
        while chunk := file.read(CHUNK):
            yield chunk
    finally:
        file.close()


@router.get(
    "/tiles/{layers}.pmtiles",
    summary="An offline package (PMTiles v3) of one layer or a comma-separated set, for admins",
    response_class=Response,
    responses=returns({pmtiles_export.MEDIA_TYPE: None}, "the archive")
    | errors(403, 404, 422)
    | TOO_LARGE,
)
def get_pmtiles(
    layers: str,
    zooms: str = Query(default="8-16", max_length=5, description="zoom range, e.g. 8-16"),
    bbox: str | None = Query(
        default=None,
        max_length=200,
        description="minlon,minlat,maxlon,maxlat (WGS 84); default: the layers' extent",
    ),
    who: Principal = Depends(require("admin")),
) -> StreamingResponse:
    # A sync handler: FastAPI runs it in a thread, where the export's own event loop runs.
    ids = parse_layer_ids(layers)
    zoom_range = pmtiles_export.parse_zooms(zooms)
    area = pmtiles_export.parse_bbox(bbox) if bbox is not None else None
    file = spool.temporary_file()
    try:
        summary = pmtiles_export.export_archive(who, ids, zoom_range, area, file)
    except BaseException:
        file.close()
        raise
    name = "_".join(ids)[:100]
    headers = {
        "Content-Length": str(summary.size),
        "Content-Disposition": f'attachment; filename="{name}.pmtiles"',
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(_chunks(file), media_type=pmtiles_export.MEDIA_TYPE, headers=headers)

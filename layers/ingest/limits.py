"""Guards that run before any parsing: upload size and zip bombs (the JSON nesting depth is
checked by the scan that splits GeoJSON into batches, layers.ingest.geojson_scan).

Each guard reads the spooled file in fixed-size chunks, so a 1 GB upload never sits in memory,
and fails with a 4xx that names the limit and how to change it.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import BinaryIO

from geo.errors import ApiError

CHUNK = 8 * 1024 * 1024
# A real zipped Shapefile compresses 2-10x; text-heavy DBFs reach ~50x. Beyond this the archive
# is built to expand, not to carry data.
MAX_ZIP_RATIO = 200
MAX_ZIP_MEMBERS = 10_000


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "PayloadTooLarge",
        f"upload of {size} bytes exceeds the limit of {limit} bytes (GEO_MAX_UPLOAD_BYTES)",
        {"limit": limit},
    )


def spool(source: BinaryIO, target: Path, limit: int) -> int:
    """Copy an upload to ``target`` in chunks, stopping as soon as it passes ``limit``."""
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise too_large(written, limit)
            out.write(chunk)
    return written


def check_zip(path: Path, limit: int) -> zipfile.ZipFile:
    """Open a zip after checking that what it would expand to is within the upload limit."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ApiError(400, "InvalidFile", f"not a readable zip archive: {exc}") from exc
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise ApiError(
            400, "ZipBomb", f"zip holds {len(members)} members (at most {MAX_ZIP_MEMBERS})"
        )
    total = sum(m.file_size for m in members)
    if total > limit:
        raise ApiError(
            413,
            "ZipBomb",
            f"zip expands to {total} bytes, beyond the upload limit of {limit} bytes",
            {"uncompressed": total, "limit": limit},
        )
    for m in members:
        if m.file_size > 1024 * 1024 and m.file_size > MAX_ZIP_RATIO * max(m.compress_size, 1):
            raise ApiError(
                400,
                "ZipBomb",
                f"zip member {m.filename!r} expands {m.file_size // max(m.compress_size, 1)}x "
                f"(at most {MAX_ZIP_RATIO}x): refusing a likely zip bomb",
                {"member": m.filename},
            )
    return archive


def extract_member(archive: zipfile.ZipFile, name: str, target: Path) -> None:
    with archive.open(name) as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, CHUNK)

"""Guards that run before any parsing: upload size, zip bombs, JSON nesting depth.

Each guard reads the spooled file in fixed-size chunks, so a 1 GB upload never sits in memory,
and fails with a 4xx that names the limit and how to change it.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

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


# Per byte: +1 opens, -1 closes a level; _INTEREST marks brackets and quotes.
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_INTEREST = _STEP != 0
_INTEREST[ord('"')] = True


def json_depth(path: Path, limit: int) -> None:
    """Reject JSON nested deeper than ``limit`` before a parser builds it.

    A streaming parser asked for ``features.item`` still builds whatever deep structure a feature
    holds, and 200,000 nested arrays exhaust memory. The scan is vectorised: escapes are removed
    (``\\\\`` pairs first, then ``\\"``), quotes toggle "inside a string", and brackets
    outside strings move the depth.
    """
    depth = 0
    in_string = False
    carry = b""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            data = carry + chunk
            # Keep a trailing run of backslashes for the next chunk: its pairing is not known yet.
            stripped = data.rstrip(b"\\")
            carry = data[len(stripped) :]
            data = stripped.replace(b"\\\\", b"").replace(b'\\"', b"")
            arr = np.frombuffer(data, dtype=np.uint8)
            marks = arr[_INTEREST[arr]]
            quotes = marks == ord('"')
            inside = ((np.cumsum(quotes) & 1).astype(bool) ^ in_string) | quotes
            steps = np.where(inside, 0, _STEP[marks].astype(np.int64))
            if len(steps):
                levels = depth + np.cumsum(steps)
                deepest = int(levels.max())
                if deepest > limit:
                    raise ApiError(
                        400,
                        "TooDeep",
                        f"JSON nested {deepest}+ levels deep; at most {limit} (GEO_MAX_JSON_DEPTH)",
                        {"limit": limit},
                    )
                depth = int(levels[-1])
            in_string ^= bool(int(quotes.sum()) % 2)

"""Conditional requests: one rule, and one set of statuses, for addresses, features and tiles.

- An ETag is an entity tag (RFC 9110): a feature's or an address's version as ``"7"``, a tile's
  or a label document's hash of its layers' versions.
- ``If-Match`` on a write is honoured everywhere: when no tag in it is the current ETag the write
  is refused with **412** ``PreconditionFailed`` (the current ETag in the header and details),
  and nothing is written. ``*`` matches any existing resource.
- A missing ``If-Match`` is a **428** ``PreconditionRequired`` where the resource requires one:
  the address library, whose edits must never overwrite someone else's unseen. Department
  features follow OGC API - Features Part 4, where it is optional: the write goes through.
- ``If-None-Match`` on a read: a **304** with the ETag (and the caching headers) when a tag in it
  is the current ETag, or when it is ``*``.
- Either header not made of entity tags (``7`` without quotes, ``"7`` unclosed) is a **400**
  ``InvalidParameterValue``: a client sending it has a bug, and guessing what it meant could
  overwrite an edit.
- Tags compare weakly (``W/"7"`` matches ``"7"``): every ETag of the service changes with the
  data it stands for, so a weak and a strong tag of the same value name the same state.
"""

from __future__ import annotations

import re
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from geo.errors import ApiError

_TAG: Final = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_TAGS: Final = re.compile(rf"\s*{_TAG}(?:\s*,\s*{_TAG})*\s*")  # fullmatch
_ONE_TAG: Final = re.compile(rf"{_TAG}")
# Headers a 304 repeats from the answer it stands for (RFC 9110, 15.4.5).
_KEPT_ON_304: Final = ("etag", "cache-control", "content-location", "date", "expires", "vary")


def etag(version: int) -> str:
    """The ETag of a versioned resource (a feature, an address)."""
    return f'"{version}"'


def _tags(header: str, name: str) -> set[str] | None:
    """The opaque tags of an If-Match/If-None-Match value (W/ dropped); None for ``*``."""
    if header.strip() == "*":
        return None
    if not _TAGS.fullmatch(header):
        raise ApiError(
            400,
            "InvalidParameterValue",
            f'{name} {header!r} is not a list of entity tags (like "7" or W/"7") or *',
            {"header": name},
        )
    return {t.removeprefix("W/") for t in _ONE_TAG.findall(header)}


def check_if_match(header: str | None, current: int, *, required: bool, what: str) -> None:
    """If-Match on a write to ``what`` (e.g. ``address 12``) at version ``current``."""
    now = etag(current)
    if header is None or not header.strip():
        if required:
            raise ApiError(
                428,
                "PreconditionRequired",
                f"send If-Match with the ETag of the {what} you edit (now {now})",
                {"version": current},
                headers={"ETag": now},
            )
        return
    tags = _tags(header, "If-Match")
    if tags is not None and now not in tags:
        raise ApiError(
            412,
            "PreconditionFailed",
            f"the {what} changed since you read it: it is at {now}, you sent If-Match {header}; "
            "GET it again and redo the edit",
            {"version": current},
            headers={"ETag": now},
        )


def check_if_none_match(request: Request) -> None:
    """A 400 for a malformed If-None-Match, before a read does any work."""
    header = request.headers.get("if-none-match")
    if header is not None:
        _tags(header, "If-None-Match")


def not_modified(request: Request, current: str) -> bool:
    """Whether a read whose answer has the ETag ``current`` is a 304 for this request."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    tags = _tags(header, "If-None-Match")
    return tags is None or current.removeprefix("W/") in tags


def conditional(request: Request, response: Response) -> Response:
    """The 304 standing for ``response`` when the request's If-None-Match names its ETag;
    ``response`` otherwise. Applied to every GET by geo.routing, so a read only has to send its
    ETag; a read that can tell its ETag before doing the work (tiles) asks
    :func:`not_modified` itself first."""
    current = response.headers.get("etag")
    if response.status_code != 200 or current is None or not not_modified(request, current):
        return response
    kept = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_ON_304}
    return Response(status_code=304, headers=kept)

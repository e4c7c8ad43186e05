"""Hostile input refused at the door: control characters, NUL, numbers out of range.

Every one of these used to reach PostgreSQL or PROJ and come back as a 500 (a dropped
connection for some): PostgreSQL cannot store NUL in text, a bigint cannot hold 2^70, and a
validator written ``re.match(r"^...$")`` let ``x\\n`` through, so a department ``code\\n`` was
created beside ``code``. The checks live here once, for every route:

- :class:`InputGuardMiddleware` (installed by :func:`install`) refuses control characters in the
  request path and in query parameter names, and control characters other than tab, CR and LF
  in query parameter values (free text such as a CQL2 filter or a pasted address may span
  lines; ids never reach storage without a full-match check). It also watches the bodies that
  are not files for a JSON ``\\u0000`` escape, the only way a NUL gets into a JSON string.
- :func:`nul_path` / :func:`reject_nul` name the member of a parsed JSON document holding a
  NUL, for JSON that arrives another way (a multipart form field).
- :func:`check_int` / :func:`check_float` / :func:`bounded_int` keep integers within
  PostgreSQL's bigint and floats finite; ``geo.routing`` applies them to every declared int and
  float parameter of every route, so a new route is covered without remembering to.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

from geo.asgi import HttpMiddleware
from geo.errors import ApiError, error_body

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1
# C0 controls and DEL. Paths and parameter names may hold none of them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# In parameter values, line breaks and tabs are text (a multi-line filter, a pasted address).
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Bodies that are files are read by the upload pipelines, which check their own content.
_FILE_TYPES = ("multipart/form-data", "application/octet-stream")
_NUL_ESCAPE = b"\\u0000"


class InvalidInput(HTTPException):
    """Raised while the body is being read. FastAPI lets HTTPExceptions raised by the body
    stream through its own parsing (anything else becomes its generic 400), and the handler
    :func:`install` registers renders it in the service's error shape."""

    def __init__(self, code: str, message: str, details: Any) -> None:
        super().__init__(400, message)
        self.code = code
        self.details = details


def check_text(name: str, text: str, *, multiline: bool = False, label: str = "") -> None:
    """400 when ``text`` holds a control character (tab, CR and LF allowed when ``multiline``);
    ``name`` is the parameter named in the details, ``label`` how the message calls it."""
    found = (_VALUE_CONTROL if multiline else _CONTROL).search(text)
    if found is not None:
        character = f"U+{ord(found.group()):04X}"
        raise ApiError(
            400,
            "InvalidCharacter",
            f"{label or name} contains the control character {character} at position "
            f"{found.start()}; remove it (check for a stray %00 or %0A in the URL)",
            {"parameter": name, "character": character, "position": found.start()},
        )


def check_query(query_string: str) -> None:
    """Every parameter name and value of a raw query string (as the app will decode it)."""
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        label = f"query parameter {name!r}"
        check_text(name, name, label=label)
        check_text(name, value, multiline=True, label=label)


def nul_path(value: Any, path: str = "") -> str | None:
    """Where in a parsed JSON document the first string (member name or value) holding NUL is,
    as ``features[3].properties.name``; None when there is none."""
    if isinstance(value, str):
        return (path or "(root)") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            member = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return member
            found = nul_path(item, member)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def reject_nul(raw: bytes, value: Any, what: str) -> None:
    """400 naming the member when a JSON document parsed from ``raw`` holds a NUL character.

    The bytes are searched first (one C-level scan), so documents without the escape, all but
    the hostile ones, are never walked."""
    if _NUL_ESCAPE not in raw:
        return
    path = nul_path(value)
    if path is not None:
        raise ApiError(
            400,
            "InvalidCharacter",
            f"{what}: {path} contains a NUL character (\\u0000), which text cannot hold",
            {"parameter": what, "path": path},
        )


class _NulScanner:
    """Finds a JSON ``\\u0000`` escape in a body arriving in chunks of any size.

    A backslash escapes only when an even number of backslashes precede it (``\\\\u0000`` is a
    backslash followed by the text u0000), so the run of backslashes before each candidate is
    counted, across chunk boundaries too."""

    def __init__(self) -> None:
        self.tail = b""  # the last bytes seen, enough for an escape split across chunks
        self.run = 0  # backslashes immediately before `tail`
        self.offset = 0  # position of `tail` in the body

    def feed(self, chunk: bytes) -> int | None:
        data = self.tail + chunk
        start = data.find(_NUL_ESCAPE)
        while start >= 0:
            before = start
            while before > 0 and data[before - 1] == 0x5C:
                before -= 1
            run = start - before + (self.run if before == 0 else 0)
            if run % 2 == 0:
                return self.offset + start
            start = data.find(_NUL_ESCAPE, start + 1)
        keep = min(len(data), len(_NUL_ESCAPE) - 1)
        cut = len(data) - keep
        before = cut
        while before > 0 and data[before - 1] == 0x5C:
            before -= 1
        self.run = cut - before + (self.run if before == 0 else 0)
        self.tail = data[cut:]
        self.offset += cut
        return None


class InputGuardMiddleware(HttpMiddleware):
    """Path and query string checked before routing; non-file bodies watched as they are read."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            check_text("path", scope.get("path", ""), label="the request path")
            check_query(scope.get("query_string", b"").decode("latin-1"))
        except ApiError as exc:
            response = JSONResponse(error_body(exc.code, exc.message, exc.details), 400)
            await response(scope, receive, send)
            return
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if kind in _FILE_TYPES:
            await self.app(scope, receive, send)
            return
        scanner = _NulScanner()

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                found = scanner.feed(message.get("body", b""))
                if found is not None:
                    raise InvalidInput(
                        "InvalidCharacter",
                        f"the request body holds a NUL character (\\u0000) at byte {found}; "
                        "text cannot hold NUL",
                        {"parameter": "body", "position": found},
                    )
            return message

        await self.app(scope, watched, send)


def install(app: FastAPI) -> None:
    """The middleware and the handler for the error it raises from inside body parsing."""

    async def _invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidInput)
        return JSONResponse(error_body(exc.code, str(exc.detail), exc.details), 400)

    app.add_exception_handler(InvalidInput, _invalid)
    app.add_middleware(InputGuardMiddleware)


# -- numbers -------------------------------------------------------------------------------------


def check_int(
    name: str,
    raw: str,
    minimum: int = BIGINT_MIN,
    maximum: int = BIGINT_MAX,
    label: str | None = None,
) -> int:
    """``raw`` as an integer within [minimum, maximum] (PostgreSQL's bigint by default).

    ValueError when it is not an integer at all (callers report that in their own words); a
    400 naming the bounds when it is one but out of range. Digits beyond 19 are out of range
    without converting them (int() of a 4000-digit string is not free)."""
    text = raw.strip()
    digits = text.lstrip("+-")
    if not digits.isdigit() or not digits.isascii() or len(text) - len(digits) > 1:
        raise ValueError(f"{name}: not an integer: {raw!r}")
    value = int(text) if len(digits.lstrip("0")) <= 19 else None
    if value is None or not minimum <= value <= maximum:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"{label or name} must be an integer from {minimum} to {maximum}, not {_excerpt(raw)}",
            {"parameter": name, "minimum": minimum, "maximum": maximum},
        )
    return value


def bounded_int(name: str, raw: str | None, default: int, minimum: int = 0) -> int:
    """An optional count-like query parameter (limit, offset): ``default`` when absent, else
    :func:`check_int` from ``minimum`` to bigint's maximum."""
    return default if raw is None else check_int(name, raw, minimum)


def check_float(name: str, raw: str, label: str | None = None) -> float:
    """``raw`` as a finite float: NaN, inf and 1e400 are refused before they reach PROJ or SQL.

    ValueError when it is not a number at all."""
    value = float(raw)
    if not math.isfinite(value):
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"{label or name} must be a finite number, not {_excerpt(raw)}",
            {"parameter": name},
        )
    return value


def _excerpt(raw: str) -> str:
    return repr(raw) if len(raw) <= 40 else repr(raw[:37] + "...")

"""Request bodies: bounded before anything reads them, and JSON parsed by one parser.

Without a bound, one client sending a 200 MB JSON body held a worker for 50 s and 2.2 GB of
memory before its 400, and froze `/health` meanwhile. This pure ASGI middleware answers 413
straight from a `Content-Length` over the limit without reading a byte, and counts the bytes of
bodies sent without one (chunked), stopping the read at the limit. Files (multipart forms and
raw octet streams) get the upload limit; everything else (JSON, text, forms) the smaller body
limit, since no JSON document the API takes needs more.

Every JSON body (and JSON inside a form, such as an upload's ``metadata``) is then parsed by
:func:`parse_json`: orjson (no NaN literals, bounded recursion), the nesting limit
``GEO_MAX_JSON_DEPTH`` checked before any recursive code walks the document, and NUL refused.
Routes take it through the :func:`json_body` dependency, or, when they declare a pydantic body,
through geo.routing, which hands FastAPI the document this parser made.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from geo import inputs
from geo.asgi import HttpMiddleware
from geo.errors import ApiError, error_body
from geo.nesting import check_json_depth
from geo.settings import get_settings

M = TypeVar("M", bound=BaseModel)

FILE_TYPES = ("multipart/form-data", "application/octet-stream")
# Bodies above this are parsed in the thread pool: walking a few MB of coordinates on the event
# loop would stall every other request of the worker.
PARSE_INLINE_BYTES = 256 * 1024
# A multipart form wraps its file in boundaries and part headers; allow for them so that a file
# of exactly the upload limit still goes through.
MULTIPART_OVERHEAD = 1 << 20


def body_limit(content_type: str) -> tuple[int, str]:
    """The byte limit for a body of this content type, and the setting that governs it."""
    settings = get_settings()
    if content_type.split(";")[0].strip().lower() in FILE_TYPES:
        return settings.max_upload_bytes + MULTIPART_OVERHEAD, "GEO_MAX_UPLOAD_BYTES"
    return settings.max_body_bytes, "GEO_MAX_BODY_BYTES"


def too_large_message(limit: int, setting: str) -> str:
    return f"the request body is larger than {limit} bytes ({setting})"


class BodyLimitMiddleware(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.lower(): v for k, v in scope["headers"]}
        limit, setting = body_limit(headers.get(b"content-type", b"").decode("latin-1"))
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > limit:
            response = JSONResponse(
                error_body("PayloadTooLarge", too_large_message(limit, setting)),
                status_code=413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside whatever is reading the body; FastAPI passes HTTPExceptions
                    # through its body parsing, and geo.errors renders it as the JSON 413.
                    raise HTTPException(413, too_large_message(limit, setting))
            return message

        await self.app(scope, counted, send)


def parse_json(raw: bytes, what: str = "request body") -> Any:
    """The one JSON parser of the service (see the module doc); every failure is a 400 naming
    ``what``."""
    if not raw.strip():
        raise ApiError(400, "MalformedJSON", f"{what} is empty")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "MalformedJSON", f"{what} is not valid JSON: {exc}") from exc
    check_json_depth(value, what)
    # PostgreSQL cannot store NUL; JSON reaching here outside a request body (the upload's
    # multipart `metadata`) has not passed the body watch of geo.inputs.
    inputs.reject_nul(raw, value, what)
    return value


async def json_body(request: Request) -> Any:
    """Dependency: the request's JSON body (bounded by the body limit above), parsed."""
    raw = await request.body()
    if len(raw) > PARSE_INLINE_BYTES:
        return await run_in_threadpool(parse_json, raw)
    return parse_json(raw)


def model(cls: type[M], value: Any) -> M:
    """``value`` checked against a pydantic model; the first problem is a 400 naming where."""
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors()
        details = [{"location": [str(p) for p in e["loc"]], "problem": e["msg"]} for e in errors]
        where = ".".join(details[0]["location"]) or "body"
        raise ApiError(
            400, "InvalidParameterValue", f"{where}: {details[0]['problem']}", details
        ) from exc

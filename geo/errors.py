"""One error shape for the whole API: ``{"code", "message", "details"}``.

Clients (and the tests) key on ``code``, people read ``message``; ``details`` carries the
machine-readable specifics (the offending parameter, a per-feature report...). Every 4xx the
service sends goes through here so that no endpoint invents its own format.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg.errors import QueryCanceled, ReadOnlySqlTransaction
from psycopg_pool import PoolTimeout
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo.settings import get_settings


class ApiError(Exception):
    """An error the client can act on; raised anywhere, rendered by :func:`install_handlers`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def bad_request(code: str, message: str, details: Any = None) -> ApiError:
    return ApiError(400, code, message, details)


def not_found(message: str, details: Any = None) -> ApiError:
    return ApiError(404, "NotFound", message, details)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": _json_safe(details)}


def _json_safe(value: Any) -> Any:
    """Details echo the client's input, which may be NaN or inf (``?lon=nan``); JSON has no
    such numbers and the response would fail to render (a 500 in place of the 400). They are
    sent as their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


_HTTP_CODES = {
    400: "InvalidParameterValue",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    412: "PreconditionFailed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "InvalidInput",
}


def _describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
    """Turn pydantic's error list into a message that names the offending input."""
    details = [
        {
            "location": [str(p) for p in e.get("loc", ())],
            "problem": e.get("msg", ""),
            "type": e.get("type"),
        }
        for e in errors
    ]
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = next(e for e in errors if e.get("type") == "json_invalid").get("ctx") or {}
        return (
            "MalformedJSON",
            f"request body is not valid JSON: {ctx.get('error', 'parse error')}",
            details,
        )
    first = details[0] if details else {"location": [], "problem": "invalid input"}
    where = ".".join(p for p in first["location"] if p not in ("body",)) or "request"
    return "InvalidParameterValue", f"{where}: {first['problem']}", details


# Long enough that clients do not pile retries onto a database that is already struggling,
# short enough for someone waiting at a map.
RETRY_AFTER_SECONDS = 10


def statement_timeout_response() -> JSONResponse:
    """503 for a statement PostgreSQL cancelled: the request asked for more work than one
    statement may take (GEO_STATEMENT_TIMEOUT_MS), or the database is too busy to do it now.
    Not a 500: nothing is broken, and the client can narrow the request or come back."""
    timeout_ms = get_settings().statement_timeout_ms
    return JSONResponse(
        error_body(
            "StatementTimeout",
            f"the database cancelled this request's query after the {timeout_ms} ms it may "
            "take (GEO_STATEMENT_TIMEOUT_MS); ask for less (a smaller area, fewer layers, a "
            "filter) or retry later",
            {"timeout_ms": timeout_ms, "setting": "GEO_STATEMENT_TIMEOUT_MS"},
        ),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def database_unavailable_response() -> JSONResponse:
    """503 while no primary can be reached (a failover under way, the server restarting): the
    request wrote nothing, and the same request will work once a primary is back."""
    return JSONResponse(
        error_body(
            "DatabaseUnavailable",
            "the database cannot be reached or is not accepting writes right now (a failover "
            "may be under way); nothing was written, retry shortly",
        ),
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


# A failover takes seconds: ask clients back sooner than after a timeout.
DATABASE_RETRY_AFTER_SECONDS = 5
# Lost connections, refused connections, a demoted primary, a pool that found no server in time.
UNAVAILABLE = (OperationalError, ReadOnlySqlTransaction, PoolTimeout)


def install_handlers(app: FastAPI) -> None:
    """Route every failure, including the framework's own, to the one JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        code, message, details = _describe_validation(list(exc.errors()))
        return JSONResponse(error_body(code, message, details), status_code=400)

    @app.exception_handler(QueryCanceled)
    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(DBAPIError)
    async def _cancelled(_: Request, exc: Exception) -> JSONResponse:
        # A statement PostgreSQL cancelled (statement_timeout, GEO_STATEMENT_TIMEOUT_MS) and a
        # database out of reach are the client's to retry; any other database error stays a
        # 500. (QueryCanceled is an OperationalError too: it is checked first.)
        cause = getattr(exc, "orig", None) or exc
        if isinstance(cause, QueryCanceled):
            return statement_timeout_response()
        if isinstance(cause, UNAVAILABLE):
            return database_unavailable_response()
        raise exc

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "Error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return JSONResponse(
            error_body(code, message),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


def internal_error(request_id: str) -> JSONResponse:
    """500 for a failure nobody foresaw (a bug): the one error shape still, with the request
    id the client can quote and under which the log holds the traceback (geo.logs). The
    exception's own text stays out: it may name tables, files or values."""
    return JSONResponse(
        error_body(
            "InternalError",
            "an unexpected error occurred; the service's log has the details under this request id",
            {"request_id": request_id},
        ),
        status_code=500,
    )

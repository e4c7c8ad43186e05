"""Logging: one line per request, unexpected errors with their traceback, slow statements.

Operators need to answer "what happened to this request?" from the log alone, so:

- every request leaves exactly one line (logger `geo.request`): its request id, method, route
  template (`/collections/{collection_id}/items`: groups and counts well, unlike raw paths),
  status, duration, and who called (department and 8-character key prefix, never a key, or the
  account of a person signed in by cookie). It
  replaces uvicorn's access log, which `geo serve` turns off (`log_config`);
- the request id comes from `X-Request-ID` when the client (or a proxy) sent a sane one, is made
  up otherwise, is echoed on every response, and is carried by every record logged while the
  request runs (a context variable), the slow-statement warnings included;
- an exception nobody handled becomes the one error shape (a 500 `InternalError` naming the
  request id, which the client can quote) and its traceback goes into that request's line;
- statements slower than `GEO_SLOW_QUERY_MS` are warnings (logger `geo.slow_query`) with their
  first characters: the SQL text with its placeholders, never the bound values.

Human-readable lines by default; `GEO_LOG_FORMAT=json` writes one JSON object per line for log
shippers. Credentials in logged URLs are redacted (geo.redact).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Self

from fastapi import FastAPI
from psycopg import AsyncCursor, sql
from psycopg.abc import Query
from psycopg.rows import Row
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter
from sqlalchemy import Engine, event
from starlette.types import Message, Receive, Scope, Send

from geo.asgi import HttpMiddleware
from geo.errors import internal_error
from geo.redact import RedactSecrets, redact
from geo.settings import Settings, get_settings

request_log = logging.getLogger("geo.request")
slow_query_log = logging.getLogger("geo.slow_query")

REQUEST_ID_HEADER = "x-request-id"
# What a client's X-Request-ID may be: short, printable ASCII without spaces, so that it can
# neither forge a log line nor bloat one. Anything else is replaced by one of ours.
_ACCEPTED_ID = re.compile(r"[!-~]{1,64}")
STATEMENT_EXCERPT = 200

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _ACCEPTED_ID.fullmatch(text) else None
    return None


def _printable(text: str) -> str:
    """`text` with anything unprintable escaped: a logged path can never start a new line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _target(scope: Scope) -> str:
    """The request target as sent (percent-encoded), credentials redacted."""
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    target = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    return redact(_printable(target))


class RequestLogMiddleware(HttpMiddleware):
    """Pure ASGI (no body buffering, streaming responses untouched); outermost of ours, so that
    requests other middleware refuses (rate limits, hostile input, bodies too large) are logged
    and timed too."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message["headers"] = headers
            await send(message)

        failure: Exception | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Caught here rather than by a Starlette handler for Exception: that one runs
            # outside every middleware (no X-Request-ID on the 500) and re-raises, so uvicorn
            # would log the traceback a second time, apart from this request's line.
            failure = exc
            if status is None:
                await internal_error(rid)(scope, receive, send_with_id)
        finally:
            _log_request(scope, status, time.perf_counter() - started, failure)
            request_id.reset(token)


def _log_request(
    scope: Scope, status: int | None, seconds: float, failure: Exception | None
) -> None:
    route = getattr(scope.get("route"), "path", None)
    # geo.auth.principal (and tiles' token check) put the caller on request.state.
    who = (scope.get("state") or {}).get("principal")
    department = getattr(who, "department", None)
    prefix = getattr(who, "key_prefix", None)
    account = getattr(who, "account", None)  # a person signed in by cookie (geo.accounts)
    client = scope.get("client")
    fields = {
        "method": scope["method"],
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "department": department,
        "key_prefix": prefix,
        "account": account,
        "client": client[0] if client else None,
        "path": _target(scope),
    }
    # A bug is an error; other 5xx (a statement timeout's 503) are the service struggling.
    level = logging.WARNING if (status or 0) >= 500 else logging.INFO
    if failure:
        level = logging.ERROR
    request_log.log(
        level,
        # The account only when there is one: key callers' lines stay as they were.
        "%s %s %s %.1fms dept=%s key=%s " + ("user=%s " if account else "%s") + "client=%s path=%s",
        fields["method"],
        route or "-",
        status or "-",
        fields["duration_ms"],
        department or "-",
        prefix or "-",
        account or "",
        fields["client"] or "-",
        fields["path"],
        exc_info=failure,
        extra=fields,
    )


def _excerpt(statement: Query) -> str:
    if isinstance(statement, bytes):
        text = statement.decode(errors="replace")
    elif isinstance(statement, sql.Composable):
        text = statement.as_string(None)
    else:
        text = str(statement)
    return " ".join(text.split())[:STATEMENT_EXCERPT]


def note_statement(statement: Query, seconds: float) -> None:
    """Warn when a statement took longer than GEO_SLOW_QUERY_MS. `statement` is the SQL text
    only: its bound values (keys' hashes, people's addresses) never reach the log. Rendered
    only when it is logged: most statements are fast."""
    ms = seconds * 1000
    if ms >= get_settings().slow_query_ms:
        excerpt = _excerpt(statement)
        slow_query_log.warning(
            "slow query: %.1fms: %s",
            ms,
            excerpt,
            extra={"duration_ms": round(ms, 1), "statement": excerpt},
        )


_STARTED = "geo.statement_started"


def _before_cursor_execute(conn: Any, *_: Any) -> None:
    conn.info[_STARTED] = time.perf_counter()


def _after_cursor_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    started = conn.info.pop(_STARTED, None)
    if started is not None:
        note_statement(statement, time.perf_counter() - started)


def _watch_engines() -> None:
    """Time every SQLAlchemy statement (every engine geo.db makes, replicas included).

    On the Engine class, since engines are made lazily, after the app. One slot per connection
    suffices: a connection runs one statement at a time, and a failed one's start is simply
    overwritten by the next."""
    if not event.contains(Engine, "before_cursor_execute", _before_cursor_execute):
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
        event.listen(Engine, "after_cursor_execute", _after_cursor_execute)


class TimedAsyncCursor(AsyncCursor[Row]):
    """psycopg cursor for the tile pool (tiles.pool), which skips SQLAlchemy and its events:
    the same slow-statement warning."""

    async def execute(self, query: Query, *args: Any, **kwargs: Any) -> Self:
        started = time.perf_counter()
        try:
            await super().execute(query, *args, **kwargs)
        finally:
            note_statement(query, time.perf_counter() - started)
        return self


def install(app: FastAPI) -> None:
    """The request log and the slow-statement timing, for this app's process."""
    app.add_middleware(RequestLogMiddleware)
    _watch_engines()


# Formatting, applied by `geo serve` through uvicorn's log_config (in every worker process).


class RequestIdFilter(logging.Filter):
    """Gives every record the id of the request it was logged for ('-' outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or "-"
        return True


class TextFormatter(logging.Formatter):
    """`2026-12-05T12:53:07.123Z INFO geo.request [id] message`, then any traceback."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: time, level, logger, request_id, message, the record's
    fields (`extra`), and `exc_info` with the traceback when there is one."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(request_id)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn adds a copy of its messages with terminal colours.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
            timestamp="time",
        )


def log_config(settings: Settings | None = None) -> dict[str, Any]:
    """A logging dictConfig for `geo serve`: one handler on stderr for ours and uvicorn's
    records alike (one format per stream, which log shippers need), with request ids and
    credentials redacted (geo.redact.RedactSecrets, on the handler: a logger's filters would
    not see the records its children propagate)."""
    settings = settings or get_settings()
    formatter = JsonFormatter if settings.log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "redact_secrets": {"()": RedactSecrets},
        },
        "formatters": {"geo": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "geo",
                "filters": ["request_id", "redact_secrets"],
            }
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {"geo": {"level": "INFO"}, "uvicorn": {"level": "INFO"}},
    }

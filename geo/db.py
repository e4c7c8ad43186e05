"""The one place that knows how to reach the database: engines, sessions, read replicas.

Writes go to the primary; reads that tolerate replication lag (catalogue listings, tiles, feature
queries) may ask for :func:`read_engine`, which rotates over `GEO_READ_URLS` when set. Within a
request the choice is made once (:class:`PinnedReadsMiddleware`): a tile's data version and its
bytes must come from the same replica, or a tile could be cached under a version it was not made
from. The API processes hold no other state, which is what lets them scale out behind a load
balancer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Annotated, Any, cast

import orjson
import psycopg
from fastapi import Depends
from psycopg.errors import ReadOnlySqlTransaction
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from starlette.types import Receive, Scope, Send

from geo.asgi import HttpMiddleware
from geo.metrics import waiting_for_connection
from geo.settings import Settings, get_settings


class Base(DeclarativeBase):
    """Declarative base shared by every package's models, so Alembic sees one metadata."""


def normalize_url(url: str) -> str:
    """Accept the plain `postgresql://` URLs operators paste and use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str | URL) -> str:
    """A SQLAlchemy URL as libpq takes it (psycopg.connect, psycopg pools): the driver name
    dropped, the password kept, and SQLAlchemy's multi-host form (`@/db?host=h1:p1&host=h2:p2`,
    a pg_auto_failover pair) written as libpq's `@h1:p1,h2:p2/db`."""
    parsed = make_url(url) if isinstance(url, str) else url
    hosts = parsed.query.get("host")
    if isinstance(hosts, tuple):
        query = {k: v for k, v in parsed.query.items() if k != "host"}
        single = parsed.set(query=query, host="HOSTS")
        text_url = single.render_as_string(hide_password=False).replace(
            "@HOSTS", "@" + ",".join(hosts), 1
        )
    else:
        text_url = parsed.render_as_string(hide_password=False)
    return text_url.replace("postgresql+psycopg://", "postgresql://", 1)


def database_url(settings: Settings | None = None) -> str:
    """`DATABASE_URL` when set, else the embedded cluster under `GEO_DATA_DIR`."""
    settings = settings or get_settings()
    if settings.database_url:
        return normalize_url(settings.database_url)
    from geo.embedded import EmbeddedCluster

    return EmbeddedCluster(settings.pg_dir).url()


def timeout_options(timeout_ms: int, options: str | None = None) -> str:
    """libpq ``options`` giving every statement of a connection ``timeout_ms`` at most, after
    the ``options`` the URL already has (kept, not replaced).

    Set at connection start rather than by SET, it holds for every transaction the pool ever
    runs on the connection, including the ones nobody remembered to bound; a cancelled
    statement is a 503 (geo.errors). Bulk work raises it for its own transaction only
    (:func:`bulk_statement_timeout`).
    """
    return " ".join(filter(None, [options, f"-c statement_timeout={int(timeout_ms)}"]))


def bulk_statement_timeout(session: Session | Connection) -> None:
    """Let this transaction's statements run up to ``GEO_BULK_STATEMENT_TIMEOUT_MS`` (an hour).

    For the work that legitimately outlasts a request's bound: an upload's COPY (open while
    the file is parsed) and index builds, address imports, sample loads. SET LOCAL, so it ends
    with the transaction and the pooled connection is back to the API's bound afterwards.
    """
    timeout_ms = get_settings().bulk_statement_timeout_ms
    session.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(int(timeout_ms))}
    )


def _stale_primary(context: ExceptionContext) -> None:
    """A connection made to the primary before a failover may now reach a demoted server, which
    refuses writes as read-only: treat that as a lost connection, so SQLAlchemy drops the whole
    pool and the next checkout finds the new primary (target_session_attrs=read-write)."""
    if isinstance(context.original_exception, ReadOnlySqlTransaction):
        context.is_disconnect = True


def _make_engine(url: str, settings: Settings, primary: bool = False) -> Engine:
    parsed = make_url(normalize_url(url))
    options = parsed.query.get("options")
    connect_args: dict[str, Any] = {
        "options": timeout_options(
            settings.statement_timeout_ms, options if isinstance(options, str) else None
        )
    }
    if "connect_timeout" not in parsed.query:
        # A host that does not answer must cost a bounded wait, never a hung request.
        connect_args["connect_timeout"] = settings.db_connect_timeout_s
    engine = create_engine(
        parsed,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size * 2,
        pool_pre_ping=True,
        json_serializer=lambda obj: orjson.dumps(obj).decode(),
        json_deserializer=orjson.loads,
        connect_args=connect_args,
    )
    if primary:
        event.listen(engine, "handle_error", _stale_primary)
    return engine


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return _make_engine(database_url(settings), settings, primary=True)


@lru_cache
def _read_engines() -> tuple[Engine, ...]:
    settings = get_settings()
    return tuple(_make_engine(url, settings) for url in settings.read_urls)


_rotation: Iterator[int] = itertools.count()
# The request's read engine, chosen at its first read. A one-slot list rather than the engine
# itself: the threads a request's sync handlers run in get a copy of the context, and must fill
# the same slot the event loop reads.
_pinned: ContextVar[list[Engine] | None] = ContextVar("pinned_read_engine", default=None)


def _next_read_engine() -> Engine:
    replicas = _read_engines()
    if not replicas:
        return get_engine()
    return replicas[next(_rotation) % len(replicas)]


def read_engine() -> Engine:
    """An engine for reads: the one this request already reads from, else the next replica in
    turn, or the primary when there are none."""
    slot = _pinned.get()
    if slot is None:
        return _next_read_engine()
    if not slot:
        slot.append(_next_read_engine())
    return slot[0]


@contextmanager
def pinned_reads() -> Iterator[None]:
    """Every :func:`read_engine` call inside the block returns the same engine."""
    token = _pinned.set([])
    try:
        yield
    finally:
        _pinned.reset(token)


class PinnedReadsMiddleware(HttpMiddleware):
    """One read replica per request (pure ASGI: nothing buffered)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        with pinned_reads():
            await self.app(scope, receive, send)


@lru_cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back whole on any error."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def bulk_session_scope() -> Iterator[Session]:
    """:func:`session_scope` under the bulk statement timeout, for console commands that load
    whole files (areas, grids)."""
    with session_scope() as session:
        bulk_statement_timeout(session)
        yield session


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one transaction per request, so a failed request writes nothing.

    The connection is taken here, before the handler runs: time spent waiting for the pool is
    measured (geo.metrics), and a database that cannot be reached (no primary during a
    failover) is a 503 with Retry-After before any work starts (geo.errors). pool_pre_ping
    replaces connections to a server that went away, so the first request after a failover
    reaches the new primary through the multi-host URL without a restart."""
    with session_scope() as session:
        with waiting_for_connection():
            session.connection()
        yield session


# What every route takes: the transaction is committed when the handler returns and before the
# response is sent (scope="function"). FastAPI's default scope ends the dependency after the
# response has gone out, which acknowledged writes that a crash could still lose. Handlers that
# take it are plain `def`s, so FastAPI runs them, and this dependency, in its thread pool: the
# event loop never waits on the database (a row lock held by one request must not stall /health).
DbSession = Annotated[Session, Depends(get_session, scope="function")]


def made_engines() -> list[tuple[str, Engine]]:
    """The engines this process has made so far, named (for the metrics of their pools)."""
    made = [("primary", get_engine())] if get_engine.cache_info().currsize else []
    if _read_engines.cache_info().currsize:
        made += [(f"read-{i}", e) for i, e in enumerate(_read_engines())]
    return made


def replica_engines() -> tuple[Engine, ...]:
    """One engine per GEO_READ_URLS entry (none without replicas)."""
    return _read_engines()


def reset_engines() -> None:
    """Forget engines and settings (tests and the CLI switch databases)."""
    for engine in (*_read_engines(), get_engine()) if get_engine.cache_info().currsize else ():
        engine.dispose()
    get_engine.cache_clear()
    _read_engines.cache_clear()
    _session_factory.cache_clear()
    get_settings.cache_clear()


EXTENSIONS = ("postgis", "pg_trgm")


def ensure_extensions(engine: Engine | None = None) -> None:
    with (engine or get_engine()).begin() as conn:
        for name in EXTENSIONS:
            conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {name}"))


def server_info(engine: Engine | None = None) -> dict[str, str]:
    with (engine or get_engine()).connect() as conn:
        row = conn.execute(
            text("SELECT current_setting('server_version'), postgis_lib_version()")
        ).one()
    return {"postgresql": row[0].split()[0], "postgis": row[1]}


def raw_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session, in the session's own transaction: for what
    SQLAlchemy does not offer (COPY), without leaving the transaction the session is in."""
    return cast("psycopg.Connection[Any]", session.connection().connection.driver_connection)

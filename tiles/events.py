"""Live refresh: a server-sent events stream of the changes to the layers a caller may read.

Fed by the worker's version watch (geo.version_watch: one LISTEN per worker, each stream a
bounded queue of the names it follows), so an open stream costs no database work while nothing
changes. Each change is checked against the catalogue again before it is told, as the caller,
through the tile access cache (keyed by version: one catalogue lookup per change and caller
kind): a layer whose access was revoked mid-stream gets no further events and leaves the stream.

Decisions:
- `?layers=` naming a layer the caller may not read, or that does not exist, is silently left
  out, the two alike: the `ready` event lists only the readable ones, and nothing tells the two
  apart (no status, no message, no timing of a lookup that failed differently).
- A tile token (EventSource cannot send headers) limits the stream to its layers; naming others
  is its usual 403 TokenScope, which says nothing about them.
- The stream subscribes before it reads the versions it tells in `ready`, so a change landing
  meanwhile is told (at worst twice), never lost.
- A stream whose queue overflows (a client that stopped reading) is told `overflow` and closed;
  EventSource reconnects after `retry` milliseconds and the client refreshes on `ready`.
- At most GEO_EVENTS_MAX_STREAMS streams per worker; beyond, a 503 `TooManyStreams`.
- A stream ends when its tile token expires, and one opened with a key or a session cookie
  after GEO_TILE_TOKEN_TTL: the credential is checked when a stream opens, so a revoked key or
  an ended session must not keep one open for ever. EventSource reconnects by itself, with the
  credential checked again (a client with an expired token opens a new stream with its new one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from geo import version_watch
from geo.auth import Principal
from geo.db import session_scope
from geo.errors import ApiError
from geo.sources import LayerSource
from layers.catalogue import all_readable_sources, readable_sources
from tiles.access import current_versions
from tiles.service import parse_layer_ids, readable_for_tiles
from tiles.settings import tile_settings

EVENT_STREAM = "text/event-stream"
RETRY_MS = 2000
# One event as schemathesis and the OpenAPI document read it (3.1: a stream's schema is its
# events'); `data` is JSON.
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["ready", "version", "overflow"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


class StreamSlots:
    """The open streams of this worker, bounded: each holds a queue and a task for hours."""

    def __init__(self) -> None:
        self.open = 0

    def acquire(self) -> Callable[[], None]:
        limit = tile_settings().events_max_streams
        if self.open >= limit:
            raise ApiError(
                503,
                "TooManyStreams",
                f"this worker already serves {limit} event streams; retry later",
                {"max": limit},
                headers={"Retry-After": str(RETRY_MS // 1000)},
            )
        self.open += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open -= 1

        return release


slots = StreamSlots()


def subscription(raw: str | None, token_layers: Sequence[str] | None) -> list[str] | None:
    """The layer ids asked for (None: every readable one); a token bounds them to its own."""
    ids = parse_layer_ids(raw) if raw is not None else None
    return ids if ids is not None or token_layers is None else list(token_layers)


def _readable(who: Principal, ids: list[str] | None) -> list[LayerSource]:
    with session_scope() as session:
        if ids is None:
            return all_readable_sources(session, who)
        found = []
        for layer_id in ids:
            try:
                found.extend(readable_sources(session, who, [layer_id]))
            except ApiError:
                continue  # unknown or unreadable: left out alike
        return found


def event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def _still_readable(who: Principal, layer_id: str) -> bool:
    try:
        await readable_for_tiles(who, [layer_id])
    except ApiError:
        return False
    return True


async def events(
    who: Principal,
    ready: dict[str, int],
    layers_of: dict[str, list[str]],
    subscriber: version_watch.Subscriber,
    ends_at: float,
) -> AsyncIterator[bytes]:
    """`ready` with the layers followed and their versions, then one `version` event per change
    ({"layer", "version"}), heartbeat comments in between, until `ends_at` (unix seconds)."""
    heartbeat = tile_settings().events_heartbeat
    yield f"retry: {RETRY_MS}\n\n".encode()
    yield event("ready", {"layers": ready})
    while (left := ends_at - time.time()) > 0:
        if subscriber.dropped:
            yield event("overflow", {"message": "too far behind; reconnect and refresh"})
            return
        try:
            name, version = await asyncio.wait_for(subscriber.queue.get(), min(heartbeat, left))
        except TimeoutError:
            if time.time() < ends_at:
                yield b": heartbeat\n\n"
            continue
        for layer_id in list(layers_of.get(name, ())):
            if await _still_readable(who, layer_id):
                yield event("version", {"layer": layer_id, "version": version})
            else:
                layers_of[name].remove(layer_id)
        if name in layers_of and not layers_of[name]:
            del layers_of[name]
            subscriber.names.discard(name)


class EventStream(StreamingResponse):
    """A stream that gives its slot back however it ends (finished, client gone, cancelled),
    even when its body never started."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def open_stream(who: Principal, ids: list[str] | None, ends_at: float) -> EventStream:
    """The stream of the readable layers among `ids` (None: all the caller may read), until
    `ends_at` (unix seconds)."""
    watch = version_watch.current()
    if watch is None:
        raise ApiError(503, "EventsUnavailable", "this worker has no version listener")
    release = slots.acquire()
    subscriber: version_watch.Subscriber | None = None
    try:
        sources = await run_in_threadpool(_readable, who, ids)
        layers_of: dict[str, list[str]] = {}
        for source in sources:
            layers_of.setdefault(source.version_key, []).append(source.id)
        subscriber = watch.subscribe(set(layers_of))
        # After subscribing: a change from here on is queued. Reading them through the watch
        # also has it hold the names, so a change it misses while reconnecting is still told.
        versions = await current_versions([s.id for s in sources])
    except BaseException:
        if subscriber is not None:
            watch.unsubscribe(subscriber)
        release()
        raise
    ready = {s.id: v for s, v in zip(sources, versions, strict=True)}
    follower = subscriber

    def finish() -> None:
        watch.unsubscribe(follower)
        release()

    return EventStream(events(who, ready, layers_of, follower, ends_at), finish)

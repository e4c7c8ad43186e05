"""GET /events: server-sent events telling a client which of its readable layers changed
(tiles.events explains the stream and its decisions)."""

from __future__ import annotations

import time

from fastapi import Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from geo.auth import Principal, principal
from geo.openapi import errors, returns
from geo.routing import api_router
from tiles import events, service, tokens
from tiles.settings import tile_settings

router = api_router(tags=["tiles"])

STREAM_DOC = (
    'Server-sent events, each `data` JSON: `event: ready` with `{"layers": {id: version}}` '
    "(the layers followed and their current versions), then one `event: version` with "
    '`{"layer": id, "version": n}` per change of one of them, `: heartbeat` comments in '
    "between (GEO_EVENTS_HEARTBEAT), and `event: overflow` before closing a stream that fell "
    "too far behind. Layers the caller may not read are left out exactly like unknown ones. "
    "The stream ends when its tile token expires (else after GEO_TILE_TOKEN_TTL); EventSource "
    "then reconnects"
)


async def stream_caller(request: Request, token: str | None = service.TOKEN_QUERY) -> Principal:
    """A tile token (`?token=`: EventSource cannot send headers) as on the tile routes, else the
    caller by key or session cookie (the console's pages), else anonymous."""
    if token is not None:
        return await service.caller(request, token)
    return await run_in_threadpool(principal, request)


@router.get(
    "/events",
    summary="A server-sent events stream of the changes to the layers the caller may read",
    response_class=Response,
    responses=returns({events.EVENT_STREAM: events.EVENT_SCHEMA}, STREAM_DOC)
    | errors(401, 403, 503),
)
async def layer_events(
    request: Request,
    layers: str | None = Query(
        default=None,
        description="comma-separated layer ids to follow (at most GEO_TILE_MAX_LAYERS); "
        "default: every layer the caller may read (or the token's layers)",
    ),
    who: Principal = Depends(stream_caller),
) -> Response:
    token = getattr(request.state, "link_token", None)
    claims = tokens.verify(token) if token is not None else None
    ids = events.subscription(layers, claims.layers if claims is not None else None)
    if claims is not None and ids is not None:
        claims.check_scope(ids)
    # The credential is checked once, here: the stream ends when a token would have.
    ends_at = claims.expires if claims is not None else time.time() + tile_settings().token_ttl
    return await events.open_stream(who, ids, ends_at)

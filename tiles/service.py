"""What every tile route does between the URL and the bytes: the caller, layer lists, access,
conditional requests, cache headers.

Both route families (/tiles/... and OGC API - Tiles) call these, so they answer alike. The tile
path is async from end to end (access and versions on the async pool, the cache in memory, the
tile SQL on the async pool); only catalogue misses and audit records go to a thread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from geo import preconditions
from geo.auth import Principal, principal
from geo.db import session_scope
from geo.errors import ApiError
from geo.sources import LayerSource
from layers.catalogue import audit_read, readable_sources
from tiles import tokens
from tiles.access import access_cache
from tiles.engine import tile_engine
from tiles.settings import tile_settings
from tiles.tms import Tile

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
MAX_ID_LENGTH = 200
# OpenAPI description of a tile response, shared by both route families.
MVT_RESPONSES = {
    "responses": {
        200: {"content": {MVT_MEDIA_TYPE: {}}, "description": "the tile"},
        204: {"description": "no feature of these layers in this tile"},
        304: {"description": "not modified (If-None-Match)"},
    }
}


TOKEN_QUERY = Query(
    default=None,
    description="a tile token (POST /tiles/token) for clients that cannot send headers",
)
VERSION_QUERY = Query(
    default=None,
    description=(
        "the layers' data version, as TileJSON and styles write it into their tile URLs (the sum"
        " of the layers' versions): at the current version a public tile is immutable"
    ),
)
# A year: what `immutable` means to browsers and CDNs. Only a URL naming the current version
# gets it; an edit gives the layers a new version, so documents then point at new URLs.
IMMUTABLE = "public, max-age=31536000, immutable"
# An older version gets today's tile for a little while: long enough to absorb a map's burst of
# requests in a shared cache, short enough that the data it holds is soon asked again.
OLD_VERSION_MAX_AGE = 10
# Versions are PostgreSQL bigints; a sum of GEO_TILE_MAX_LAYERS of them stays far below this.
MAX_VERSION = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")  # fullmatch: "$" also matches before "\n"


async def caller(request: Request, token: str | None = TOKEN_QUERY) -> Principal:
    """geo.auth.principal, minus the thread hop for requests that present no key (most map
    traffic); a presented key is checked by geo.auth as everywhere else.

    Tile routes also take `?token=` (tiles.tokens), checked with the secret alone and only for
    the layers it names. A caller who sent `?key=` is remembered on the request, so that the
    URLs our documents hand out carry a token for the same layers instead of the key
    (tiles.urls)."""
    client = request.client.host if request.client else None
    header = "authorization" in request.headers
    keyed = "key" in request.query_params
    if token is not None:
        if header or keyed:
            raise ApiError(
                400,
                "AmbiguousCredentials",
                "send an API key or a tile token, not both",
            )
        await tokens.ensure_secret()
        claims = tokens.verify(token)
        claims.check_scope(requested_layers(request))
        request.state.link_token = token
        who = claims.principal(client)
        request.state.principal = who  # for the request's log line (geo.logs)
        return who
    if not header and not keyed:
        return Principal(None, None, None, client)
    who = await run_in_threadpool(principal, request)
    if keyed and not header:
        await tokens.ensure_secret()
        request.state.link_principal = who
    return who


def requested_layers(request: Request) -> list[str]:
    """The layer ids a tile route's path names (`{layers}` or `{collection_id}`)."""
    if "layers" in request.path_params:
        return parse_layer_ids(request.path_params["layers"])
    if "collection_id" in request.path_params:
        return [request.path_params["collection_id"]]
    return []


def issue_token(session: Session, who: Principal, layers: Sequence[str]) -> dict[str, Any]:
    """POST /tiles/token: a token for a keyed caller to read `layers` (each one it may read;
    404 for any other, as everywhere)."""
    ids = parse_layer_ids(",".join(layers))
    readable_sources(session, who, ids)
    token, claims = tokens.mint(who, ids)
    return {
        "token": token,
        "layers": list(claims.layers),
        "department": claims.department,
        "expires_at": claims.expires_at.isoformat(),
        "expires_in": tile_settings().token_ttl,
    }


def parse_layer_ids(raw: str) -> list[str]:
    """`a,b,c` from a URL: each id once, none empty, at most GEO_TILE_MAX_LAYERS of them."""
    ids = [part.strip() for part in raw.split(",")]
    limit = tile_settings().max_layers
    if len(ids) > limit:
        raise ApiError(
            400,
            "TooManyLayers",
            f"{len(ids)} layers asked; a tile combines at most {limit}",
            {"count": len(ids), "max": limit},
        )
    if any(not i or len(i) > MAX_ID_LENGTH for i in ids):
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"layer list {raw!r} has an empty or over-long layer id",
            {"layers": raw},
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ApiError(
            400,
            "DuplicateLayer",
            f"layer(s) {', '.join(repeated)} asked more than once; an MVT layer name is unique",
            {"repeated": repeated},
        )
    return ids


def layers_version(sources: Sequence[LayerSource]) -> int:
    """One number for a list of layers that grows whenever any of them changes: the sum of their
    versions. Each layer's version only ever grows (geo.versions.bump; a deleted layer's counter
    stays), so an equal sum means no layer changed; and a number, unlike a list, is one check."""
    return sum(s.version for s in sources)


def parse_version(raw: str | None) -> int | None:
    """`?v=` from a tile URL: absent, or a whole number 0 to 2^63 - 1 (400 otherwise)."""
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_VERSION:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"tile version v={raw!r} is not a data version (a whole number, 0 to {MAX_VERSION})",
            {"parameter": "v", "value": raw},
        )
    return int(raw)


def cache_control(sources: Sequence[LayerSource], version: int | None = None) -> str:
    """Who may keep a tile, and for how long.

    Anything with a non-public layer never lands in a shared cache. Public data without a version
    in the URL may sit in browsers and CDNs for max-age, then revalidate by ETag (a 304 costs one
    version lookup). At the current version the URL can only ever mean these bytes: immutable.
    At an older version the client holds an old document: today's tile, briefly. A version ahead
    of ours (a worker or replica that has not seen the edit yet) must not be kept at all, or the
    new version's URL would hold the old data."""
    if not all(s.public for s in sources):
        return "private, no-store"
    if version is None:
        return f"public, max-age={tile_settings().max_age}"
    current = layers_version(sources)
    if version == current:
        return IMMUTABLE
    if version < current:
        return f"public, max-age={OLD_VERSION_MAX_AGE}"
    return "no-store"


def _expired(sources: Sequence[LayerSource]) -> bool:
    now = datetime.now(UTC)
    return any(
        s.scope is not None and s.scope.expires_at is not None and s.scope.expires_at <= now
        for s in sources
    )


async def readable_for_tiles(
    who: Principal, ids: Sequence[str], read_as: str | None = None
) -> list[LayerSource]:
    """The access cache's answer, unless a grant in it has expired since it was remembered.

    Creating or revoking a grant bumps the layer's data version, which the access cache keys
    on, but an expiry is no write: an answer naming an expired grant is asked again of the
    catalogue (which then picks another grant, or answers 404). `read_as` names a read of the
    data, audited (with the grant used) for non-public layers."""
    sources = await access_cache.readable(who, ids)
    if _expired(sources):
        return await run_in_threadpool(_lookup_and_audit, who, ids, read_as)
    if read_as and not all(s.public for s in sources):
        await run_in_threadpool(_audit, who, sources, read_as)
    return sources


def _lookup_and_audit(who: Principal, ids: Sequence[str], read_as: str | None) -> list[LayerSource]:
    with session_scope() as session:
        sources = readable_sources(session, who, list(ids))
        if read_as:
            audit_read(session, who, sources, read_as)
        return sources


def _audit(who: Principal, sources: Sequence[LayerSource], read_as: str) -> None:
    with session_scope() as session:
        audit_read(session, who, sources, read_as)


async def tile_response(
    request: Request, who: Principal, ids: Sequence[str], tile: Tile, version: int | None = None
) -> Response:
    """The tile at the layers' current data; `version` (parse_version) only sets how long it may
    be kept (cache_control): a request at an old version gets today's data, never a redirect, so
    a map holding an old style costs no extra round trip per tile."""
    engine = tile_engine()
    sources = await readable_for_tiles(who, ids, f"tile {tile}")
    plans = await engine.plan(sources)
    etag = engine.etag(plans, tile)
    headers = {"ETag": etag, "Cache-Control": cache_control(sources, version)}
    if preconditions.not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    data = await engine.render(plans, tile)
    if not data:
        # Decision (README, tiles): a tile with no feature is 204 No Content, always.
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=MVT_MEDIA_TYPE, headers=headers)

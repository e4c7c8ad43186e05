"""Absolute URLs that clients follow from our documents (TileJSON, styles, OGC links).

A map client that authenticated with `?key=` (it cannot set headers) must find a credential on
every URL we hand it, or its tile requests would arrive anonymous and private layers would 404.
That credential is never the key: keys in documents end up in caches, browser history and logs,
and a key opens everything its department may do. The URLs carry a tile token instead
(tiles.tokens: read-only, for the layers of the request, expiring), made once per document; a
client that came with a token finds the same token. A client that sent a Bearer header gets
clean URLs: it adds the header itself.

Tile URL templates also carry the layers' data version (`?v=`, tiles.service.layers_version):
a new version after every edit means a new URL, so browsers, nginx and CDNs may keep a tile at
the current version forever (tiles.service.cache_control) and a client with a fresh document
never meets an old tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from fastapi import Request

from geo.sources import LayerSource
from tiles import tokens
from tiles.service import layers_version, requested_layers


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def link_token(request: Request) -> str | None:
    """The token our URLs carry for this request's caller: the one it presented, or one made
    for a caller that presented `?key=` (tiles.service.caller notes which); None otherwise."""
    token: str | None = getattr(request.state, "link_token", None)
    if token is None:
        who = getattr(request.state, "link_principal", None)
        if who is None:
            return None
        token, _ = tokens.mint(who, requested_layers(request))
        request.state.link_token = token
    return token


def with_token(request: Request, url: str) -> str:
    """`url` with the caller's tile token when it needs one in URLs (never its key)."""
    token = link_token(request)
    if token is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'token': token})}"


# The name the OGC tiles router imports.
with_key = with_token


def layer_list(ids: Sequence[str]) -> str:
    return ",".join(ids)


def versioned(url: str, sources: Sequence[LayerSource]) -> str:
    """`url` naming the layers' current data version (before any token)."""
    return f"{url}?{urlencode({'v': layers_version(sources)})}"


def tiles_template(request: Request, sources: Sequence[LayerSource]) -> str:
    """`{z}/{x}/{y}` stay literal: TileJSON and MapLibre fill them in."""
    ids = [s.id for s in sources]
    url = f"{base_url(request)}/tiles/{layer_list(ids)}/{{z}}/{{x}}/{{y}}.mvt"
    return with_token(request, versioned(url, sources))

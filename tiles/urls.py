"""Absolute URLs that clients follow from our documents (TileJSON, styles, OGC links).

A map client that authenticated with `?key=` (it cannot set headers) must find the key on every
URL we hand it, or its tile requests would arrive anonymous and private layers would 404. A
client that sent a Bearer header gets clean URLs: it adds the header itself and keys do not leak
into logs it did not ask for.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from fastapi import Request


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def with_key(request: Request, url: str) -> str:
    key = request.query_params.get("key")
    if not key or request.headers.get("authorization"):
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'key': key})}"


def layer_list(ids: Sequence[str]) -> str:
    return ",".join(ids)


def tiles_template(request: Request, ids: Sequence[str]) -> str:
    """`{z}/{x}/{y}` stay literal: TileJSON and MapLibre fill them in."""
    url = f"{base_url(request)}/tiles/{layer_list(ids)}/{{z}}/{{x}}/{{y}}.mvt"
    return with_key(request, url)

"""Tile tokens: short-lived, read-only, layer-scoped credentials that may travel in URLs.

Map clients that cannot set headers (MapLibre without transformRequest, desktop GIS, a shared
TileJSON URL) need a credential in the URL. A key there is copied into documents, browser
history, proxies' and our own access logs, and it opens everything the department may do,
writes included. A token instead:

- names the department and role of the key it was made for, the layers it may read and when it
  expires (`GEO_TILE_TOKEN_TTL`, an hour by default);
- is signed with HMAC-SHA256 under a server secret (`GEO_TOKEN_SECRET`, or one generated once
  and kept in platform_state, so every worker and every machine on the database verifies the
  tokens of the others);
- is accepted only by the tile routes (tiles, TileJSON, styles, labels, OGC tilesets), all
  read-only, and only for the layers it names. Access is still the catalogue's, checked on every
  request as the token's department, so a token never reads more than its key could.

Verification needs no database: a token is checked with the secret alone, which keeps the tile
path as fast with a token as without. The price: revoking a key does not end the tokens made
with it before; they lapse at their expiry, at most `GEO_TILE_TOKEN_TTL` later.

Format: `tjt1.<payload>.<signature>`, both base64url without padding; the payload is compact
JSON `{"d": department, "r": role, "p": key prefix, "l": [layer ids], "e": expiry (unix s)}`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from geo.auth import ROLE_RANK, Principal
from geo.db import session_scope
from geo.errors import ApiError
from geo.state import setdefault_state
from tiles.settings import tile_settings

VERSION = "tjt1"
SECRET_STATE_KEY = "tiles.token_secret"

_secret: bytes | None = None
_secret_lock = threading.Lock()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret() -> bytes:
    """The signing secret: GEO_TOKEN_SECRET, else the database's (made on first use).

    Read once per process; blocking (a database round trip the first time), so async callers
    use `ensure_secret` first."""
    global _secret
    if _secret is not None:
        return _secret
    with _secret_lock:
        if _secret is None:
            configured = tile_settings().token_secret
            if configured:
                _secret = configured.encode()
            else:
                with session_scope() as session:
                    value = setdefault_state(session, SECRET_STATE_KEY, secrets.token_urlsafe(48))
                _secret = str(value).encode()
    return _secret


async def ensure_secret() -> None:
    """Load the secret in the thread pool if this process has not yet (keeps the event loop
    off the database)."""
    if _secret is None:
        await run_in_threadpool(secret)


def forget_secret() -> None:
    """Drop the cached secret (tests that change GEO_TOKEN_SECRET or the database)."""
    global _secret
    with _secret_lock:
        _secret = None


def _sign(payload: str) -> str:
    return _b64(hmac.new(secret(), f"{VERSION}.{payload}".encode(), hashlib.sha256).digest())


@dataclass(frozen=True)
class TileToken:
    """What a token says, once its signature has been checked."""

    department: str
    role: str
    key_prefix: str | None
    layers: tuple[str, ...]
    expires: int

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)

    def principal(self, client: str | None) -> Principal:
        """The caller as the tile routes see it: the key's department and role, so the
        catalogue answers exactly as it would for the key."""
        return Principal(self.department, self.role, self.key_prefix, client)

    def check_scope(self, ids: Sequence[str]) -> None:
        """403 for a layer the token does not name (the caller holds a valid token, so the
        failure is one of scope, not of identity)."""
        outside = [i for i in ids if i not in self.layers]
        if outside:
            raise ApiError(
                403,
                "TokenScope",
                f"the tile token covers {', '.join(self.layers)}; not {', '.join(outside)}",
                {"layers": list(self.layers), "outside": outside},
            )


def mint(who: Principal, layers: Sequence[str], now: float | None = None) -> tuple[str, TileToken]:
    """A token for `who` (a keyed caller) to read `layers` until now + GEO_TILE_TOKEN_TTL.

    The caller is expected to have checked that `who` may read the layers; the token grants
    nothing beyond that anyway, since tile routes check access as its department."""
    if who.department is None or who.role is None:
        raise ApiError(
            401,
            "Unauthorized",
            "a tile token stands for an API key; anonymous callers need none for public layers",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expires = int(now if now is not None else time.time()) + tile_settings().token_ttl
    claims = TileToken(who.department, who.role, who.key_prefix, tuple(layers), expires)
    body: dict[str, Any] = {"d": claims.department, "r": claims.role, "p": claims.key_prefix}
    body |= {"l": list(claims.layers), "e": claims.expires}
    payload = _b64(orjson.dumps(body))
    return f"{VERSION}.{payload}.{_sign(payload)}", claims


def _invalid(reason: str) -> ApiError:
    return ApiError(
        401,
        "InvalidToken",
        f"the tile token is not valid ({reason}); ask POST /tiles/token for a new one",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def verify(token: str, now: float | None = None) -> TileToken:
    """The token's claims, or a 401: malformed, signed with another secret, altered, or expired.

    The signature is compared in constant time before anything in the payload is trusted."""
    version, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    if version != VERSION or not payload or not signature:
        raise _invalid("malformed")
    if not hmac.compare_digest(signature, _sign(payload)):
        raise _invalid("bad signature")
    try:
        body = orjson.loads(_unb64(payload))
        claims = TileToken(
            department=str(body["d"]),
            role=str(body["r"]),
            key_prefix=None if body.get("p") is None else str(body["p"]),
            layers=tuple(str(i) for i in body["l"]),
            expires=int(body["e"]),
        )
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise _invalid("malformed payload") from None
    if claims.role not in ROLE_RANK:
        raise _invalid("unknown role")
    if claims.expires <= (now if now is not None else time.time()):
        raise ApiError(
            401,
            "TokenExpired",
            f"the tile token expired at {claims.expires_at.isoformat()}; "
            "ask POST /tiles/token for a new one",
            {"expired_at": claims.expires_at.isoformat()},
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return claims

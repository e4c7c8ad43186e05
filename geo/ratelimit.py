"""Per-key and per-address rate limits, checked before a request reaches any route.

Why a pure ASGI middleware: it answers a caller over its limit before FastAPI parses anything or
a route opens a database session, and it never touches the database itself, so a flood costs a
counter increment per request and nothing more. Counting is the `limits` package's sliding
window counter (two counters per caller and class, no per-request entries), in process memory
by default and in Redis when `GEO_REDIS_URL` is set, so that every worker and every instance
shares one count.

Who is counted:

- a caller presenting a key (`Authorization: Bearer KEY` or `?key=`) that this process has seen
  valid (geo.auth.verified_key_hashes) is counted per key, by a digest of it, with the keyed
  limit; the key itself is never logged nor stored;
- any other caller is counted per client address (uvicorn resolves `X-Forwarded-For` from
  trusted proxies first; IPv6 callers per /64, since one host usually holds a whole /64) with
  the anonymous limit;
- a key this process has not seen valid yet (a new key, or made-up ones) is counted per client
  address too, but apart from anonymous traffic: rotating invented keys buys no fresh limits,
  and a department's new key still works from an address whose anonymous quota is spent.

Routes fall into four classes (see `route_class`), each with its own limits: tiles and the map
viewer (generous: a map view loads dozens of tiles), geocoding, suggestions and batch geocoding
(moderate), uploads, imports, exports and overlays (low: each can hold a worker for seconds),
and everything else. `/health` is not limited: load balancers and monitors poll it.

Every limited response carries the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers:
`RateLimit-Policy: "tiles";q=3000;w=60` and `RateLimit: "tiles";r=2999;t=59`); a refusal is a
429 in the service's error shape with `Retry-After`. When the shared store cannot be reached,
requests go through unlimited (logged at most once a minute): losing the limiter must not take
the service down with it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.auth import verified_key_hashes
from geo.errors import error_body

if TYPE_CHECKING:
    from fastapi import FastAPI

    from geo.settings import Settings

log = logging.getLogger(__name__)

RouteClass = Literal["tiles", "geocode", "heavy", "default"]
Partition = Literal["ip", "key", "unverified-key"]

CLASS_SETTINGS: dict[RouteClass, str] = {
    "tiles": "GEO_RATE_LIMIT_TILES",
    "geocode": "GEO_RATE_LIMIT_GEOCODE",
    "heavy": "GEO_RATE_LIMIT_HEAVY",
    "default": "GEO_RATE_LIMIT_DEFAULT",
}
_GEOCODING = ("geocode", "suggest", "reverse")
# A Redis that stops answering must not hold requests for long: past this the request goes
# through unlimited.
REDIS_TIMEOUT_S = 0.5
STORE_WARNING_INTERVAL_S = 60.0
_WHO = {
    "ip": "per client address",
    "key": "per API key",
    "unverified-key": "for keys this server has not yet seen valid, per client address",
}


def route_class(path: str) -> RouteClass | None:
    """The class whose limits apply to a request path; None for paths that are never limited."""
    if path == "/health":
        return None
    if path.startswith(("/tiles/", "/styles/", "/tileMatrixSets", "/map/")) or path == "/map":
        return "tiles"
    if path.startswith("/addresses/"):
        first = path.split("/", 3)[2]
        if first in _GEOCODING:  # /addresses/geocode/batch too
            return "geocode"
        if first == "import":
            return "heavy"
        return "default"
    if path.startswith("/collections/"):
        parts = path.split("/", 4)  # "", "collections", id, what, rest
        what = parts[3] if len(parts) > 3 else ""
        if what == "tiles":
            return "tiles"
        if what in ("upload", "export"):
            return "heavy"
        return "default"
    if path in ("/overlay", "/auth/login"):  # sign-in: an argon2 hash each, and guessing
        return "heavy"
    return "default"


@dataclass(frozen=True)
class ClassLimits:
    """One class's limits: per client address (anonymous) and per verified key."""

    name: RouteClass
    anonymous: RateLimitItem
    keyed: RateLimitItem

    def item(self, partition: Partition) -> RateLimitItem:
        return self.keyed if partition == "key" else self.anonymous


def parse_class_limits(name: RouteClass, value: str) -> ClassLimits:
    """`ANONYMOUS[,KEYED]` in the `limits` notation, e.g. `600/minute,3000/minute`."""
    parts = [part.strip() for part in value.split(",")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"{CLASS_SETTINGS[name]}={value!r}: expected ANONYMOUS[,KEYED]")
    return ClassLimits(name, parse(parts[0]), parse(parts[-1]))


def class_limits(settings: Settings) -> dict[RouteClass, ClassLimits]:
    values: dict[RouteClass, str] = {
        "tiles": settings.rate_limit_tiles,
        "geocode": settings.rate_limit_geocode,
        "heavy": settings.rate_limit_heavy,
        "default": settings.rate_limit_default,
    }
    return {name: parse_class_limits(name, value) for name, value in values.items()}


class SweepingMemoryStorage(MemoryStorage):
    """The `limits` in-process store, sweeping out expired counters at most once a second.

    The parent schedules a sweep over every counter after each increment once the previous
    sweep is done, so with 20,000 client addresses (40,000 sliding window counters) each
    request paid for a pass over all of them: 1.3 ms per request against 16 us with one
    address. Expired counters are also dropped whenever they are read, so sweeping less often
    changes no count; it only frees the memory of callers who went away a little later.
    Overriding the parent's private hook is checked by tests/test_ratelimit.py, so an upgrade
    of `limits` that renames it fails a test instead of quietly bringing the cost back.
    """

    SWEEP_INTERVAL_S = 1.0
    _next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_INTERVAL_S
            await getattr(super(), "_MemoryStorage__schedule_expiry")()  # noqa: B009


def make_storage(redis_url: str | None) -> Storage:
    """Process memory, or the Redis at `redis_url` (redis://, rediss:// or unix://)."""
    if not redis_url:
        return SweepingMemoryStorage()
    scheme, _, rest = redis_url.partition("://")
    prefixed = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}
    if scheme not in prefixed or not rest:
        raise ValueError("GEO_REDIS_URL must be redis://HOST:PORT/DB, rediss://... or unix://PATH")
    return RedisStorage(
        f"{prefixed[scheme]}://{rest}",
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix="geo-ratelimit",
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )


def presented_key(scope: Scope) -> str | None:
    """The key geo.auth would check: a Bearer token, else the last `key` query parameter."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            # Anything but a Bearer token is refused by geo.auth without a lookup.
            return token.strip() or None if scheme.lower() == "bearer" else None
    query: bytes = scope.get("query_string", b"")
    if b"key=" not in query:
        return None
    found = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == "key"]
    return (found[-1] or None) if found else None


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    host: str = client[0] if client else "unknown"
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def caller(scope: Scope) -> tuple[Partition, str]:
    """Which counter a request goes to: a key's digest, or the client's address."""
    key = presented_key(scope)
    if key is not None:
        digest = hashlib.sha256(key.encode()).hexdigest()  # geo.auth.hash_key
        if digest in verified_key_hashes:
            # Half the digest: enough to tell keys apart, and not the value the database holds.
            return "key", digest[:32]
        return "unverified-key", client_address(scope)
    return "ip", client_address(scope)


class RateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, classes: dict[RouteClass, ClassLimits], storage: Storage
    ) -> None:
        self.app = app
        self.classes = classes
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self._last_warning = -math.inf
        # RateLimit-Policy values never change for a class and partition: built once.
        self._policies = {
            (name, keyed): f'"{name}";q={item.amount};w={item.get_expiry()}'.encode()
            for name, limits in classes.items()
            for keyed, item in ((False, limits.anonymous), (True, limits.keyed))
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = route_class(scope["path"]) if scope["type"] == "http" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        partition, who = caller(scope)
        item = self.classes[name].item(partition)
        try:
            allowed = await self.limiter.hit(item, name, partition, who)
            stats = await self.limiter.get_window_stats(item, name, partition, who)
        except StorageError as exc:
            self._store_failed(exc)
            await self.app(scope, receive, send)
            return
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        policy = self._policies[(name, partition == "key")]
        if not allowed:
            await self._refuse(scope, receive, send, name, partition, item, policy, reset)
            return
        extra = [
            (b"ratelimit-policy", policy),
            (b"ratelimit", f'"{name}";r={stats.remaining};t={reset}'.encode()),
        ]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: RouteClass,
        partition: Partition,
        item: RateLimitItem,
        policy: bytes,
        reset: int,
    ) -> None:
        # Retry-After must not point before the RateLimit reset; both say the same second.
        retry = max(1, reset)
        response = JSONResponse(
            error_body(
                "TooManyRequests",
                f"too many requests: the {name} limit is {item} {_WHO[partition]}; "
                f"retry in {retry} s",
                {
                    "class": name,
                    "limit": item.amount,
                    "window_seconds": item.get_expiry(),
                    "partition": partition,
                    "retry_after_seconds": retry,
                },
            ),
            status_code=429,
            headers={
                "Retry-After": str(retry),
                "RateLimit-Policy": policy.decode(),
                "RateLimit": f'"{name}";r=0;t={retry}',
            },
        )
        await response(scope, receive, send)

    def _store_failed(self, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._last_warning >= STORE_WARNING_INTERVAL_S:
            self._last_warning = now
            log.warning(
                "rate limit store unreachable, requests pass unlimited: %s: %s",
                type(exc.storage_error).__name__,
                exc.storage_error,
            )


def install_rate_limits(app: FastAPI, settings: Settings) -> None:
    """Put the limiter in front of every route (outermost, so a refusal costs nothing else),
    unless `GEO_RATE_LIMITS=off`. Limits and store are read now, once per app (per worker)."""
    if settings.rate_limits:
        app.add_middleware(
            RateLimitMiddleware,
            classes=class_limits(settings),
            storage=make_storage(settings.redis_url),
        )

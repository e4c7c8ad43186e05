"""CSRF protection of cookie-authenticated writes.

A browser attaches the session cookie to requests other sites make it send; SameSite=Strict
already stops most, and a token the page must copy into `X-CSRF-Token` stops the rest: another
site cannot read it. The token is an HMAC of the session's own token, so nothing more is stored
and it dies with the session; the server recomputes it from the cookie."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from geo.errors import ApiError

HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_for(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"geo-csrf", hashlib.sha256).hexdigest()


def check(request: Request, session_token: str) -> None:
    """Refuse a write authenticated by the cookie without the session's token in the header."""
    if request.method in SAFE_METHODS:
        return
    presented = request.headers.get(HEADER)
    if not presented:
        raise ApiError(
            403,
            "CsrfTokenMissing",
            f"a write signed in by cookie needs the {HEADER} header (from sign-in or GET /auth/me)",
            {"header": HEADER},
        )
    if not hmac.compare_digest(presented.encode(), token_for(session_token).encode()):
        raise ApiError(
            403,
            "CsrfTokenInvalid",
            f"the {HEADER} header does not belong to this session",
            {"header": HEADER},
        )

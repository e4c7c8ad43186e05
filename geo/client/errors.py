"""The service's JSON errors as Python exceptions.

Every 4xx/5xx the service sends is ``{"code", "message", "details"}`` with the request's id in
``X-Request-ID``; an analyst's script keys on ``code`` (stable English identifiers) and quotes
``request_id`` when asking the operators what happened.
"""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """A request the service refused or failed: its status, code, message, details and id."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" [{request_id}]" if request_id else ""))
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id


def check(response: httpx.Response) -> httpx.Response:
    """The response when it succeeded, else its error raised as :class:`ApiError`.

    A body that is not the service's error shape (a proxy's HTML page) still becomes an
    ApiError, coded ``HTTP<status>`` with the start of the text as the message."""
    if response.is_success:
        return response
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        raise ApiError(
            response.status_code,
            body["code"],
            str(body.get("message", "")),
            body.get("details"),
            request_id,
        )
    raise ApiError(
        response.status_code, f"HTTP{response.status_code}", response.text[:500], None, request_id
    )

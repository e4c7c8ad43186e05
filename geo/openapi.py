"""The OpenAPI document (`/api`) says what every operation really answers.

Clients generate code from it and the schemathesis run in the tests (tests/test_schemathesis.py)
checks every response against it, so a status code or a media type it does not list is a bug of
one or the other. Routes declare what is particular to them with :func:`errors` and
:func:`returns`; what follows from the shared machinery is added here, from the code itself, so
that it cannot drift from it:

- 400 on every route built with ``geo.routing.api_router`` (unknown query parameters, and
  validation errors, which geo.errors turns into 400: FastAPI's 422 is never sent and is removed);
- 401 on every route that reads the caller (``geo.auth.principal``): a wrong or revoked key is
  refused, never taken as anonymous;
- 413 on every operation that takes a body (geo.http's body limit);
- 414 on every operation: a request line longer than geo.request_lines reads;
- 429 on every path the rate limiter counts (geo.ratelimit);
- 503 on every route that queries the database (a statement cancelled by its timeout).

Request schemas built with pydantic's ``model_json_schema()`` (for bodies read through
``layers.http.json_body``) keep their nested models under a local ``$defs``; their references,
``#/$defs/Model``, would resolve against the document's root, where there is no ``$defs``. The
definitions are moved to ``components/schemas`` and the references rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

ERROR_REF = "#/components/schemas/ErrorBody"
# geo.errors.error_body: the one shape of every error the service sends.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "string", "description": "machine-readable, e.g. NotFound"},
        "message": {"type": "string", "description": "for people"},
        "details": {"description": "the specifics (offending parameter, report...), or null"},
    },
}

ERROR_DESCRIPTIONS = {
    400: "Invalid input: an unknown or malformed parameter or body",
    401: "Missing, malformed, unknown, revoked or expired API key, or a session that is over",
    403: "The caller's role or department may not do this (a read-only key writing, a cookie "
    "write without its CSRF token, a password change pending...)",
    404: "No such resource, or none the caller may read",
    405: "The resource cannot be changed this way (a read-only system collection)",
    409: "Conflicts with the current state (exists already, retired...)",
    412: "If-Match names a version that is no longer current",
    413: "The request body is larger than the service accepts",
    414: "The request line (path and query) is longer than the service reads",
    415: "The body's media type is not one this operation reads",
    422: "Well-formed, but the data cannot be stored (an invalid geometry, duplicate keys...)",
    428: "If-Match is required to change this resource",
    429: "Rate limit reached; retry after Retry-After seconds",
    503: "The database cancelled the query (statement timeout) or cannot be reached",
}

GEOJSON = "application/geo+json"
FEATURE_COLLECTION: dict[str, Any] = {
    "type": "object",
    "required": ["type", "features"],
    "properties": {
        "type": {"const": "FeatureCollection"},
        "features": {"type": "array", "items": {"type": "object"}},
    },
}
FEATURE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "geometry", "properties"],
    "properties": {"type": {"const": "Feature"}},
}
CSV = "text/csv"
HTML = "text/html"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error statuses, each with the one JSON error shape."""
    return {
        status: {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
        }
        for status in statuses
    }


def returns(
    content: Mapping[str, Mapping[str, Any] | None],
    description: str,
    status: int = 200,
) -> dict[int | str, dict[str, Any]]:
    """A success response with its media types (and their schemas, where given).

    Routes answering other than JSON take ``response_class=Response`` as well, so that FastAPI
    does not also list ``application/json`` for the same status."""
    return {
        status: {
            "description": description,
            "content": {
                media: ({"schema": dict(schema)} if schema is not None else {})
                for media, schema in content.items()
            },
        }
    }


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def derived_statuses(route: APIRoute, path: str, path_limited: Callable[[str], bool]) -> set[int]:
    """The error statuses the shared machinery may answer for this route (module docstring)."""
    from geo.auth import principal, principal_pending_change
    from geo.db import get_session
    from geo.routing import StrictQueryRoute

    calls = set(_calls(route.dependant))
    statuses = set()
    if isinstance(route, StrictQueryRoute):
        statuses.add(400)
    reads_caller = principal in calls or principal_pending_change in calls
    if reads_caller:
        # 403: a cookie write without its CSRF token, or an account's pending password change.
        statuses.update((401, 403))
    if reads_caller or get_session in calls:
        statuses.add(503)
    if path_limited(path):
        statuses.add(429)
    return statuses


def _rate_limited(path: str) -> bool:
    from geo.ratelimit import route_class

    return route_class(path) is not None


_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS:
                yield path, method, operation


def _hoist_defs(node: Any, found: dict[str, Any]) -> Any:
    """``node`` with every nested ``$defs`` removed into ``found`` and its refs rewritten."""
    if isinstance(node, list):
        return [_hoist_defs(v, found) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$defs":
            for name, definition in value.items():
                found[name] = _hoist_defs(definition, found)
        elif key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = "#/components/schemas/" + value.removeprefix("#/$defs/")
        else:
            out[key] = _hoist_defs(value, found)
    return out


def finish(
    app: FastAPI, doc: dict[str, Any], path_limited: Callable[[str], bool] = _rate_limited
) -> dict[str, Any]:
    """Complete FastAPI's document as the module docstring says; returns it (changed in place)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    found: dict[str, Any] = {}
    doc["paths"] = _hoist_defs(doc.get("paths", {}), found)
    for name, definition in found.items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name!r} in the OpenAPI")
    schemas["ErrorBody"] = ERROR_SCHEMA

    derived: dict[tuple[str, str], set[int]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path_format is not None:
            statuses = derived_statuses(route, context.path_format, path_limited)
            for method in route.methods or ():
                derived[(context.path_format, method.lower())] = statuses
    for path, method, operation in _operations(doc):
        responses = operation.setdefault("responses", {})
        if "HTTPValidationError" in json.dumps(responses.get("422", {})):
            del responses["422"]  # FastAPI's; geo.errors answers validation errors with a 400
        statuses = set(derived.get((path, method), ())) | {414}
        if "requestBody" in operation:
            statuses.add(413)
        for status, response in errors(*sorted(statuses)).items():
            responses.setdefault(str(status), response)
    used = json.dumps(doc["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in used:
            schemas.pop(name, None)
    return doc


def install(app: FastAPI) -> None:
    """Serve the finished document at the app's ``openapi_url``.

    FastAPI caches its document and makes a new one when routes are added; each new one is
    finished once."""
    generate = app.openapi
    finished: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        doc = generate()
        if not finished or finished[0] is not doc:
            finished[:] = [finish(app, doc)]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]

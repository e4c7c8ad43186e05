"""How deeply a parsed JSON document nests, measured without recursion.

Clients send JSON that later code walks recursively: orjson and our own walkers in Python,
GEOS's GeoJSON reader and the ``cql2`` library in native code, where running out of stack is a
segmentation fault that takes the whole worker down rather than an exception. One iterative
measurement, checked against ``GEO_MAX_JSON_DEPTH`` right after parsing and before anything
recursive sees the document, keeps every one of them far from their limits.
"""

from __future__ import annotations

from typing import Any

from geo.errors import ApiError
from geo.settings import get_settings


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, stopping as soon as it exceeds ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_json_depth(value: Any, what: str, code: str = "TooDeep") -> None:
    """A 400 naming the limit when ``value`` nests deeper than ``GEO_MAX_JSON_DEPTH``."""
    limit = get_settings().max_json_depth
    if json_depth(value, limit) > limit:
        raise ApiError(
            400,
            code,
            f"{what} is nested deeper than {limit} levels (GEO_MAX_JSON_DEPTH)",
            {"limit": limit, "setting": "GEO_MAX_JSON_DEPTH"},
        )

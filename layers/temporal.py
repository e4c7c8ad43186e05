"""The ``datetime`` parameter of OGC API - Features Part 1: an instant or a closed or half-open
interval (RFC 3339, ``..`` or nothing for an open end), matched against the collection's
temporal property, the first ``date`` or ``datetime`` attribute of its schema.

The parameter becomes a CQL2 comparison on that property, so it is compiled, typed and bound
like any other filter (layers.cql), never spliced into SQL. A collection without a temporal
attribute answers 400 naming the problem rather than ignoring the parameter: a client asking
for one day's features must not silently get all of them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from geo.errors import ApiError
from geo.sources import LayerSource
from layers.cql import CompiledFilter, Compiler

TEMPORAL = ("date", "datetime")
OPEN = ("", "..")


def temporal_property(source: LayerSource) -> tuple[str, str] | None:
    """(name, type) of the attribute ``datetime`` filters on, None when the schema has none."""
    return next(((n, k) for n, k in source.properties.items() if k in TEMPORAL), None)


def _bad(value: str, why: str) -> ApiError:
    return ApiError(
        400,
        "InvalidParameterValue",
        f"datetime {value!r}: {why}; expected an RFC 3339 instant such as 2024-05-01T08:00:00Z, "
        "a date, or an interval such as 2024-05-01/2024-05-31 or 2024-05-01T00:00:00Z/..",
    )


def _moment(text: str, whole: str) -> datetime | date:
    """A date stays a date (a whole day); a date-time without offset is taken as UTC."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _bad(whole, f"{text!r} is not a date or date-time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bound(moment: datetime | date, kind: str, upper: bool) -> tuple[str, Any]:
    """(operator, CQL2 literal) for one end, with a whole day ending before the next day."""
    if kind == "date":
        day = moment.date() if isinstance(moment, datetime) else moment
        return ("<=" if upper else ">="), {"date": day.isoformat()}
    if isinstance(moment, datetime):
        return ("<=" if upper else ">="), {"timestamp": moment.isoformat()}
    start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if upper:
        return "<", {"timestamp": (start + timedelta(days=1)).isoformat()}
    return ">=", {"timestamp": start.isoformat()}


def datetime_filter(compiler: Compiler, source: LayerSource, value: str) -> CompiledFilter:
    found = temporal_property(source)
    if found is None:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"collection {source.id!r} has no date or datetime property for datetime= to filter "
            "on; use filter= on its properties instead",
            {"properties": source.properties},
        )
    name, kind = found
    parts = value.split("/")
    if len(parts) > 2 or value.strip() in OPEN or all(p in OPEN for p in parts):
        raise _bad(value, "not an instant or an interval with at least one end")
    start = None if parts[0] in OPEN else _moment(parts[0], value)
    end = start if len(parts) == 1 else (None if parts[1] in OPEN else _moment(parts[1], value))
    if start is not None and end is not None and _as_utc(end) < _as_utc(start):
        raise _bad(value, "the interval ends before it starts")
    prop = {"property": name}
    args = [
        {"op": op, "args": [prop, literal]}
        for moment, upper in ((start, False), (end, True))
        if moment is not None
        for op, literal in [_bound(moment, kind, upper)]
    ]
    tree = args[0] if len(args) == 1 else {"op": "and", "args": args}
    return compiler.compile(tree)


def _as_utc(moment: datetime | date) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)

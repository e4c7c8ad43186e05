"""Attribute values: checking them against a layer's declared types, and inferring types for
layers created from a file without a declared schema.

JSON sources are checked strictly (a string where an integer is declared is an error, not a
guess); text sources (CSV) are parsed from their text. Inferred types only ever widen
(integer -> number -> string), so one pass over a file is enough: a later feature that does not
fit widens the column instead of forcing a second read.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

import orjson

from layers.schema import SYSTEM_COLUMNS, PropertySpec

_TRUE = {"true", "t", "yes", "y", "1", "是"}
_FALSE = {"false", "f", "no", "n", "0", "否"}
_INT_RE = re.compile(r"[+-]?\d+")  # fullmatch: "$" also matches before "\n"


class ValueProblem(ValueError):
    """A value that does not fit its declared type; the message names both."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def coerce(value: Any, kind: str, from_text: bool = False) -> Any:
    """The Python value to store for ``value`` in a column of type ``kind`` (None stays None)."""
    if value is None or (from_text and value == ""):
        return None
    if from_text and kind != "string":
        return _parse_text(str(value).strip(), kind)
    if kind == "string":
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueProblem(f"{_describe(value)} holds a NUL character, which text cannot")
            return value
        if isinstance(value, dict | list):
            # Nested properties (depth-checked at read time) are kept as JSON text.
            return orjson.dumps(value).decode()
        raise ValueProblem(f"expected a string, got {_describe(value)}")
    if isinstance(value, bool):
        if kind == "boolean":
            return value
        raise ValueProblem(f"expected {kind}, got boolean {_describe(value)}")
    if kind == "integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueProblem(f"expected an integer, got {_describe(value)}")
    if kind == "number":
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        raise ValueProblem(f"expected a number, got {_describe(value)}")
    if kind in ("date", "datetime"):
        if isinstance(value, datetime | date):
            return value
        if isinstance(value, str):
            return _parse_text(value, kind)
        raise ValueProblem(f"expected an ISO 8601 {kind} string, got {_describe(value)}")
    raise ValueProblem(f"expected {kind}, got {_describe(value)}")


def _parse_text(text: str, kind: str) -> Any:
    try:
        if kind == "integer":
            if not _INT_RE.fullmatch(text):
                raise ValueError
            return int(text)
        if kind == "number":
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
        if kind == "boolean":
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError
        if kind == "date":
            return date.fromisoformat(text)
        if kind == "datetime":
            return datetime.fromisoformat(text)
    except ValueError:
        pass
    raise ValueProblem(
        f"expected {'an' if kind == 'integer' else 'a'} {kind}, got {_describe(text)}"
    )


# Python types that already are what COPY needs for each column type (no per-value work).
_NATIVE: dict[str, set[type]] = {
    "string": {str},
    "integer": {int},
    "number": {int, float},
    "boolean": {bool},
    "date": {date},
    "datetime": {datetime},
}
_NONE = type(None)


def coerce_column(
    values: list[Any], kind: str, from_text: bool = False
) -> tuple[list[Any], dict[int, str]]:
    """:func:`coerce` over one column of a batch; problems by position.

    Most columns of most files already hold the right Python type (strings in a string column,
    ints in an integer column), which one set of types proves without touching each value.
    """
    types = set(map(type, values)) - {_NONE}
    # PostgreSQL cannot store NUL: one search over the batch's text finds any (rare) NUL, and
    # only then is each value checked, to say which feature holds it.
    if (
        (not from_text or kind == "string")
        and types <= _NATIVE[kind]
        and (kind != "string" or "\x00" not in "".join(filter(None, values)))
    ):
        return values, {}
    out: list[Any] = []
    problems: dict[int, str] = {}
    for i, value in enumerate(values):
        try:
            out.append(coerce(value, kind, from_text))
        except ValueProblem as exc:
            problems[i] = str(exc)
            out.append(None)
    return out, problems


def infer_column(values: list[Any], from_text: bool = False) -> str | None:
    """The narrowest type holding every value of a column (None: only nulls so far)."""
    if not from_text:
        types = set(map(type, values)) - {_NONE}
        if not types:
            return None
        if types == {int}:
            present = [v for v in values if v is not None]
            fits = min(present) >= -(2**63) and max(present) < 2**63
            return "integer" if fits else "number"
        if types <= {int, float}:
            return "number"
        if types == {bool}:
            return "boolean"
        if types <= {str, dict, list}:
            return "string"
    kind: str | None = None
    for value in values:
        kind = wider(kind, infer(value, from_text))
        if kind == "string":
            break
    return kind


# -- inference ----------------------------------------------------------------------------------


def infer(value: Any, from_text: bool = False) -> str | None:
    """The narrowest type of one value (None for null/empty, which fits any type)."""
    if value is None or (from_text and value == ""):
        return None
    if from_text:
        text = str(value).strip()
        if len(text) > 1 and text[0] == "0" and text[1].isdigit():
            return "string"  # codes with leading zeros (postcodes, 统计用区划代码) stay text
        if _INT_RE.fullmatch(text) and len(text) < 19:
            return "integer"
        try:
            return "number" if math.isfinite(float(text)) else "string"
        except ValueError:
            return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if -(2**63) <= value < 2**63 else "number"
    if isinstance(value, float):
        return "number"
    return "string"


def wider(a: str | None, b: str | None) -> str | None:
    """The narrowest type holding values of both types."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {"integer", "number"}:
        return "number"
    return "string"


def column_name(name: str) -> str:
    """A column name for a file's field, for layers whose schema comes from the file: word
    characters only, not starting with a digit, system column names suffixed with _."""
    cleaned = re.sub(r"\W+", "_", name.strip()).strip("_") or "field"
    if cleaned[0].isdigit():
        cleaned = "f_" + cleaned
    if cleaned.lower() in SYSTEM_COLUMNS:
        cleaned += "_"
    while len(cleaned.encode()) > 63:
        cleaned = cleaned[:-1]
    return cleaned


def merge_schema(
    specs: list[PropertySpec], seen: dict[str, str | None]
) -> tuple[list[PropertySpec], list[PropertySpec], list[PropertySpec]]:
    """Fold the types seen in a batch into an inferred schema.

    Returns the new schema, the columns to add, and the columns to widen. Columns seen only as
    null so far are typed string.
    """
    by_name = {s.name: s for s in specs}
    added: list[PropertySpec] = []
    widened: list[PropertySpec] = []
    for name, kind in seen.items():
        current = by_name.get(name)
        if current is None:
            spec = PropertySpec(name, kind or "string")
            by_name[name] = spec
            added.append(spec)
            continue
        merged = wider(current.type, kind) or current.type
        if merged != current.type:
            spec = PropertySpec(name, merged)
            by_name[name] = spec
            widened.append(spec)
    return list(by_name.values()), added, widened

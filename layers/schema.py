"""A layer's declared shape: its geometry type and typed attributes, and how they map to SQL.

Attribute names become column names of the layer's table. They may be Chinese (departments'
files use 名称, 地址...), so the rule is "word characters only", which keeps every name safe to
double-quote without escaping; names are still always quoted, never spliced bare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from geo.errors import ApiError
from geo.nesting import json_depth as json_depth  # re-exported: the layer modules' name for it
from geo.sources import PROPERTY_TYPES

GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "Geometry",
)
# Families: a single-part geometry is promoted into a layer of its multi-part type.
SINGLE_OF = {"MultiPoint": "Point", "MultiLineString": "LineString", "MultiPolygon": "Polygon"}
MULTI_OF = {single: multi for multi, single in SINGLE_OF.items()}

SQL_TYPES = {
    "string": "text",
    "integer": "bigint",
    "number": "double precision",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamptz",
}
# Columns every layer table has; attributes may not take these names.
SYSTEM_COLUMNS = ("id", "geom", "version", "updated_by", "updated_at")
NAME_RE = re.compile(r"[^\W\d]\w*")  # fullmatch: "$" also matches before "\n"
MAX_NAME_BYTES = 63
MAX_PROPERTIES = 500


@dataclass(frozen=True)
class PropertySpec:
    name: str
    type: str
    required: bool = False
    title: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if self.title:
            out["title"] = self.title
        return out


def quote_ident(name: str) -> str:
    """Double-quote an identifier that :func:`check_name` (or the service) already vetted."""
    return '"' + name.replace('"', '""') + '"'


def check_name(name: Any, what: str = "property") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ApiError(
            400,
            "InvalidSchema",
            f"{what} name {name!r} must start with a letter and hold only letters, digits and _",
            {"name": name},
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ApiError(
            400, "InvalidSchema", f"{what} name {name!r} is longer than 63 bytes", {"name": name}
        )
    if name.lower() in SYSTEM_COLUMNS:
        raise ApiError(
            400,
            "InvalidSchema",
            f"{what} name {name!r} is reserved (system columns: {', '.join(SYSTEM_COLUMNS)})",
            {"name": name},
        )
    return name


def check_geometry_type(value: Any) -> str:
    if value not in GEOMETRY_TYPES:
        raise ApiError(
            400,
            "InvalidSchema",
            f"geometry type {value!r} is not one of {', '.join(GEOMETRY_TYPES)}",
            {"geometry_type": value},
        )
    return str(value)


def parse_properties(items: list[dict[str, Any]]) -> list[PropertySpec]:
    """Validate a declared attribute list: names, types, no duplicates (case-insensitively,
    as PostgreSQL folds nothing but people and GIS files do)."""
    if len(items) > MAX_PROPERTIES:
        raise ApiError(400, "InvalidSchema", f"at most {MAX_PROPERTIES} properties per layer")
    specs: list[PropertySpec] = []
    seen: set[str] = set()
    for item in items:
        name = check_name(item.get("name"))
        kind = item.get("type")
        if kind not in PROPERTY_TYPES:
            raise ApiError(
                400,
                "InvalidSchema",
                f"property {name!r}: type {kind!r} is not one of {', '.join(PROPERTY_TYPES)}",
                {"name": name, "type": kind},
            )
        if name.lower() in seen:
            raise ApiError(400, "InvalidSchema", f"property {name!r} is declared twice")
        seen.add(name.lower())
        specs.append(
            PropertySpec(name, str(kind), bool(item.get("required", False)), item.get("title"))
        )
    return specs


def specs_of(stored: list[dict[str, Any]]) -> list[PropertySpec]:
    """The catalogue's JSON back into specs (already validated when stored)."""
    return [
        PropertySpec(p["name"], p["type"], bool(p.get("required")), p.get("title")) for p in stored
    ]


def queryable_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of one attribute type, as OGC API - Features Part 3 queryables list it."""
    return {
        "string": {"type": "string"},
        "integer": {"type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean"},
        "date": {"type": "string", "format": "date"},
        "datetime": {"type": "string", "format": "date-time"},
    }[kind]


def geometry_schema(geometry_type: str) -> dict[str, Any]:
    if geometry_type == "Geometry":
        return {"format": "geometry-any", "$ref": "https://geojson.org/schema/Geometry.json"}
    return {
        "format": "geometry-" + geometry_type.lower(),
        "$ref": f"https://geojson.org/schema/{geometry_type}.json",
    }

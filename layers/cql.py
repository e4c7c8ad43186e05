"""CQL2 filters (OGC API - Features Part 3) compiled to SQL with bound parameters.

Both encodings are parsed by the ``cql2`` library into CQL2-JSON, and this module walks that one
tree. Property names are looked up in the collection's queryables and emitted as quoted
identifiers from *our* schema, never from the request; every literal (including LIKE patterns
and geometries) becomes a bound parameter. Nothing from the filter text is ever spliced into SQL,
which is what makes injection attempts in property names or patterns plain 400s or no-matches.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

import cql2
import orjson
import shapely

from geo import crs
from geo.errors import ApiError
from geo.nesting import check_json_depth
from geo.settings import get_settings
from geo.sources import LayerSource
from layers.ingest.values import ValueProblem, coerce
from layers.schema import json_depth, quote_ident
from layers.storage import SRID

GEOMETRY_NAMES = ("geometry", "geom")
LANGS = ("cql2-text", "cql2-json")
_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_within": "ST_Within",
    "s_contains": "ST_Contains",
    "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches",
    "s_crosses": "ST_Crosses",
    "s_overlaps": "ST_Overlaps",
    "s_equals": "ST_Equals",
}
_UNITS = {"meters": 1.0, "metres": 1.0, "m": 1.0, "kilometers": 1000.0, "km": 1000.0}
# Metres per degree of latitude, and of longitude at the equator (WGS84, rounded down so the
# expansion below errs on the large side).
M_PER_DEG = 110_574.0


class CompiledFilter:
    def __init__(self, sql: str, params: dict[str, Any]) -> None:
        self.sql = sql
        self.params = params


def invalid(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "InvalidFilter", message, details)


def parse(text: str, lang: str | None) -> Any:
    """CQL2 text or JSON to the CQL2-JSON tree.

    The ``cql2`` library is native code that recurses without a depth limit (about 1,900
    nested brackets, 4 KB, overflow its stack: a segmentation fault that kills the worker) and
    backtracks exponentially in brackets on text that fails to parse, holding the GIL all the
    while. So every filter is bounded before it reaches it: its size (GEO_MAX_FILTER_BYTES),
    its nesting (GEO_MAX_JSON_DEPTH; for text a linear pre-scan, for JSON the parsed document)
    and, for text, the parser's worst-case work (:func:`text_nesting`).
    """
    lang = lang or ("cql2-json" if text.lstrip().startswith("{") else "cql2-text")
    if lang not in LANGS:
        raise ApiError(
            400, "InvalidParameterValue", f"filter-lang must be one of {', '.join(LANGS)}"
        )
    settings = get_settings()
    limit = settings.max_json_depth
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > settings.max_filter_bytes:
        raise invalid(
            f"filter is {size} bytes, more than {settings.max_filter_bytes} (GEO_MAX_FILTER_BYTES)",
            {"limit": settings.max_filter_bytes, "setting": "GEO_MAX_FILTER_BYTES"},
        )
    try:
        if lang == "cql2-json":
            try:
                raw = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise invalid(f"filter is not valid JSON: {exc}") from exc
            check_json_depth(raw, "filter", "InvalidFilter")
            tree = cql2.parse_json(text).to_json()
        else:
            _check_text(text, limit, settings.max_filter_bytes)
            tree = cql2.parse_text(text).to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        raise invalid(f"filter is not valid {lang}: {str(exc).splitlines()[0]}") from exc
    if json_depth(tree, limit) > limit:
        raise invalid(
            f"filter nested deeper than {limit} levels (GEO_MAX_JSON_DEPTH)",
            {"limit": limit, "setting": "GEO_MAX_JSON_DEPTH"},
        )
    return tree


# Text up to GEO_MAX_FILTER_BYTES long may sit this many brackets deep; each level deeper halves
# what it may hold. The parser may try every bracket's alternatives again when something inside
# fails, so text k brackets deep costs up to 2**k times its length (measured: 16 KB at depth 6
# takes 0.25 s, at depth 12 21 s); this keeps the worst case near 0.05 s.
FULL_SIZE_DEPTH = 3
# Operators that nest the parsed expression one level deeper each time they follow one another
# (NOT NOT NOT ..., - - - 1, 1+1+1...): the library recurses on them as on brackets.
_CHAIN_SYMBOLS = frozenset("+-*/%^")
_CHAIN_WORDS = frozenset({"not", "div"})
# Where such a chain ends: a comparison, a list separator or a boolean connective.
_BREAK_SYMBOLS = frozenset(",=<>!")
_BREAK_WORDS = frozenset({"and", "or", "like", "between", "in", "is"})
# Quoted strings (with '' or "" escapes, possibly unterminated), words, single symbols.
_TOKEN = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|\w+|\S")


class TextNesting:
    """What :func:`text_nesting` measured: the deepest nesting (brackets plus operator chains),
    the deepest bracket, and the parser's worst-case work (each character weighs 2**brackets
    around it)."""

    def __init__(self, depth: int, brackets: int, work: int) -> None:
        self.depth = depth
        self.brackets = brackets
        self.work = work


def text_nesting(text: str, max_depth: int, max_work: int) -> TextNesting:
    """One linear pass over CQL2 text, without parsing it, stopping once it is deeper than
    ``max_depth`` (work stops counting beyond ``max_work``).

    Brackets inside quoted strings and identifiers do not count.
    """
    level = chain = brackets = deepest = deepest_brackets = work = end = 0
    enclosing: list[int] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if work <= max_work:
            work += (match.end() - end) << brackets
        end = match.end()
        if token in ("(", "["):
            enclosing.append(level)
            level += chain + 1
            chain = 0
            brackets += 1
            deepest_brackets = max(deepest_brackets, brackets)
        elif token in (")", "]"):
            if enclosing:
                level = enclosing.pop()
                brackets -= 1
            chain = 0
        elif token in _CHAIN_SYMBOLS or token.lower() in _CHAIN_WORDS:
            chain += 1
        elif token in _BREAK_SYMBOLS or token.lower() in _BREAK_WORDS:
            chain = 0
        deepest = max(deepest, level + chain)
        if deepest > max_depth:
            break
    return TextNesting(deepest, deepest_brackets, work)


def _check_text(text: str, max_depth: int, max_bytes: int) -> None:
    max_work = max_bytes << FULL_SIZE_DEPTH
    found = text_nesting(text, max_depth, max_work)
    if found.depth > max_depth:
        raise invalid(
            f"filter nested deeper than {max_depth} levels (GEO_MAX_JSON_DEPTH)",
            {"limit": max_depth, "setting": "GEO_MAX_JSON_DEPTH"},
        )
    if found.work > max_work:
        raise invalid(
            f"filter too complex to parse: {found.brackets} brackets deep; text more than "
            f"{FULL_SIZE_DEPTH} brackets deep may hold at most {max_bytes} bytes "
            "(GEO_MAX_FILTER_BYTES) halved for each level beyond; send large geometries as "
            "cql2-json",
            {"limit": max_bytes, "setting": "GEO_MAX_FILTER_BYTES", "brackets": found.brackets},
        )


def dwithin_sql(column: str, geometry_sql: str, dx: str, dy: str, metres: str) -> str:
    """Within a distance in metres, on the GiST index.

    ST_DWithin on geography measures metres on the ellipsoid but cannot use the index on the
    geometry column, so a bounding-box test on an envelope expanded by at least the distance in
    degrees (``dx`` longitude, ``dy`` latitude) goes first; it is what the planner uses the index
    for.
    """
    return (
        f"({column} && ST_Expand({geometry_sql}, {dx}, {dy}) AND "
        f"ST_DWithin({column}::geography, ({geometry_sql})::geography, {metres}))"
    )


def degree_margins(metres: float, max_lat: float | None = None) -> tuple[float, float]:
    """Degrees of longitude and latitude covering ``metres`` anywhere up to ``max_lat``."""
    if max_lat is None:
        max_lat = get_settings().extent[3]
    dy = metres / M_PER_DEG * 1.01
    dx = metres / (M_PER_DEG * math.cos(math.radians(min(abs(max_lat), 89.0)))) * 1.01
    return dx, dy


class Compiler:
    """One filter against one collection; parameters are named with a prefix so filters for
    several collections can share one statement."""

    def __init__(self, source: LayerSource, filter_crs: str, alias: str = "t", prefix: str = "f"):
        self.source = source
        self.filter_crs = crs.resolve(filter_crs).id
        self.alias = alias
        self.prefix = prefix
        self.params: dict[str, Any] = {}

    def compile(self, tree: Any) -> CompiledFilter:
        return CompiledFilter(self.condition(tree), self.params)

    # -- helpers -----------------------------------------------------------------------------
    def bind(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def queryables(self) -> list[str]:
        return [*self.source.properties, GEOMETRY_NAMES[0]]

    def column(self, node: Any) -> tuple[str, str]:
        """(SQL, type) of a property reference, after checking it is a queryable."""
        name = node.get("property") if isinstance(node, dict) else None
        if not isinstance(name, str):
            raise invalid(f"expected a property reference, got {_excerpt(node)}")
        if name in GEOMETRY_NAMES or name == self.source.geometry_column:
            return f"{self.alias}.{quote_ident(self.source.geometry_column)}", "geometry"
        kind = self.source.properties.get(name)
        if kind is None:
            raise invalid(
                f"unknown property {name!r}; queryables: {', '.join(self.queryables())}",
                {"property": name, "queryables": self.queryables()},
            )
        return f"{self.alias}.{quote_ident(name)}", kind

    def equals(self, name: str, raw: str) -> str:
        """``?name=value`` on the items URL (Part 1): the value is parsed as the property's type."""
        column, kind = self.column({"property": name})
        if kind == "geometry":
            raise invalid("filter geometries with bbox or a CQL2 spatial operator")
        try:
            value = coerce(raw, kind, from_text=True)
        except ValueProblem as exc:
            raise ApiError(
                400, "InvalidParameterValue", f"{name}: {exc}", {"property": name}
            ) from exc
        return f"({column} = {self.bind(value)})"

    # -- boolean structure ---------------------------------------------------------------------
    def condition(self, node: Any) -> str:
        if isinstance(node, bool):
            return "TRUE" if node else "FALSE"
        if not isinstance(node, dict) or "op" not in node:
            raise invalid(f"expected a predicate, got {_excerpt(node)}")
        op = str(node["op"]).lower()
        args = node.get("args")
        if not isinstance(args, list):
            raise invalid(f"{op}: args must be an array")
        if op in ("and", "or"):
            if len(args) < 2:
                raise invalid(f"{op} needs at least two arguments")
            return "(" + f" {op.upper()} ".join(self.condition(a) for a in args) + ")"
        if op == "not":
            self._arity(op, args, 1)
            return f"(NOT {self.condition(args[0])})"
        if op in _COMPARISONS:
            self._arity(op, args, 2)
            left, right = self.pair(args[0], args[1])
            return f"({left} {_COMPARISONS[op]} {right})"
        if op == "like":
            self._arity(op, args, 2)
            value, kind = self.scalar(args[0])
            if not isinstance(args[1], str) and not _is_casei(args[1]):
                raise invalid("like: the pattern must be a string")
            pattern, _ = self.scalar(args[1])
            return f"({value if kind == 'string' else f'CAST({value} AS text)'} LIKE {pattern})"
        if op == "between":
            self._arity(op, args, 3)
            value, kind = self.scalar(args[0])
            low, high = (self.literal(a, kind) for a in args[1:])
            return f"({value} BETWEEN {low} AND {high})"
        if op == "in":
            self._arity(op, args, 2)
            value, kind = self.scalar(args[0])
            if not isinstance(args[1], list) or not args[1]:
                raise invalid("in: the second argument must be a non-empty list")
            return f"({value} IN ({', '.join(self.literal(a, kind) for a in args[1])}))"
        if op == "isnull":
            self._arity(op, args, 1)
            value, _ = self.scalar(args[0])
            return f"({value} IS NULL)"
        if op in _SPATIAL:
            self._arity(op, args, 2)
            return f"{_SPATIAL[op]}({self.geometry(args[0])}, {self.geometry(args[1])})"
        if op == "s_dwithin":
            return self.dwithin(args)
        raise invalid(
            f"operator {node['op']!r} is not supported here",
            {
                "supported": sorted(
                    [
                        *_COMPARISONS,
                        "and",
                        "or",
                        "not",
                        "like",
                        "between",
                        "in",
                        "isNull",
                        "s_dwithin",
                        "casei",
                        *_SPATIAL,
                    ]
                )
            },
        )

    @staticmethod
    def _arity(op: str, args: list[Any], n: int) -> None:
        if len(args) != n:
            raise invalid(f"{op} takes {n} argument(s), got {len(args)}")

    # -- scalars -------------------------------------------------------------------------------
    def scalar(self, node: Any, hint: str | None = None) -> tuple[str, str | None]:
        """(SQL, type) of a property, a casei() call or a literal."""
        if isinstance(node, dict) and "property" in node:
            return self.column(node)
        if _is_casei(node):
            self._arity("casei", node["args"], 1)
            inner, kind = self.scalar(node["args"][0], "string")
            if kind not in ("string", None):
                raise invalid("casei applies to strings")
            return f"lower({inner})", "string"
        return self.literal(node, hint), hint

    def kind_of(self, node: Any) -> str | None:
        """Type of a property or casei() operand; None for a literal."""
        if _is_literal(node):
            return None
        return self.scalar(node)[1] if _is_casei(node) else self.column(node)[1]

    def pair(self, left: Any, right: Any) -> tuple[str, str]:
        """Compare two operands; a literal takes the type of the property it is compared with."""
        lkind, rkind = self.kind_of(left), self.kind_of(right)
        if "geometry" in (lkind, rkind):
            raise invalid("compare geometries with the spatial operators (S_INTERSECTS...)")
        lsql = self.literal(left, rkind) if lkind is None else self.scalar(left)[0]
        rsql = self.literal(right, lkind) if rkind is None else self.scalar(right)[0]
        return lsql, rsql

    def literal(self, node: Any, kind: str | None) -> str:
        if isinstance(node, dict) and ("property" in node or _is_casei(node)):
            sql, _ = self.scalar(node)
            return sql
        return self.bind(self.typed(node, kind))

    def typed(self, node: Any, kind: str | None) -> Any:
        """A literal as the Python value to bind, checked against the property's type."""
        if isinstance(node, dict) and ("date" in node or "timestamp" in node):
            text = str(node.get("date") or node.get("timestamp"))
            try:
                value: Any = (
                    date.fromisoformat(text) if "date" in node else datetime.fromisoformat(text)
                )
            except (TypeError, ValueError) as exc:
                raise invalid(f"invalid date/timestamp literal {_excerpt(node)}") from exc
            if kind not in (None, "date", "datetime"):
                raise invalid(f"a {kind} property cannot be compared with a date")
            return value
        if isinstance(node, dict | list):
            raise invalid(f"expected a literal value, got {_excerpt(node)}")
        if kind in (None, "string"):
            if kind == "string" and not isinstance(node, str):
                raise invalid(f"a string property cannot be compared with {_excerpt(node)}")
            return node
        if kind in ("integer", "number"):
            if isinstance(node, bool) or not isinstance(node, int | float):
                raise invalid(f"a {kind} property cannot be compared with {_excerpt(node)}")
            return int(node) if kind == "integer" and float(node).is_integer() else float(node)
        if kind == "boolean":
            if not isinstance(node, bool):
                raise invalid(f"a boolean property cannot be compared with {_excerpt(node)}")
            return node
        if kind in ("date", "datetime"):
            if not isinstance(node, str):
                raise invalid(f"a {kind} property cannot be compared with {_excerpt(node)}")
            try:
                return date.fromisoformat(node) if kind == "date" else datetime.fromisoformat(node)
            except ValueError as exc:
                raise invalid(f"{_excerpt(node)} is not an ISO 8601 {kind}") from exc
        raise invalid(f"cannot compare a {kind} property")

    # -- geometries ----------------------------------------------------------------------------
    def shape(self, node: Any) -> Any:
        """A geometry literal (GeoJSON or bbox) as a shapely geometry in EPSG:4490."""
        try:
            if isinstance(node, dict) and "bbox" in node:
                box = [float(v) for v in node["bbox"]]
                if len(box) == 6:
                    box = [box[0], box[1], box[3], box[4]]
                geom = shapely.box(*box)
            elif isinstance(node, dict) and str(node.get("op", "")).lower() == "envelope":
                geom = shapely.box(*[float(v) for v in node["args"]])
            elif isinstance(node, dict) and "type" in node:
                geom = shapely.from_geojson(orjson.dumps(node))
            else:
                raise invalid(f"expected a geometry, got {_excerpt(node)}")
        except (TypeError, ValueError, shapely.errors.GEOSException) as exc:
            raise invalid(f"invalid geometry literal: {exc}") from exc
        return crs.transform(geom, self.filter_crs, crs.STORAGE_CRS)

    def geometry(self, node: Any) -> str:
        if isinstance(node, dict) and "property" in node:
            sql, kind = self.column(node)
            if kind != "geometry":
                raise invalid(f"{node['property']!r} is not a geometry")
            return sql
        geom = self.shape(node)
        return f"ST_GeomFromEWKB({self.bind(_ewkb(geom))})"

    def dwithin(self, args: list[Any]) -> str:
        if len(args) not in (3, 4):
            raise invalid("s_dwithin takes (geometry, geometry, distance[, units])")
        distance = args[2]
        if isinstance(distance, bool) or not isinstance(distance, int | float) or distance < 0:
            raise invalid("s_dwithin: the distance must be a non-negative number")
        factor = 1.0
        if len(args) == 4:
            unit = args[3].get("property") if isinstance(args[3], dict) else args[3]
            if str(unit).lower() not in _UNITS:
                raise invalid(f"s_dwithin: unknown unit {unit!r}; use meters or kilometers")
            factor = _UNITS[str(unit).lower()]
        metres = float(distance) * factor
        prop, other = args[0], args[1]
        if not (isinstance(prop, dict) and "property" in prop):
            prop, other = other, prop
        column = self.geometry(prop)
        if isinstance(other, dict) and "property" in other:
            raise invalid("s_dwithin compares the layer's geometry with a literal geometry")
        geom = self.shape(other)
        dx, dy = degree_margins(metres, shapely.bounds(geom)[3])
        return dwithin_sql(
            column,
            f"ST_GeomFromEWKB({self.bind(_ewkb(geom))})",
            self.bind(dx),
            self.bind(dy),
            self.bind(metres),
        )


def _ewkb(geom: Any) -> bytes:
    return bytes(shapely.to_wkb(shapely.set_srid(geom, SRID), include_srid=True))


def _is_literal(node: Any) -> bool:
    return not (isinstance(node, dict) and ("property" in node or "op" in node))


def _is_casei(node: Any) -> bool:
    return isinstance(node, dict) and str(node.get("op", "")).lower() == "casei"


def _excerpt(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def compile_filter(
    text: str, lang: str | None, source: LayerSource, filter_crs: str | None
) -> CompiledFilter:
    return Compiler(source, filter_crs or crs.DEFAULT_CRS).compile(parse(text, lang))

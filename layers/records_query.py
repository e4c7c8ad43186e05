"""Searching the sharing catalogue: which records a caller sees, and the query behind
``/catalogue/collections/layers/items``.

Who sees what (issue 11): anonymous callers see open-data layers only; a department sees its
own layers and every other department's 无条件共享 and 有条件共享 layers (the latter as metadata
only, until a grant lets it read them); 不予共享 layers of other departments never appear; the
platform administrator sees every layer.

The text search (``q``) matches any of its comma-separated terms anywhere in the generated
``search_text`` column (title, summary, theme, keywords), with ILIKE. Chinese titles have no
word boundaries, so a word index would not do; the trigram GIN index ``ix_layers_search_trgm``
(pg_trgm, whose trigrams work on any UTF-8 characters) serves ``ILIKE '%term%'`` for terms of
three characters or more, and the planner falls back to reading the (small) table for shorter
ones. tests/test_catalogue_records.py checks that the index serves the query as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Select, and_, false, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from geo.auth import Principal
from geo.errors import ApiError
from geo.settings import get_settings
from layers import catalogue, scope
from layers.models import SHARING_TYPES, Layer

MAX_LIMIT = 100
MAX_TERMS = 10
MAX_VALUES = 100
RECORD_TYPE = "dataset"


@dataclass
class RecordQuery:
    q: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    sharing_types: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    bbox: tuple[float, float, float, float] | None = None
    limit: int = 10
    offset: int = 0


def split_list(name: str, value: str | None, most: int, longest: int) -> list[str]:
    """A comma-separated parameter: its non-empty items, each bounded."""
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if len(items) > most:
        raise ApiError(400, "InvalidParameterValue", f"{name}: at most {most} values")
    too_long = [v for v in items if len(v) > longest]
    if too_long:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"{name}: each value has at most {longest} characters",
            {"parameter": name},
        )
    return items


def sharing_types(value: str | None) -> list[str]:
    found = split_list("sharing_type", value, len(SHARING_TYPES), 20)
    unknown = [v for v in found if v not in SHARING_TYPES]
    if unknown:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"sharing_type must be among {', '.join(SHARING_TYPES)}, not {', '.join(unknown)}",
            {"allowed": list(SHARING_TYPES)},
        )
    return found


def visible(who: Principal) -> ColumnElement[bool]:
    """The module docstring's rule as a WHERE clause."""
    if who.is_admin:
        return true()
    if who.department is None:
        return Layer.open_data.is_(True)
    return or_(
        Layer.owner == who.department,
        Layer.open_data.is_(True),
        Layer.sharing_type.in_(("unconditional", "conditional")),
    )


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _where(who: Principal, query: RecordQuery) -> list[ColumnElement[bool]]:
    rules = [visible(who)]
    if query.q:
        rules.append(or_(*(Layer.search_text.ilike(_like(t), escape="\\") for t in query.q)))
    if query.ids:
        rules.append(Layer.id.in_(query.ids))
    if query.departments:
        rules.append(Layer.owner.in_(query.departments))
    if query.themes:
        rules.append(Layer.theme.in_(query.themes))
    if query.sharing_types:
        rules.append(Layer.sharing_type.in_(query.sharing_types))
    if query.types and RECORD_TYPE not in query.types:
        rules.append(false())
    if query.bbox is not None:
        box = func.ST_MakeEnvelope(*query.bbox, 4490)
        # A layer without a declared coverage covers the city (layers.records.coverage_bbox).
        undeclared = (
            Layer.coverage.is_(None) if _overlaps(query.bbox, get_settings().extent) else false()
        )
        rules.append(or_(func.ST_Intersects(Layer.coverage, box), undeclared))
    return rules


def statement(who: Principal, query: RecordQuery) -> Select[tuple[Layer]]:
    """The page's query: newest entries first, the id breaking ties so pages do not overlap."""
    return (
        select(Layer)
        .where(and_(*_where(who, query)))
        .order_by(Layer.updated_at.desc(), Layer.id)
        .limit(query.limit)
        .offset(query.offset)
    )


def search(session: Session, who: Principal, query: RecordQuery) -> tuple[list[Layer], int]:
    """The page of layers and how many match in all."""
    page = list(session.scalars(statement(who, query)))
    matched = session.scalar(
        select(func.count()).select_from(Layer).where(and_(*_where(who, query)))
    )
    return page, int(matched or 0)


def visible_layer(session: Session, who: Principal, layer_id: str) -> Layer:
    """One record's layer, or a 404 when the caller may not see its record."""
    layer = session.scalar(select(Layer).where(Layer.id == layer_id, visible(who)))
    if layer is None:
        raise ApiError(404, "NotFound", f"no catalogue record {layer_id!r}", {"record": layer_id})
    return layer


def access_states(session: Session, who: Principal, layers: list[Layer]) -> dict[str, str]:
    """How the caller may use each layer (layers.records.record's ``access``), with one query
    for the grants of the 有条件共享 layers it does not otherwise read."""
    states: dict[str, str] = {}
    pending: list[str] = []
    for layer in layers:
        if who.is_admin:
            states[layer.id] = "admin"
        elif who.department is not None and who.department == layer.owner:
            states[layer.id] = "own"
        elif layer.open_data:
            states[layer.id] = "open"
        elif catalogue.full_access(who, layer):
            states[layer.id] = "unconditional"
        else:
            pending.append(layer.id)
    granted = scope.applicable(session, who.department, pending)
    for layer_id in pending:
        states[layer_id] = "granted" if layer_id in granted else "request"
    return states

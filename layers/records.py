"""The sharing catalogue's entries (issue 11, part 4): the catalogue fields of a layer, how its
owner sets them, and the OGC API - Records record that describes it.

Fields: title, summary (``description``), providing department (the layer's owner), sharing
type (无条件共享 / 有条件共享 / 不予共享), open data (开放), update cycle, keywords, theme,
contact, and the declared coverage (the area the data describes, as a bounding box). The
coverage is declared, never computed from the data: a 有条件共享 layer's record is shown to
departments that may not read its features, and an extent taken from them would tell them where
the features are.

Open data and sharing type stay coherent: an open layer is shared unconditionally (open to
everyone means open to every department), so opening a layer makes it ``unconditional`` and
narrowing the sharing of an open layer without closing it is a 400.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import shapely
from geoalchemy2.shape import from_shape, to_shape
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from geo import audit, versions
from geo.auth import Principal
from geo.departments import list_departments
from geo.errors import ApiError
from geo.settings import get_settings
from layers import catalogue
from layers.models import SHARING_TYPES, UPDATE_CYCLES, Layer

SHARING_LABELS = {"unconditional": "无条件共享", "conditional": "有条件共享", "none": "不予共享"}
RECORD_CORE = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/record-core"
STORAGE_SRID = 4490

Keyword = Annotated[str, Field(min_length=1, max_length=100)]


class ContactIn(BaseModel):
    """The contact point (联系人) of a catalogue entry."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=100)
    organization: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40, pattern=r"^[0-9+()\- ]{3,40}$")
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class CatalogueEntryIn(BaseModel):
    """The catalogue fields, each optional: a merge patch (a null clears a member)."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    keywords: list[Keyword] | None = Field(default=None, max_length=50)
    sharing_type: Literal[SHARING_TYPES] | None = None  # type: ignore[valid-type]
    open_data: bool | None = None
    update_cycle: Literal[UPDATE_CYCLES] | None = None  # type: ignore[valid-type]
    theme: str | None = Field(default=None, min_length=1, max_length=100)
    contact: ContactIn | None = None
    coverage: list[float] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="bounding box in lon/lat (EPSG:4490): minx, miny, maxx, maxy",
    )


def _coverage(box: list[float]) -> Any:
    minx, miny, maxx, maxy = box
    if not all(map(_finite, box)) or minx >= maxx or miny >= maxy:
        raise ApiError(
            400,
            "InvalidParameterValue",
            "coverage must be minx, miny, maxx, maxy with each minimum below its maximum",
            {"coverage": box},
        )
    if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
        raise ApiError(
            400, "InvalidParameterValue", "coverage is in lon/lat degrees", {"coverage": box}
        )
    return from_shape(shapely.box(minx, miny, maxx, maxy), srid=STORAGE_SRID)


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


def _sharing(layer: Layer, changes: dict[str, Any]) -> tuple[str, bool]:
    """The sharing type and open-data flag after ``changes`` (module docstring's rule)."""
    is_open = changes.get("open_data")
    if is_open is None:
        is_open = _is_open(layer)
    sharing = changes.get("sharing_type")
    if sharing is None:
        sharing = "unconditional" if changes.get("open_data") else layer.sharing_type or "none"
    if is_open and sharing != "unconditional":
        raise ApiError(
            400,
            "IncoherentSharing",
            f"an open-data layer (开放) is shared unconditionally; set open_data to false to "
            f"share it as {sharing!r}",
            {"sharing_type": sharing, "open_data": True},
        )
    return sharing, is_open


def _is_open(layer: Layer) -> bool:
    """What ``open_data`` is generated from; read directly, as a layer not yet flushed (being
    created) has no generated value."""
    return layer.access == "public"


def apply_catalogue_fields(layer: Layer, changes: dict[str, Any]) -> list[str]:
    """Set the catalogue fields in ``changes`` (a CatalogueEntryIn's set members) on ``layer``;
    returns the names changed. Opening a layer sets ``access`` to public; closing an open layer
    makes it private to anonymous callers (its departments' reads follow the sharing type).

    Used by the catalogue-entry route and, for layer creation and PATCH /collections, by
    layers.catalogue, so every path applies the same rules."""
    sharing, is_open = _sharing(layer, changes)
    layer.sharing_type = sharing
    if is_open != _is_open(layer):
        layer.access = "public" if is_open else "private"
        layer.shared_with = []
    if "title" in changes:
        layer.title = changes["title"] or layer.id
    if "description" in changes:
        layer.description = changes["description"]
    if "keywords" in changes:
        layer.keywords = list(changes["keywords"] or [])
    if "update_cycle" in changes:
        layer.update_cycle = changes["update_cycle"]
    if "theme" in changes:
        layer.theme = changes["theme"]
    if "contact" in changes:
        contact = changes["contact"]
        layer.contact = {k: v for k, v in contact.items() if v is not None} if contact else None
    if "coverage" in changes:
        box = changes["coverage"]
        layer.coverage = _coverage(box) if box is not None else None
    return sorted(changes)


def set_catalogue_entry(
    session: Session, who: Principal, layer_id: str, changes: dict[str, Any]
) -> Layer:
    """The owner's editors (or the platform administrator) change the layer's entry."""
    layer = catalogue.writable_layer(session, who, layer_id, lock=True)
    was_open = bool(layer.open_data)
    changed = apply_catalogue_fields(layer, changes)
    if _is_open(layer) != was_open:
        # The shared_with view grants end with the list (an open layer needs none).
        catalogue.sync_shared_with(session, who, layer)
    layer.updated_at = datetime.now(UTC)
    session.flush()
    session.refresh(layer)  # open_data and search_text are generated by PostgreSQL
    versions.bump(session, catalogue.version_key(layer_id))
    details: dict[str, Any] = {"changed": changed, "sharing_type": layer.sharing_type}
    if was_open != layer.open_data:
        details["open_data"] = layer.open_data
    audit.record(session, who, "layer.catalogue", layer_id, details)
    return layer


# -- the record ---------------------------------------------------------------------------------


def provider_names(session: Session) -> dict[str, str]:
    """Department names by code, for the records' providing department (departments are tens,
    not thousands: one small read per page)."""
    return {d["code"]: d["name"] for d in list_departments(session)}


def coverage_bbox(layer: Layer) -> tuple[float, float, float, float]:
    """The declared coverage, or the city's extent when none was declared."""
    if layer.coverage is None:
        minx, miny, maxx, maxy = get_settings().extent
        return (minx, miny, maxx, maxy)
    x0, y0, x1, y1 = to_shape(layer.coverage).bounds
    return (x0, y0, x1, y1)


def _polygon(box: tuple[float, float, float, float]) -> dict[str, Any]:
    x0, y0, x1, y1 = box
    return {
        "type": "Polygon",
        "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
    }


def _contacts(layer: Layer, provider_name: str) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = [
        {"organization": provider_name, "identifier": layer.owner, "roles": ["publisher"]}
    ]
    contact = layer.contact or {}
    if contact:
        point: dict[str, Any] = {"roles": ["pointOfContact"]}
        if contact.get("name"):
            point["name"] = contact["name"]
        point["organization"] = contact.get("organization") or provider_name
        if contact.get("phone"):
            point["phones"] = [{"value": contact["phone"]}]
        if contact.get("email"):
            point["emails"] = [{"value": contact["email"]}]
        contacts.append(point)
    return contacts


FORMATS = (
    {"name": "GeoJSON", "mediaType": "application/geo+json"},
    {"name": "CSV", "mediaType": "text/csv"},
    {"name": "GeoPackage", "mediaType": "application/geopackage+sqlite3"},
    {"name": "Mapbox Vector Tiles", "mediaType": "application/vnd.mapbox-vector-tile"},
)


def record(layer: Layer, base: str, provider_name: str, access: str) -> dict[str, Any]:
    """The layer's OGC API - Records record (GeoJSON encoding), for a caller whose access is
    ``access``: ``open``, ``own``, ``admin``, ``unconditional`` or ``granted`` (links to the
    data), or ``request`` (有条件共享 without a grant: metadata and a link to ask)."""
    href = f"{base}/catalogue/collections/layers/items/{layer.id}"
    links: list[dict[str, Any]] = [
        {"rel": "self", "type": "application/geo+json", "href": href},
        {
            "rel": "collection",
            "type": "application/json",
            "href": f"{base}/catalogue/collections/layers",
        },
    ]
    if access == "request":
        links.append(
            {
                "rel": "request-access",
                "type": "application/json",
                "title": f'申请使用：POST {{"collection": "{layer.id}", ...}}',
                "href": f"{base}/access-requests",
            }
        )
    else:
        data = f"{base}/collections/{layer.id}"
        links += [
            {"rel": "describes", "type": "application/json", "href": data},
            {"rel": "items", "type": "application/geo+json", "href": f"{data}/items"},
        ]
    theme = (
        [{"concepts": [{"id": layer.theme}], "scheme": f"{base}/catalogue/themes"}]
        if layer.theme
        else []
    )
    return {
        "id": layer.id,
        "type": "Feature",
        "conformsTo": [RECORD_CORE],
        "time": None,
        "geometry": _polygon(coverage_bbox(layer)),
        "properties": {
            "type": "dataset",
            "title": layer.title,
            "description": layer.description or "",
            "keywords": list(layer.keywords or []),
            "themes": theme,
            "language": {"code": "zh-CN"},
            "contacts": _contacts(layer, provider_name),
            "formats": list(FORMATS),
            "rights": SHARING_LABELS[layer.sharing_type] + ("，开放" if layer.open_data else ""),
            "created": layer.created_at.isoformat() if layer.created_at else None,
            "updated": layer.updated_at.isoformat() if layer.updated_at else None,
            "provider": {"code": layer.owner, "name": provider_name},
            "sharingType": layer.sharing_type,
            "openData": bool(layer.open_data),
            "updateCycle": layer.update_cycle,
            "theme": layer.theme,
            "geometryType": layer.geometry_type,
            "attributes": [
                {k: p[k] for k in ("name", "type", "title") if p.get(k) is not None}
                for p in layer.properties
            ],
            "access": access,
        },
        "links": links,
    }

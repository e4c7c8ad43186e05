"""The JSON documents of the catalogue: collections as OGC API - Features describes them, with
the extra catalogue facts (owner, access, schema) departments manage."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from geo import crs
from geo.extent import estimated_extent
from geo.settings import get_settings
from geo.sources import LayerSource
from layers.models import Layer
from layers.schema import geometry_schema, queryable_schema

ITEM_TYPE = "feature"


def crs_uris() -> list[str]:
    return [c["uri"] for c in crs.list_crs()]


def collection(
    session: Session, base: str, source: LayerSource, layer: Layer | None
) -> dict[str, Any]:
    href = f"{base}/collections/{source.id}"
    bbox = list(
        estimated_extent(session, source.table, source.geometry_column) or get_settings().extent
    )
    doc: dict[str, Any] = {
        "id": source.id,
        "title": source.title,
        "description": source.description or "",
        "keywords": list(source.keywords),
        "itemType": ITEM_TYPE,
        "extent": {"spatial": {"bbox": [bbox], "crs": crs.resolve(crs.DEFAULT_CRS).uri}},
        "crs": crs_uris(),
        "storageCrs": crs.resolve(crs.STORAGE_CRS).uri,
        "geometryType": source.geometry_type,
        "links": [
            {"rel": "self", "type": "application/json", "href": href},
            {"rel": "alternate", "type": "text/html", "href": f"{href}?f=html"},
            {"rel": "items", "type": "application/geo+json", "href": f"{href}/items"},
            {"rel": "items", "type": "text/html", "href": f"{href}/items?f=html"},
            {"rel": "items", "type": "text/csv", "href": f"{href}/items?f=csv"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
                "href": f"{href}/queryables",
            },
            {
                "rel": "enclosure",
                "type": "application/geopackage+sqlite3",
                "title": "the whole layer as a GeoPackage",
                "href": f"{href}/export?f=gpkg",
            },
        ],
        "readOnly": layer is None,
        "public": source.public,
    }
    if layer is not None:
        doc.update(
            owner=layer.owner,
            access=layer.access,
            shared_with=list(layer.shared_with or []),
            # A grant's withheld attributes are not even named (layers.scope).
            properties=[p for p in layer.properties if p["name"] in source.properties],
            key_property=layer.key_property,
            created_at=layer.created_at.isoformat() if layer.created_at else None,
            updated_at=layer.updated_at.isoformat() if layer.updated_at else None,
        )
    else:
        doc["properties"] = [{"name": n, "type": t} for n, t in source.properties.items()]
    if source.scope is not None:
        expires = source.scope.expires_at
        doc["grant"] = {
            "id": source.scope.grant_id,
            "level": source.scope.level,
            "area": source.scope.area is not None,
            "expires_at": expires.isoformat() if expires else None,
        }
    return doc


def queryables(base: str, source: LayerSource) -> dict[str, Any]:
    props: dict[str, Any] = {
        "geometry": {"title": "geometry", **geometry_schema(source.geometry_type)}
    }
    for name, kind in source.properties.items():
        props[name] = {"title": name, **queryable_schema(kind)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/collections/{source.id}/queryables",
        "type": "object",
        "title": source.title,
        "properties": props,
        "additionalProperties": False,
    }

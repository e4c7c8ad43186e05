"""A MapLibre style for a set of layers: basemap-free, one composite vector source.

Every layer gets a MapLibre layer per geometry kind it may hold (fill + outline for polygons,
line, circle), each filtered on the geometry type, so a layer of mixed geometries still renders.
The address library's admin areas are drawn as outlines with their names (district, subdistrict,
community, each at the zooms where it reads well) instead of fills: they are the frame of every
other layer. Colours come from a fixed palette, chosen per layer id, so a layer keeps its colour
in every style that includes it.

Area names come from a separate GeoJSON source of one point per area (tiles.labels): labelling
the tiled polygons would repeat a name in every tile the area touches.

No `glyphs` URL: MapLibre 5 then draws every label with the browser's own fonts (TinySDF), which
works offline and covers Chinese; the font stack names the common CJK system fonts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from geo.sources import LayerSource
from tiles.labels import labelled
from tiles.tilejson import Bounds
from tiles.tms import MAX_ZOOM, MIN_ZOOM
from tiles.urls import base_url, layer_list, tiles_template, with_token

SOURCE = "geo"
LABELS = "geo-labels"
FONTS = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "sans-serif"]
BACKGROUND = "#f6f4ee"
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#8c564b",
    "#ff7f0e",
    "#393b79",
)


@dataclass(frozen=True)
class AreaLook:
    """How one of the address library's area layers is drawn."""

    color: str
    width: float
    dash: tuple[float, float] | None
    minzoom: int
    label_minzoom: int
    label_size: int


ADMIN_LAYERS = {
    "districts": AreaLook("#4a3f8c", 2.2, None, 0, 8, 15),
    "subdistricts": AreaLook("#6f63b0", 1.2, (3, 2), 9, 11, 13),
    "communities": AreaLook("#9d95c9", 0.7, (2, 2), 12, 14, 12),
    "grids": AreaLook("#d9822b", 0.7, None, 13, 15, 11),
}


def colour(layer_id: str) -> str:
    index = hashlib.blake2b(layer_id.encode(), digest_size=2).digest()
    return PALETTE[int.from_bytes(index, "big") % len(PALETTE)]


def _is(kind: str) -> list[Any]:
    if kind == "Polygon":
        return ["==", ["geometry-type"], "Polygon"]
    if kind == "LineString":
        return ["==", ["geometry-type"], "LineString"]
    return ["==", ["geometry-type"], "Point"]


def _base(source: LayerSource, suffix: str, kind: str, paint: dict[str, Any]) -> dict[str, Any]:
    layer_type = {"fill": "fill", "outline": "line", "line": "line", "circle": "circle"}[suffix]
    return {
        "id": f"{source.id}-{suffix}",
        "type": layer_type,
        "source": SOURCE,
        "source-layer": source.id,
        "filter": _is(kind),
        "metadata": {"geo:layer": source.id, "geo:title": source.title},
        "paint": paint,
    }


def _admin_layers(source: LayerSource, labelled_ids: set[str]) -> list[dict[str, Any]]:
    look = ADMIN_LAYERS[source.id]
    line_paint: dict[str, Any] = {"line-color": look.color, "line-width": look.width}
    if look.dash:
        line_paint["line-dasharray"] = list(look.dash)
    outline = _base(source, "outline", "Polygon", line_paint)
    outline["minzoom"] = look.minzoom
    layers = [outline]
    if source.id in labelled_ids:
        layers.append(
            {
                "id": f"{source.id}-label",
                "type": "symbol",
                "source": LABELS,
                "minzoom": look.label_minzoom,
                "filter": ["==", ["get", "layer"], source.id],
                "metadata": {"geo:layer": source.id, "geo:title": source.title},
                "layout": {
                    "text-field": ["get", "name"],
                    "text-font": FONTS,
                    "text-size": look.label_size,
                },
                "paint": {
                    "text-color": look.color,
                    "text-halo-color": "#ffffff",
                    "text-halo-width": 1.5,
                },
            }
        )
    return layers


def _thematic_layers(source: LayerSource) -> list[dict[str, Any]]:
    """Layers of any geometry type draw all three kinds: a layer declared `Geometry` (mixed) or
    whose declaration is wrong still shows every feature."""
    kind = source.geometry_type.lower().removeprefix("multi")
    col = colour(source.id)
    polygon = [
        _base(source, "fill", "Polygon", {"fill-color": col, "fill-opacity": 0.25}),
        _base(source, "outline", "Polygon", {"line-color": col, "line-width": 1}),
    ]
    line = [_base(source, "line", "LineString", {"line-color": col, "line-width": 1.5})]
    circle = [
        _base(
            source,
            "circle",
            "Point",
            {
                "circle-color": col,
                "circle-radius": ["interpolate", ["linear"], ["zoom"], 8, 2, 16, 5],
                "circle-stroke-color": "#ffffff",
                "circle-stroke-width": 0.8,
            },
        )
    ]
    # Plain points only: clusters (points with a `count`, tiles.aggregate) are drawn apart.
    circle[0]["filter"] = ["all", _is("Point"), ["!", ["has", "count"]]]
    clusters = _cluster_layers(source, col)
    by_kind = {"polygon": polygon, "linestring": line, "point": circle + clusters}
    return by_kind.get(kind, polygon + line + circle + clusters)


def _cluster_layers(source: LayerSource, col: str) -> list[dict[str, Any]]:
    """Clusters of a tile past the feature cap: a circle growing with the square root of its
    count (its area with the count), and the count written on it."""
    is_cluster = ["all", _is("Point"), ["has", "count"]]
    radius = ["interpolate", ["linear"], ["sqrt", ["get", "count"]], 1, 4, 10, 9, 100, 22]
    circle = _base(
        source,
        "circle",
        "Point",
        {
            "circle-color": col,
            "circle-opacity": 0.6,
            "circle-radius": radius,
            "circle-stroke-color": "#ffffff",
            "circle-stroke-width": 1,
        },
    )
    circle |= {"id": f"{source.id}-cluster", "filter": is_cluster}
    label = {
        "id": f"{source.id}-cluster-count",
        "type": "symbol",
        "source": SOURCE,
        "source-layer": source.id,
        "filter": ["all", is_cluster, [">", ["get", "count"], 1]],
        "metadata": {"geo:layer": source.id, "geo:title": source.title},
        "layout": {
            "text-field": ["to-string", ["get", "count"]],
            "text-font": FONTS,
            "text-size": 10,
            "text-allow-overlap": True,
        },
        "paint": {"text-color": "#ffffff", "text-halo-color": col, "text-halo-width": 1},
    }
    return [circle, label]


def style(request: Request, sources: Sequence[LayerSource], bounds: Bounds) -> dict[str, Any]:
    ids = [s.id for s in sources]
    areas = [s for s in sources if s.id in ADMIN_LAYERS]
    labelled_ids = {s.id for s in labelled(areas)}
    # Areas first (underneath), then the other layers in the order asked, labels on top.
    admin = [layer for s in areas for layer in _admin_layers(s, labelled_ids)]
    outlines = [layer for layer in admin if layer["type"] != "symbol"]
    labels = [layer for layer in admin if layer["type"] == "symbol"]
    thematic = [layer for s in sources if s.id not in ADMIN_LAYERS for layer in _thematic_layers(s)]
    sources_doc: dict[str, Any] = {
        SOURCE: {
            "type": "vector",
            "tiles": [tiles_template(request, sources)],
            "minzoom": MIN_ZOOM,
            "maxzoom": MAX_ZOOM,
            "bounds": list(bounds),
            "attribution": "天津市空间地址与地理信息服务",
        }
    }
    if labelled_ids:
        names = layer_list([i for i in ids if i in labelled_ids])
        url = f"{base_url(request)}/tiles/{names}/labels.geojson"
        sources_doc[LABELS] = {"type": "geojson", "data": with_token(request, url)}
    return {
        "version": 8,
        "name": layer_list(ids),
        "metadata": {"geo:layers": ids},
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2],
        "zoom": 9,
        "sources": sources_doc,
        "layers": [
            {"id": "background", "type": "background", "paint": {"background-color": BACKGROUND}},
            *outlines,
            *thematic,
            *labels,
        ],
    }

"""The address library's datasets as read-only collections (geo.sources.LayerSource).

Tiles, overlay, identify, statistics and OGC clients treat these like any department layer. The
description lives here, beside the tables it names, and reaches the other packages through the
plugin (geo.plugins.Plugin.collections): they read whatever is registered and never name the
address library's tables, columns or filters themselves.
"""

from __future__ import annotations

from geo.sources import LayerSource

_AREA_PROPERTIES = {
    "code": "string",
    "name": "string",
    "level": "string",
    "parent_code": "string",
    "kind": "string",
}


def _areas(id_: str, title: str, level: str) -> LayerSource:
    """One level of the current admin areas (the view current_admin_areas: a retired code keeps
    its row in admin_areas, with valid_to set, for the code history)."""
    return LayerSource(
        id=id_,
        title=title,
        table="public.current_admin_areas",
        geometry_type="MultiPolygon",
        properties=_AREA_PROPERTIES,
        where=f"level = '{level}'",
        version_key="admin_areas",
        description=f"{title} (address library, read-only)",
        keywords=("admin area", level),
    )


def collections() -> list[LayerSource]:
    """Addresses, the three admin levels, grids and named places. Grid staff contacts are
    personal data and are deliberately not among the grid properties (README: never in the
    `grids` collection)."""
    return [
        LayerSource(
            id="addresses",
            title="标准地址 Standard addresses",
            table="public.addresses",
            geometry_type="Point",
            properties={
                "code": "string",
                "full_address": "string",
                "district_code": "string",
                "subdistrict_code": "string",
                "community_code": "string",
                "grid_code": "string",
                "road": "string",
                "house_number": "string",
                "compound": "string",
                "building": "string",
                "unit": "string",
                "room": "string",
            },
            # Retired addresses keep their rows for history and successors; maps show the
            # current library only.
            where="status = 'active'",
            version_key="addresses",
            description="The city's standard address library (read-only)",
            keywords=("address",),
        ),
        _areas("districts", "区 Districts", "district"),
        _areas("subdistricts", "街道/镇 Subdistricts and towns", "subdistrict"),
        _areas("communities", "社区/村 Communities and villages", "community"),
        LayerSource(
            id="grids",
            title="网格 Management grids",
            table="public.grids",
            geometry_type="MultiPolygon",
            properties={"code": "string", "name": "string", "community_code": "string"},
            version_key="grids",
            description="Grid-management cells (read-only)",
            keywords=("grid",),
        ),
        LayerSource(
            id="places",
            title="地名 Named places",
            table="public.places",
            geometry_type="Point",
            properties={
                "name": "string",
                "category": "string",
                "district_code": "string",
                "subdistrict_code": "string",
                "community_code": "string",
                "grid_code": "string",
            },
            version_key="places",
            description="Named places: stations, schools, hospitals, parks, offices (read-only)",
            keywords=("place", "poi"),
        ),
    ]

"""The overlay page (叠加分析): two readable collections, a predicate and an aggregate, run by the
browser through POST /overlay with the person's cookie (console/static/overlay.js), shown as a
table and a choropleth, downloaded as GeoJSON or CSV.

The page lists what the person may read exactly as the API reads it
(layers.catalogue.all_readable_sources: their own layers, those granted or shared to them, the
public ones and the address library's collections), with each one's numeric attributes for the
sum/avg/min/max choices. The run itself is the API's: a scoped grant narrows the overlay there,
and an id the person may not read is its 404, never something this page decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from console import pages
from geo.auth import Principal
from geo.db import session_scope
from geo.plugins import system_collections
from geo.sources import LayerSource
from layers import catalogue, overlay

router = APIRouter(include_in_schema=False)

# Option groups, in the order the lists show them.
OWN, SHARED, LIBRARY = "own", "shared", "library"
AGGREGATES = ("count", "sum", "avg", "min", "max")


@dataclass(frozen=True)
class Choice:
    id: str
    title: str
    group: str
    numeric: tuple[str, ...]


def choices(sources: list[LayerSource], who: Principal) -> dict[str, list[Choice]]:
    """The collections a person may overlay, by group: their department's, the others they may
    read (granted, shared, public), the address library's."""
    library = system_collections()
    grouped: dict[str, list[Choice]] = {OWN: [], SHARED: [], LIBRARY: []}
    for source in sources:
        group = (
            LIBRARY if source.id in library else OWN if source.owner == who.department else SHARED
        )
        numeric = tuple(n for n, kind in source.properties.items() if kind in overlay.NUMERIC)
        grouped[group].append(Choice(source.id, source.title or source.id, group, numeric))
    return grouped


@router.get("/console/overlay")
def overlay_page(request: Request) -> Response:
    who = pages.signed_in(request)
    if isinstance(who, Response):
        return pages.with_lang(request, who)
    with session_scope() as session:
        grouped = choices(catalogue.all_readable_sources(session, who), who)
    readable = {c.id for group in grouped.values() for c in group}
    # A shared link (?layer=&other=) picks the two; one the person may not read is named.
    asked = {k: request.query_params.get(k, "") for k in ("layer", "other")}
    unreadable = [v for v in asked.values() if v and v not in readable]
    return pages.render_for(
        request,
        who,
        "overlay.html",
        groups=grouped,
        asked=asked,
        unreadable=unreadable,
        predicates=overlay.PREDICATES,
        aggregates=AGGREGATES,
        max_distance=int(overlay.MAX_DISTANCE_M),
        crs_choices=pages.CRS_CHOICES,
    )

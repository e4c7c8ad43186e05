"""The console's map (地图): the /map viewer inside the console's frame.

The page is the console's header, nav and language around the viewer's own DOM, loading the
viewer's own script and styles from /map/assets (tiles/static/map.js, map.css): there is one
viewer, not a copy. Signed in, the viewer's API calls, styles, tiles and GET /events carry the
session cookie, so it lists and draws what the person may read and follows their changes live.
/map itself stays as it was: anonymous for public layers, or with ?key= for a key's.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from console import pages
from tiles.routers.viewer import ASSETS_PATH as VIEWER_ASSETS

router = APIRouter(include_in_schema=False)


@router.get("/console/map")
def console_map(
    request: Request,
    layers: str | None = Query(default=None, max_length=4000),
) -> Response:
    # `layers` (a shared link's ?layers=a,b) is read by the viewer's script, as on /map.
    who = pages.signed_in(request)
    if isinstance(who, Response):
        return pages.with_lang(request, who)
    return pages.render_for(request, who, "map.html", viewer=VIEWER_ASSETS)

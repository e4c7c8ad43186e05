"""GeoJSON answers to GeoDataFrames and back, with the CRS the service says it used.

The service names the CRS of a response in ``Content-Crs`` and, for OGC API - Features, writes
coordinates in that CRS's official axis order (EPSG:4490 by URI is lat/lon). GeoDataFrames are
always x/y (lon/lat, easting/northing), so coordinates of a north-first CRS are swapped back here.
GCJ-02 and BD-09 are offsets PROJ does not know: their frames have no ``crs`` and carry the
service's CRS id in ``attrs["crs"]`` instead.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

SERVICE_CRS_PREFIX = "urn:tianjin-geo:crs:"
# Offsets on WGS84 for Chinese web maps, which PROJ does not know.
WEB_CRS = ("GCJ02", "BD09")


def named_crs(name: str) -> tuple[CRS | None, str]:
    """The pyproj CRS (None for GCJ-02/BD-09) and the service's id for a CRS name or URI."""
    bare = name.strip().strip("<>").removeprefix(SERVICE_CRS_PREFIX)
    web = bare.upper().replace("-", "").replace("_", "")
    if web in WEB_CRS:
        return None, web
    try:
        crs = CRS.from_user_input("OGC:CRS84" if web == "CRS84" else bare)
    except CRSError:
        return None, bare
    return crs, crs.to_string()


def crs_of(content_crs: str | None) -> tuple[CRS | None, str]:
    """:func:`named_crs` of a ``Content-Crs`` value (``<uri>``); CRS84 when the header is
    absent, as OGC API - Features defines."""
    return named_crs(content_crs or "CRS84")


def north_first(crs: CRS | None) -> bool:
    return crs is not None and crs.axis_info[0].direction.lower() in ("north", "south")


def to_frame(features: list[dict[str, Any]], content_crs: str | None) -> gpd.GeoDataFrame:
    """Features as a GeoDataFrame indexed by feature id (when every feature has one)."""
    crs, name = crs_of(content_crs)
    geoms = [shapely.geometry.shape(f["geometry"]) if f.get("geometry") else None for f in features]
    if north_first(crs):
        geoms = list(shapely.transform(geoms, lambda xy: xy[:, ::-1]))
    frame = gpd.GeoDataFrame(
        pd.DataFrame.from_records([f.get("properties") or {} for f in features]),
        geometry=gpd.GeoSeries(geoms, dtype="geometry"),
        crs=crs,
    )
    ids = [f.get("id") for f in features]
    if ids and all(i is not None for i in ids):
        frame.index = pd.Index(ids, name="id")
    frame.attrs["crs"] = name
    return frame


def crs_name(frame: gpd.GeoDataFrame, crs: str | None) -> str:
    """The CRS to declare for an upload: the caller's, else the frame's EPSG code, else the
    service name a read put in ``attrs`` (GCJ02, BD09)."""
    if crs:
        return crs
    if frame.crs is not None:
        authority = frame.crs.to_authority()
        if authority is None:
            raise ValueError(f"the frame's CRS has no EPSG/OGC code; pass crs= ({frame.crs.name})")
        return ":".join(authority)
    if frame.attrs.get("crs"):
        return str(frame.attrs["crs"])
    raise ValueError("the frame has no CRS; set one (frame.set_crs) or pass crs=")


def to_geojson(frame: gpd.GeoDataFrame) -> bytes:
    """The frame as a GeoJSON FeatureCollection in its own coordinates (x/y), without the index
    (the service numbers features itself)."""
    name = frame.geometry.name
    plain = gpd.GeoDataFrame(
        pd.DataFrame(frame.drop(columns=name)), geometry=frame.geometry.to_numpy(), crs=None
    )  # no "crs" member: the upload's crs= names it
    text = plain.to_json(na="null", drop_id=True, default=str, ensure_ascii=False)
    return text.encode()

"""`Client`: the service's layers, uploads, batch geocoding and overlays as (Geo)DataFrames.

It speaks the public HTTP API only (OGC API - Features items with their ``next`` links, the
upload route, ``/addresses/geocode/batch``, ``/overlay``), so it works against any deployment and
imports nothing of the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import geopandas as gpd
import httpx
import pandas as pd
from shapely import points

from geo.client.errors import check
from geo.client.frames import crs_name, named_crs, to_frame, to_geojson

# The service's items page limit (GEO_MAX_ITEMS_LIMIT's default).
PAGE_SIZE = 1000
# Addresses per batch request: well under the service's JSON body limit for long addresses.
GEOCODE_CHUNK = 5000
LAYER_COLUMNS = (
    "id",
    "title",
    "geometry_type",
    "owner",
    "access",
    "public",
    "read_only",
    "shared_with",
    "updated_at",
    "description",
)


class Client:
    """A session with the service at ``url``, as the department of ``key`` (anonymous without
    one: public layers only). Use it as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, url: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        return check(self._http.get(url, params=params))

    def layers(self) -> pd.DataFrame:
        """The collections this caller may read, one row each: id, title, geometry_type,
        owner/access/shared_with (department layers; empty for the address library's),
        public, read_only and updated_at."""
        doc = self._get("/collections").json()
        rows = [
            {
                "id": c["id"],
                "title": c.get("title"),
                "geometry_type": c.get("geometryType"),
                "owner": c.get("owner"),
                "access": c.get("access") or ("public" if c.get("public") else None),
                "public": c.get("public"),
                "read_only": c.get("readOnly"),
                "shared_with": c.get("shared_with", []),
                "updated_at": pd.to_datetime(c.get("updated_at"), utc=True),
                "description": c.get("description"),
            }
            for c in doc["collections"]
        ]
        return pd.DataFrame(rows, columns=list(LAYER_COLUMNS))

    def _pages(self, layer: str, params: dict[str, Any]) -> Iterator[httpx.Response]:
        """The items pages, following each answer's ``next`` link (which carries every query
        parameter but never a credential: the header goes along instead)."""
        response = self._get(f"/collections/{layer}/items", params)
        while True:
            yield response
            link = next(
                (x["href"] for x in response.json().get("links", []) if x.get("rel") == "next"),
                None,
            )
            if link is None:
                return
            response = self._get(link)

    def read(
        self,
        layer: str,
        bbox: Sequence[float] | None = None,
        filter: str | Mapping[str, Any] | None = None,
        crs: str | None = None,
        properties: Sequence[str] | None = None,
        limit: int | None = None,
        bbox_crs: str | None = None,
        filter_crs: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> gpd.GeoDataFrame:
        """The layer's features (all of them, or the first ``limit``) as a GeoDataFrame indexed
        by feature id, in ``crs`` (the service's CRS names: EPSG:4490, EPSG:4326, EPSG:3857,
        CGCS2000 Gauss-Krüger zones, GCJ02, BD09; CRS84 by default).

        ``bbox`` is in ``bbox_crs`` (default: ``crs``), ``filter`` is CQL2 text or CQL2 JSON
        (a dict) with coordinates in ``filter_crs`` (default: ``crs``)."""
        params: dict[str, Any] = {"limit": min(page_size, limit or page_size)}
        if crs:
            params["crs"] = crs
        if bbox is not None:
            params["bbox"] = ",".join(str(v) for v in bbox)
            if bbox_crs or crs:
                params["bbox-crs"] = bbox_crs or crs
        if filter is not None:
            text = filter if isinstance(filter, str) else json.dumps(filter)
            params["filter"] = text
            params["filter-lang"] = "cql2-text" if isinstance(filter, str) else "cql2-json"
            if filter_crs or crs:
                params["filter-crs"] = filter_crs or crs
        if properties is not None:
            params["properties"] = ",".join(properties)
        features: list[dict[str, Any]] = []
        content_crs = None
        for page in self._pages(layer, params):
            content_crs = page.headers.get("content-crs")
            features.extend(page.json()["features"])
            if limit is not None and len(features) >= limit:
                del features[limit:]
                break
        return to_frame(features, content_crs)

    def upload(
        self,
        frame: gpd.GeoDataFrame,
        layer: str,
        mode: str = "create",
        access: str | None = None,
        crs: str | None = None,
        key_property: str | None = None,
        title: str | None = None,
        shared_with: Sequence[str] | None = None,
        make_valid: bool = False,
    ) -> dict[str, Any]:
        """Send the frame to the layer (mode ``create``, ``append``, ``replace`` or ``upsert``
        on ``key_property``) as GeoJSON in the frame's own CRS; the service's report back
        (counts, inferred schema, renames). A rejected file raises ApiError whose ``details``
        hold the per-feature report."""
        params: dict[str, Any] = {"mode": mode, "crs": crs_name(frame, crs)}
        if access:
            params["access"] = access
        if key_property:
            params["key_property"] = key_property
        if shared_with:
            params["shared_with"] = ",".join(shared_with)
        if make_valid:
            params["make_valid"] = "true"
        data = {"metadata": json.dumps({"title": title}, ensure_ascii=False)} if title else None
        files = {"file": (f"{layer}.geojson", to_geojson(frame), "application/geo+json")}
        response = self._http.post(
            f"/collections/{layer}/upload", params=params, files=files, data=data
        )
        report: dict[str, Any] = check(response).json()
        return report

    def geocode(
        self,
        frame: pd.DataFrame,
        column: str = "address",
        area: str | None = None,
        crs: str = "CRS84",
    ) -> gpd.GeoDataFrame:
        """The frame (same index, same row order) with the best match of each row's address
        added: address_id, code, standard, level, score, confident, and the location as the
        geometry (empty where nothing matched). A column the frame already has under one of
        these names is kept; the match's goes in as ``match_<name>``."""
        texts = ["" if pd.isna(v) else str(v) for v in frame[column]]
        params: dict[str, Any] = {"f": "json", "crs": crs}
        if area:
            params["area"] = area
        matches: list[dict[str, Any]] = []
        for start in range(0, len(texts), GEOCODE_CHUNK):
            response = self._http.post(
                "/addresses/geocode/batch",
                params=params,
                json=texts[start : start + GEOCODE_CHUNK],
            )
            matches.extend(check(response).json())
        found = pd.DataFrame.from_records(matches, index=frame.index) if matches else None
        out = frame.copy()
        for name in ("address_id", "code", "standard", "level", "score", "confident"):
            values = found[name] if found is not None else pd.Series(dtype=object)
            out[f"match_{name}" if name in frame.columns else name] = values
        lon = found["lon"].astype(float) if found is not None else []
        lat = found["lat"].astype(float) if found is not None else []
        geometry = [None if pd.isna(x) else p for x, p in zip(lon, points(lon, lat), strict=True)]
        crs_obj, name = named_crs(crs)
        result = gpd.GeoDataFrame(out, geometry=geometry, crs=crs_obj)
        result.attrs["crs"] = name
        return result

    def overlay(
        self,
        layer: str,
        other: str,
        predicate: str = "intersects",
        output: str = "features",
        distance: float | None = None,
        property: str | None = None,
        filter: str | Mapping[str, Any] | None = None,
        other_filter: str | Mapping[str, Any] | None = None,
        crs: str | None = None,
        limit: int | None = None,
    ) -> gpd.GeoDataFrame:
        """``POST /overlay``: the features of ``layer`` matched against ``other`` (output
        ``features``), or per feature of ``other`` the count (and sum of ``property``) of the
        matches (output ``aggregate``)."""
        body: dict[str, Any] = {
            "layer": layer,
            "other": other,
            "predicate": predicate,
            "output": output,
        }
        optional = {
            "distance": distance,
            "property": property,
            "filter": filter,
            "other_filter": other_filter,
            "crs": crs,
            "limit": limit,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        response = check(self._http.post("/overlay", json=body))
        doc = response.json()
        frame = to_frame(doc["features"], response.headers.get("content-crs"))
        frame.attrs["truncated"] = doc.get("truncated", False)
        return frame

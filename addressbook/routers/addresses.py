"""The address library's query and edit endpoints; the logic lives in the plain modules.

Literal paths (/addresses/geocode, /addresses/roads/rename...) are declared before
/addresses/{address_id:int}, and the id only matches digits, so neither can capture the other.
Reading the library (parse, geocode, reverse, suggest, an address) is open to anyone, like the
map viewer's search box; the batch needs a viewer or editor key, edits an editor (or admin) key.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import IO, Annotated, Any

from fastapi import Body, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from addressbook import lifecycle
from addressbook.areas import coverage
from addressbook.geocoding import batch, gazetteer, geocoder, scoring, suggest
from addressbook.geocoding.geocoder import Candidate
from addressbook.geocoding.parser import parse
from addressbook.geocoding.reverse import reverse
from addressbook.models import ELEMENTS as STREET_ELEMENTS
from geo import preconditions, spool
from geo.auth import Principal, principal, require
from geo.crs import STORAGE_CRS, resolve, transform_xy
from geo.db import DbSession, session_scope
from geo.errors import ApiError
from geo.openapi import CSV, errors, returns
from geo.routing import api_router
from geo.settings import get_settings

router = api_router(prefix="/addresses", tags=["addresses"])
editor = require("editor")
viewer = require("viewer")

Q = Annotated[str, Query(description="the address text (at most 200 characters)")]
Crs = Annotated[str, Query(description="CRS of coordinates in and out (default CRS84)")]
Area = Annotated[
    str | None, Query(description="only inside this district, subdistrict or community code")
]


def _point(x: float, y: float, crs: str) -> dict[str, Any]:
    xs, ys = transform_xy([x], [y], STORAGE_CRS, crs)
    return {"type": "Point", "coordinates": [round(float(xs[0]), 7), round(float(ys[0]), 7)]}


def candidate_json(
    candidate: Candidate, crs: str, explained: coverage.Explained | None = None
) -> dict[str, Any]:
    """`missing` / `estimated`: the levels an address candidate lacks or only estimates, with
    the reason (None for a place above the addresses: a road or an area has no single
    community or grid)."""
    return {
        "id": candidate.address_id,
        "code": candidate.code,
        "standard": candidate.standard,
        "level": candidate.level,
        "score": candidate.score,
        "confident": candidate.confident,
        "status": candidate.status,
        "replaces": candidate.replaces,
        "elements": candidate.elements,
        "location": _point(candidate.lon, candidate.lat, crs),
        "notes": list(candidate.notes),
        "place": (
            {"id": p.id, "name": p.name, "category": p.category} if (p := candidate.place) else None
        ),
        "missing": explained.missing if explained else None,
        "estimated": explained.estimated if explained else None,
    }


@router.get("/parse", summary="Split an address into the hierarchy")
def parse_address(q: Q, session: DbSession, _: Principal = Depends(principal)) -> dict[str, Any]:
    parsed = parse(geocoder.check_text(q), gazetteer.current(session).gazetteer)
    level = parsed.level
    return {
        "q": q,
        "normalized": parsed.normalized,
        "city": parsed.city,
        "level": level.name.lower() if level else None,
        "elements": {
            key: getattr(parsed, key)
            for key in ("district", "subdistrict", "community", *STREET_ELEMENTS)
        },
        "notes": list(parsed.notes),
        "unparsed": parsed.unparsed,
    }


@router.get("/geocode", summary="Address text to ranked candidates")
def geocode(
    q: Q,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=geocoder.MAX_LIMIT)] = 5,
    area: Area = None,
    crs: Crs = "CRS84",
    _: Principal = Depends(principal),
) -> dict[str, Any]:
    target = resolve(crs).id
    found = geocoder.geocode(session, geocoder.check_text(q), limit=limit, area=area)
    addresses = [c for c in found if c.address_id is not None]
    explained = coverage.explain(session, [coverage.Place.of(c.elements) for c in addresses])
    notes = dict(zip(map(id, addresses), explained, strict=True))
    return {
        "q": q,
        "crs": target,
        "confident_threshold": scoring.CONFIDENT,
        "candidates": [candidate_json(c, target, notes.get(id(c))) for c in found],
    }


@router.get("/reverse", summary="A point to the nearest address, its areas and grid")
def reverse_geocode(
    lon: Annotated[float, Query(allow_inf_nan=False)],
    lat: Annotated[float, Query(allow_inf_nan=False)],
    session: DbSession,
    crs: Crs = "CRS84",
    radius: Annotated[float | None, Query(description="metres", allow_inf_nan=False)] = None,
    who: Principal = Depends(principal),
) -> dict[str, Any]:
    target = resolve(crs).id
    found = reverse(session, lon, lat, target, radius, staff=not who.anonymous)
    address = None
    if found.address is not None:
        address = {
            **{k: v for k, v in found.address.items() if k not in ("lon", "lat")},
            "location": _point(found.address["lon"], found.address["lat"], target),
        }
    areas = [a for a in (found.district, found.subdistrict, found.community) if a]
    label = address["standard"] if address else "".join(a["name"] for a in areas)
    return {
        "label": label,
        "point": _point(found.lon, found.lat, target),
        "crs": target,
        "address": address,
        "district": found.district,
        "subdistrict": found.subdistrict,
        "community": found.community,
        "grid": found.grid,
        **found.explained.fields(),
    }


@router.get("/suggest", summary="Suggestions while typing (Chinese, pinyin, initials)")
def suggest_names(
    q: Q,
    session: DbSession,
    area: Area = None,
    limit: Annotated[int, Query(ge=1, le=suggest.MAX_LIMIT)] = 10,
    _: Principal = Depends(principal),
) -> dict[str, Any]:
    found = suggest.suggest(session, q, area=area, limit=limit)
    return {
        "q": q,
        "suggestions": [
            {
                "kind": s.kind,
                "name": s.name,
                "label": s.label,
                "district_code": s.district_code,
                "area_code": s.area_code,
                "canonical": s.canonical,
                "category": s.category,
                "match": s.match,
                "weight": s.weight,
                "location": (
                    {"type": "Point", "coordinates": [s.lon, s.lat]}
                    if s.lon is not None and s.lat is not None
                    else None
                ),
            }
            for s in found
        ],
    }


def _spooled(upload: UploadFile) -> IO[bytes]:
    """A copy of the upload that outlives the request (the stream reads it afterwards)."""
    copy = spool.temporary_file()  # closed by _closing when streamed
    shutil.copyfileobj(upload.file, copy, 1 << 20)
    copy.seek(0)
    return copy


def _closing(stream: Iterator[bytes], handle: IO[bytes]) -> Iterator[bytes]:
    try:
        yield from stream
    finally:
        handle.close()


def _check_area(area: str | None) -> None:
    with session_scope() as session:
        geocoder.area_filter(gazetteer.current(session), area)


_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {
                "schema": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
}


@router.post(
    "/geocode/batch",
    summary="Geocode a CSV file (multipart `file`, `column=`) or a JSON list, streamed",
    openapi_extra=_BATCH_BODY,
    response_class=Response,
    responses=returns(
        {CSV: None, "application/x-ndjson": None, "application/json": {"type": "array"}},
        "one result per input address: CSV for a file, NDJSON (or JSON with f=json) for a list",
    )
    | errors(415),
)
async def geocode_batch(
    request: Request,
    column: Annotated[str | None, Query(description="the CSV column holding addresses")] = None,
    area: Area = None,
    crs: Crs = "CRS84",
    f: Annotated[str | None, Query(description="for JSON input: ndjson (default) or json")] = None,
    _: Principal = Depends(viewer),
) -> StreamingResponse:
    target = resolve(crs).id
    await run_in_threadpool(_check_area, area)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_part_size=get_settings().max_upload_bytes)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "MissingFile", "send the CSV file as the multipart field 'file'")
        handle = await run_in_threadpool(_spooled, upload)
        try:
            source = await run_in_threadpool(batch.open_csv, handle, column)
        except ApiError:
            handle.close()
            raise
        return StreamingResponse(
            _closing(batch.stream_csv(source, area, target), handle),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="geocoded.csv"'},
        )
    if kind == "application/json":
        # Bounded by geo.http's body limit; parsed in the pool, off the event loop.
        items = await run_in_threadpool(batch.parse_json, await request.body())
        if f not in (None, "json", "ndjson"):
            raise ApiError(400, "InvalidParameterValue", f"f must be json or ndjson, not {f!r}")
        ndjson = f != "json"
        return StreamingResponse(
            batch.stream_json(items, area, target, ndjson),
            media_type="application/x-ndjson" if ndjson else "application/json",
        )
    raise ApiError(
        415,
        "UnsupportedMediaType",
        "send a CSV file as multipart/form-data (field 'file') or a JSON list as "
        f"application/json, not {kind or 'no content type'}",
    )


# --- the lifecycle ------------------------------------------------------------------------------

Name = Annotated[str | None, Field(default=None, min_length=1, max_length=100)]
Number = Annotated[str | None, Field(default=None, min_length=1, max_length=20)]


class AddressIn(BaseModel):
    """A whole address: admin areas by name or code, elements as written (32, 32号; 3栋...),
    the location in the `crs` query parameter's CRS."""

    model_config = ConfigDict(extra="forbid")
    district: str = Field(min_length=1, max_length=100)
    subdistrict: Name = None
    community: Name = None
    road: Name = None
    house_number: Number = None
    compound: Name = None
    building: Number = None
    unit: Number = None
    room: Number = None
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)


class AddressPatch(BaseModel):
    """Some fields of an address; null clears an element."""

    model_config = ConfigDict(extra="forbid")
    district: str | None = Field(default=None, min_length=1, max_length=100)
    subdistrict: Name = None
    community: Name = None
    road: Name = None
    house_number: Number = None
    compound: Name = None
    building: Number = None
    unit: Number = None
    room: Number = None
    lon: float | None = Field(default=None, allow_inf_nan=False)
    lat: float | None = Field(default=None, allow_inf_nan=False)


def changes_of(body: AddressPatch) -> dict[str, Any]:
    """The fields a patch sets (null clears an element; the district and location stay)."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("district", "") is None:
        raise ApiError(400, "InvalidAddress", "district: an address cannot lose its district")
    for axis in ("lon", "lat"):
        if axis in changes and changes[axis] is None:
            raise ApiError(400, "InvalidAddress", f"{axis}: an address cannot lose its location")
    return changes


class RetireIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    successor_id: int | None = None


class RenameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    district: str = Field(min_length=1, max_length=100)
    old: str = Field(min_length=1, max_length=100)
    new: str = Field(min_length=1, max_length=100)


IfMatch = Annotated[str | None, Header(alias="If-Match")]


def _answer(session: Session, response: Response, address_id: int, crs: str) -> dict[str, Any]:
    out = lifecycle.record(session, address_id, resolve(crs).id)
    response.headers["ETag"] = preconditions.etag(out["version"])
    return out


@router.post("", status_code=201, summary="Create an address", responses=errors(403, 409))
def create_address(
    body: AddressIn,
    response: Response,
    session: DbSession,
    crs: Crs = "CRS84",
    who: Principal = Depends(editor),
) -> dict[str, Any]:
    address_id = lifecycle.create(session, who, body.model_dump(), resolve(crs).id)
    response.headers["Location"] = f"/addresses/{address_id}"
    return _answer(session, response, address_id, crs)


@router.post(
    "/roads/rename",
    summary="Rename a road in a district, keeping the old name",
    responses=errors(403, 404, 409),
)
def rename_road(
    body: RenameIn, session: DbSession, who: Principal = Depends(editor)
) -> dict[str, Any]:
    return lifecycle.rename_road(session, who, body.district, body.old, body.new)


@router.get(
    "/{address_id:int}", summary="One address, with its version as ETag", responses=errors(404)
)
def get_address(
    address_id: int,
    response: Response,
    session: DbSession,
    crs: Crs = "CRS84",
    _: Principal = Depends(principal),
) -> dict[str, Any]:
    return _answer(session, response, address_id, crs)


@router.patch(
    "/{address_id:int}",
    summary="Change some fields (If-Match required)",
    responses=errors(403, 404, 409, 412, 428),
)
def patch_address(
    address_id: int,
    body: AddressPatch,
    response: Response,
    session: DbSession,
    if_match: IfMatch = None,
    crs: Crs = "CRS84",
    who: Principal = Depends(editor),
) -> dict[str, Any]:
    target = resolve(crs).id
    lifecycle.update(session, who, address_id, changes_of(body), if_match, target)
    return _answer(session, response, address_id, crs)


@router.put(
    "/{address_id:int}",
    summary="Replace an address (If-Match required)",
    responses=errors(403, 404, 409, 412, 428),
)
def put_address(
    address_id: int,
    body: AddressIn,
    response: Response,
    session: DbSession,
    if_match: IfMatch = None,
    crs: Crs = "CRS84",
    who: Principal = Depends(editor),
) -> dict[str, Any]:
    target = resolve(crs).id
    lifecycle.update(session, who, address_id, body.model_dump(), if_match, target, replace=True)
    return _answer(session, response, address_id, crs)


@router.post(
    "/{address_id:int}/retire",
    summary="Retire an address, naming its successor",
    responses=errors(403, 404, 409, 412, 428),
)
def retire_address(
    address_id: int,
    response: Response,
    body: Annotated[RetireIn, Body()],
    session: DbSession,
    if_match: IfMatch = None,
    who: Principal = Depends(editor),
) -> dict[str, Any]:
    lifecycle.retire(session, who, address_id, body.successor_id, if_match)
    return _answer(session, response, address_id, "CRS84")


@router.get(
    "/{address_id:int}/history", summary="Every version of an address", responses=errors(404)
)
def address_history(
    address_id: int, session: DbSession, _: Principal = Depends(viewer)
) -> dict[str, Any]:
    return {"id": address_id, "versions": lifecycle.history(session, address_id)}

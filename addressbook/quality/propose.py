"""A report's not-found rows proposed for review in one step, through the review package's own
submit (its checks and refusals, unchanged).

What a not-found row needs to become a proposal of a new address:

- a location: the point the department gives for the row in the request, else the row's
  lon/lat columns in the uploaded file; a row with neither is skipped ("no location");
- a text the address parser reads to a district (else the district of the library's nearest
  candidate for the text) and a road or compound; the rest (subdistrict, community, number,
  building, unit, room) comes from the text as the parser reads it.

Whatever submit refuses (a point outside the city, an unknown area...) skips the row with its
message; each row is its own savepoint, so one refusal keeps none of that row and all of the
others. At most MAX_PROPOSE rows are handled a call (the rest are `remaining`, for the next
call); rows proposed before are remembered in the report's folder and not proposed twice.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import orjson
from sqlalchemy.orm import Session

from addressbook.geocoding import gazetteer
from addressbook.geocoding.parser import parse
from addressbook.models import ELEMENTS
from addressbook.quality.report import NOT_FOUND
from addressbook.review import proposals
from geo.auth import Principal
from geo.errors import ApiError

MAX_PROPOSE: Final = 1000
MAX_SKIPPED_SHOWN: Final = 100
PROPOSED: Final = "proposed.json"
_GUARD: Final = "proposing.lock"

Point = tuple[float, float, str]  # lon, lat and their CRS


def _records(folder: Path) -> Iterator[dict[str, Any]]:
    with (folder / NOT_FOUND).open("rb") as f:
        for line in f:
            yield orjson.loads(line)


def _fields(session: Session, record: Mapping[str, Any]) -> dict[str, Any] | str:
    """The proposal's address fields read from the row's text, or why they cannot be."""
    parsed = parse(record["address"], gazetteer.current(session).gazetteer)
    district = parsed.district or record["district"]
    if not district:
        return "the text names no district and nothing in the library suggests one"
    if not (parsed.road or parsed.compound):
        return "the text names no road or compound the parser can read"
    fields = {
        "district": district,
        "subdistrict": parsed.subdistrict,
        "community": parsed.community,
    }
    fields.update({name: getattr(parsed, name) for name in ELEMENTS})
    return fields


def propose(
    session: Session,
    who: Principal,
    folder: Path,
    points: Mapping[int, Point] | None,
    note: str | None,
) -> dict[str, Any]:
    """Propose the report's not-found rows (only those in `points`, at those points, when
    given; a file's lon/lat are in the CRS the report was made with); committed before the
    answer and before the rows are remembered as proposed."""
    guard = os.open(folder / _GUARD, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one call at a time a report: never proposed twice
        return _propose(session, who, folder, points, note)
    finally:
        os.close(guard)


def _propose(
    session: Session,
    who: Principal,
    folder: Path,
    points: Mapping[int, Point] | None,
    note: str | None,
) -> dict[str, Any]:
    done: dict[str, int] = {}
    if (folder / PROPOSED).exists():
        done = orjson.loads((folder / PROPOSED).read_bytes())
    proposed: list[dict[str, int]] = []
    skipped: list[dict[str, Any]] = []
    counts = {"skipped": 0, "handled": 0, "remaining": 0}
    seen: set[int] = set()

    def skip(row: int, reason: str) -> None:
        counts["skipped"] += 1
        if len(skipped) < MAX_SKIPPED_SHOWN:
            skipped.append({"row": row, "reason": reason})

    for record in _records(folder):
        row = record["row"]
        if points is not None and row not in points:
            continue
        seen.add(row)
        if str(row) in done:
            skip(row, f"proposed already (proposal {done[str(row)]})")
            continue
        if counts["handled"] >= MAX_PROPOSE:
            counts["remaining"] += 1
            continue
        counts["handled"] += 1
        location = points[row] if points is not None else record["location"]
        if location is None:
            skip(row, "no location: give the row's point, or lon/lat columns in the file")
            continue
        fields = _fields(session, record)
        if isinstance(fields, str):
            skip(row, fields)
            continue
        lon, lat, crs = location
        fields.update(lon=lon, lat=lat)
        proposal = proposals.Proposal("create", fields, None, None, note)
        try:
            with session.begin_nested():
                made = proposals.submit(session, who, proposal, crs)
        except ApiError as exc:
            skip(row, exc.message)
            continue
        proposed.append({"row": row, "proposal": made})
    for row in sorted(set(points or ()) - seen):
        skip(row, "not a not-found row of this report")
    session.commit()
    done.update({str(p["row"]): p["proposal"] for p in proposed})
    temporary = folder / f".{PROPOSED}.tmp"
    temporary.write_bytes(orjson.dumps(done))
    os.replace(temporary, folder / PROPOSED)
    return {
        "proposed": len(proposed),
        "skipped": counts["skipped"],
        "remaining": counts["remaining"],
        "proposals": proposed,
        "skipped_rows": skipped,
    }

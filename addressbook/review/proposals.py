"""Submitting proposals and reading them back: one proposal, a filtered page, queue counts.

Who may propose: any department's editor (or admin), a key or a signed-in person; read-only
keys and viewers may not (the route's role check). What is refused at once, with nothing
written, is what could never be published: a point outside the city, an unknown area or grid,
an unknown or retired address, an invalid successor (the lifecycle's own checks). Everything
else the checks find is stored as findings for the reviewer (review.checks).

Who reads what: the address authority's callers (the reviewers' departments, and the platform)
read every proposal; any other department reads its own department's only, and another
department's proposal is a 404 to it, as if there were none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import RowMapping, text
from sqlalchemy.orm import Session

from addressbook import lifecycle
from addressbook.prepared import area, invalid, prepare
from addressbook.review import checks
from addressbook.review.models import AddressProposal
from geo import audit, departments
from geo.auth import Principal
from geo.crs import STORAGE_CRS
from geo.errors import ApiError, not_found
from geo.extent import city_point

MAX_LIMIT: Final = 100
# What the proposal looks like in answers: its row, and the district's name for queues.
_COLUMNS: Final = """
p.id, p.kind, p.status, p.address_id, p.base_version, p.district_code, d.name AS district,
p.fields, p.standard, p.code, p.note, p.findings, p.department_code, p.proposed_by,
p.created_at, p.decided_by, p.decided_at, p.reason
"""
_FROM: Final = (
    "FROM address_proposals p LEFT JOIN current_admin_areas d ON d.code = p.district_code"
)


@dataclass(frozen=True)
class Proposal:
    """What an editor proposes. `fields`: for `create` the whole address (areas, elements,
    lon/lat in `crs`), for `change` the fields that change (null clears an element), for
    `retire` {"successor_id": id or null}. `grid`: a grid code the point should lie in."""

    kind: str
    fields: Mapping[str, Any]
    address_id: int | None = None
    grid: str | None = None
    note: str | None = None


def _located(fields: Mapping[str, Any], crs: str) -> dict[str, Any]:
    """The fields with lon/lat in EPSG:4490 (400 outside the city), as stored and published."""
    out = dict(fields)
    if out.get("lon") is not None and out.get("lat") is not None:
        out["lon"], out["lat"] = city_point(float(out["lon"]), float(out["lat"]), crs)
    return out


def submit(session: Session, who: Principal, proposal: Proposal, crs: str) -> int:
    """Check and store a proposal; its id. Refuses (4xx) what could never be published."""
    if who.department is None:  # every key and account has one; the check names the rule
        raise ApiError(403, "Forbidden", "a proposal is made by a department's editor")
    checks.check_grid(session, proposal.grid)
    fields = _located(proposal.fields, crs)
    address_id, base_version = proposal.address_id, None
    if proposal.kind == "create":
        prepared = prepare(session, fields, fields["lon"], fields["lat"])
        found = checks.findings(session, prepared, fields, proposal.grid, None)
        district, standard, code = prepared.district_code, prepared.full_address, prepared.code
    else:
        if address_id is None:
            raise invalid("address_id", f"a {proposal.kind} proposal names its address")
        current = lifecycle.editable(session, address_id, None, required=False)
        base_version = current["version"]
        shown = lifecycle.record(session, address_id)
        code = shown["code"]
        if proposal.kind == "change":
            if not fields:
                raise invalid("changes", "the proposal changes nothing")
            prepared = lifecycle.planned(session, current, fields, STORAGE_CRS)
            found = checks.findings(session, prepared, fields, proposal.grid, address_id)
            district, standard = prepared.district_code, prepared.full_address
        else:
            lifecycle.check_successor(session, address_id, fields.get("successor_id"))
            found, district, standard = [], current["district_code"], shown["standard"]
    row = AddressProposal(
        kind=proposal.kind,
        address_id=address_id,
        base_version=base_version,
        district_code=district,
        fields=fields,
        standard=standard,
        code=code,
        note=proposal.note,
        findings=found,
        department_code=who.department,
        proposed_by=lifecycle.actor(who),
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        who,
        "address.proposal.create",
        f"address-proposal/{row.id}",
        {
            "kind": proposal.kind,
            "address_id": address_id,
            "district_code": district,
            "findings": [f["kind"] for f in found],
        },
    )
    return int(row.id)


# --- reading ------------------------------------------------------------------------------------


def _reads_all(session: Session, who: Principal) -> bool:
    return departments.is_address_authority(session, who.department)


def as_dict(row: RowMapping) -> dict[str, Any]:
    out = dict(row)
    for key in ("created_at", "decided_at"):
        out[key] = row[key].isoformat() if row[key] else None
    return out


def get(session: Session, who: Principal, proposal_id: int) -> dict[str, Any]:
    """One proposal with its findings (and, for a change or retirement, the address as it is
    now); a 404 when there is none the caller may read."""
    row = (
        session.execute(text(f"SELECT {_COLUMNS} {_FROM} WHERE p.id = :id"), {"id": proposal_id})
        .mappings()
        .first()
    )
    if row is None or not (_reads_all(session, who) or row["department_code"] == who.department):
        raise not_found(f"there is no address proposal {proposal_id}", {"id": proposal_id})
    out = as_dict(row)
    if row["kind"] != "create" or row["status"] == "approved":
        out["address"] = lifecycle.record(session, row["address_id"])
    return out


def district_code(session: Session, district: str | None) -> str | None:
    """A district filter given by name, 12-digit code or adcode (400 when unknown)."""
    return area(session, "district", district, None).code if district else None


def listing(
    session: Session,
    who: Principal,
    status: str | None,
    district: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """A page of proposals, oldest first (a queue is worked in order; ix_address_proposals_queue
    for a status and district, ix_address_proposals_department for a department's own)."""
    where = ["true"]
    params: dict[str, Any] = {"limit": limit + 1, "offset": offset}
    if status:
        where.append("p.status = :status")
        params["status"] = status
    if district:
        where.append("p.district_code = :district")
        params["district"] = district_code(session, district)
    if not _reads_all(session, who):
        where.append("p.department_code = :department")
        params["department"] = who.department
    rows = (
        session.execute(
            text(
                f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(where)} "
                "ORDER BY p.id LIMIT :limit OFFSET :offset"
            ),
            params,
        )
        .mappings()
        .all()
    )
    return {
        "proposals": [as_dict(r) for r in rows[:limit]],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(rows) > limit else None,
    }


def queues(session: Session, who: Principal) -> dict[str, Any]:
    """Proposals by district and status, with the oldest pending one's time: the reviewers'
    work list (counts over ix_address_proposals_queue)."""
    where, params = "true", {}
    if not _reads_all(session, who):
        where, params = "p.department_code = :department", {"department": who.department}
    rows = session.execute(
        text(
            f"""
            SELECT p.district_code, d.name AS district,
                   count(*) FILTER (WHERE p.status = 'pending') AS pending,
                   count(*) FILTER (WHERE p.status = 'approved') AS approved,
                   count(*) FILTER (WHERE p.status = 'rejected') AS rejected,
                   min(p.created_at) FILTER (WHERE p.status = 'pending') AS oldest_pending
            {_FROM} WHERE {where}
            GROUP BY p.district_code, d.name
            ORDER BY pending DESC, p.district_code
            """
        ),
        params,
    ).mappings()
    found = [
        {
            **row,
            "oldest_pending": row["oldest_pending"].isoformat() if row["oldest_pending"] else None,
        }
        for row in rows
    ]
    return {"queues": found, "pending": sum(q["pending"] for q in found)}

"""Deciding a proposal: approve (publish) or reject with a reason, once, by someone else.

Approving publishes through the lifecycle functions a direct edit uses (lifecycle.create,
update, retire: the code, the history row, the new version, the data-version bump and the
edit's own audit entry), in the same transaction as the decision and its audit entry, as the
reviewer; nothing here writes an address.

Rules, each refused with nothing written:

- only the address authority decides (403 ``NotAddressAuthority``, lifecycle.require_authority);
- nobody decides their own proposal (403 ``OwnProposal``): the same department and the same
  account or key (lifecycle.actor), so a colleague of the proposer may review it;
- a proposal is decided once (409 ``AlreadyDecided``). The row is locked (``FOR UPDATE``) before
  its status is read, so of two reviewers deciding at once the second waits, then reads the
  first one's decision and gets the 409;
- a change or retirement of an address changed since the proposal was made is not approved
  over the newer version (409 ``ProposalOutdated``; the lifecycle's If-Match rule with the
  version the proposal saw);
- a rejection needs a reason (400 ``ReasonRequired``).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook import lifecycle
from addressbook.review import proposals
from geo import audit
from geo.auth import Principal
from geo.crs import STORAGE_CRS
from geo.errors import ApiError, not_found
from geo.preconditions import etag

MAX_REASON: Final = 500


def _locked(session: Session, who: Principal, proposal_id: int) -> dict[str, Any]:
    """The proposal, locked for this transaction, once every rule allows `who` to decide it."""
    lifecycle.require_authority(session, who)
    row = (
        session.execute(
            text(
                "SELECT id, kind, status, address_id, base_version, fields, proposed_by, "
                "decided_by, decided_at FROM address_proposals WHERE id = :id FOR UPDATE"
            ),
            {"id": proposal_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found(f"there is no address proposal {proposal_id}", {"id": proposal_id})
    if row["status"] != "pending":
        raise ApiError(
            409,
            "AlreadyDecided",
            f"address proposal {proposal_id} was {row['status']} by {row['decided_by']} already",
            {
                "status": row["status"],
                "decided_by": row["decided_by"],
                "decided_at": row["decided_at"].isoformat(),
            },
        )
    if row["proposed_by"] == lifecycle.actor(who):
        raise ApiError(
            403,
            "OwnProposal",
            f"address proposal {proposal_id} is the caller's own; another reviewer decides it",
            {"rule": "four-eyes", "proposed_by": row["proposed_by"]},
        )
    return dict(row)


def _publish(session: Session, who: Principal, row: dict[str, Any]) -> int:
    """The proposal written into the library by the lifecycle; the address's id."""
    fields, address_id = row["fields"], row["address_id"]
    if row["kind"] == "create":
        return lifecycle.create(session, who, fields, STORAGE_CRS)
    seen = etag(row["base_version"])
    try:
        if row["kind"] == "change":
            lifecycle.update(session, who, address_id, fields, seen, STORAGE_CRS)
        else:
            lifecycle.retire(session, who, address_id, fields.get("successor_id"), seen)
    except ApiError as error:
        if error.status != 412:
            raise
        raise ApiError(
            409,
            "ProposalOutdated",
            f"address {address_id} changed since the proposal was made (version "
            f"{row['base_version']}, now {error.details['version']}); reject it and propose "
            "again from the current version",
            {"base_version": row["base_version"], "version": error.details["version"]},
        ) from None
    return int(address_id)


def _decide(
    session: Session, who: Principal, row: dict[str, Any], status: str, **columns: Any
) -> None:
    session.execute(
        text(
            "UPDATE address_proposals SET status = :status, decided_by = :who, "
            "decided_at = now(), address_id = coalesce(:address_id, address_id), "
            "reason = :reason WHERE id = :id"
        ),
        {
            "id": row["id"],
            "status": status,
            "who": lifecycle.actor(who),
            "address_id": columns.get("address_id"),
            "reason": columns.get("reason"),
        },
    )
    action = "approve" if status == "approved" else "reject"
    audit.record(
        session,
        who,
        f"address.proposal.{action}",
        f"address-proposal/{row['id']}",
        {"kind": row["kind"], "proposed_by": row["proposed_by"], **columns},
    )


def approve(session: Session, who: Principal, proposal_id: int) -> dict[str, Any]:
    row = _locked(session, who, proposal_id)
    address_id = _publish(session, who, row)
    _decide(session, who, row, "approved", address_id=address_id)
    return proposals.get(session, who, proposal_id)


def reject(
    session: Session, who: Principal, proposal_id: int, reason: str | None
) -> dict[str, Any]:
    reason = (reason or "").strip()
    if not reason:
        raise ApiError(
            400,
            "ReasonRequired",
            "a rejection says why: send a non-empty reason",
            {"field": "reason"},
        )
    if len(reason) > MAX_REASON:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"reason: at most {MAX_REASON} characters",
            {"field": "reason"},
        )
    row = _locked(session, who, proposal_id)
    _decide(session, who, row, "rejected", reason=reason)
    return proposals.get(session, who, proposal_id)

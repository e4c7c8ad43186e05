"""A layer's changes (编辑历史): who created, replaced, edited or deleted which features, which
uploads ran with which mode and counts, and catalogue edits, newest first, a page at a time.

Read from the audit trail (geo.audit), which every write already feeds in its own transaction;
a feature's versions themselves are in its history (GET .../items/{fid}/history). The layer's
department and the platform administrator see every change; a department reading the layer
through a grant sees its own department's changes only (the others' are the owner's business,
and may touch features outside the grant's area).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from geo import audit
from geo.auth import Principal
from layers import catalogue

# What counts as a change to a layer (reads, grants and access requests are not).
ACTIONS = (
    "layer.create",
    "layer.upload",
    "layer.update",
    "layer.catalogue",
    "feature.create",
    "feature.update",
    "feature.delete",
)
MAX_LIMIT = 200


def changes(
    session: Session, who: Principal, layer_id: str, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """A page of the layer's changes as the caller may see them (404 for a layer it cannot
    read, as for its items)."""
    layer = catalogue.readable_layer(session, who, layer_id)
    everything = who.is_admin or who.department == layer.owner
    department = None if everything else who.department
    events = audit.layer_events(session, layer.id, ACTIONS, department, limit + 1, offset)
    return {
        "collection": layer.id,
        "scope": "all" if everything else "own-department",
        "changes": [_change(e) for e in events[:limit]],
        "limit": limit,
        "offset": offset,
        "more": len(events) > limit,
    }


def _change(event: dict[str, Any]) -> dict[str, Any]:
    _, _, fid = (event["target"] or "").partition("/")
    return {
        "id": event["id"],
        "at": event["at"],
        "action": event["action"],
        "department": event["department"],
        "account": event["account"],
        "feature": int(fid) if fid.isdigit() else None,
        "details": event["details"],
    }

"""Writing entries: :func:`record` for every action, :func:`record_read` for reads counted per
minute.

Entries are added to the caller's own transaction, so an action and its record commit or roll
back together: there is never a write without its entry, nor an entry for a write that failed.
They are written unchained, which costs the writer one INSERT and no lock: the sealer
(geo.audit.chain) chains them after they commit.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.audit.models import AuditEvent
from geo.auth import Principal

LAYER_READ = "layer.read"
TILE = "tile"

# One entry per minute, layer, caller, way and grant: the first read of the minute inserts it,
# the others add one to its count. `WHERE seq IS NULL`: a sealed entry never changes (a read
# arriving after its minute was sealed, which the sealer's margin makes all but impossible,
# is not counted rather than breaking the chain). clock_timestamp(), not now(): the minute is
# the one the read happened in, whenever its transaction began.
_UPSERT_READ = text(
    """
    WITH m AS (SELECT date_trunc('minute', clock_timestamp()) AS minute)
    INSERT INTO audit_log
        (at, department_code, key_prefix, account, role, action, target, client, details,
         read_slot)
    SELECT m.minute, :department, :key, :account, :role, :action, :layer, CAST(:client AS inet),
           CAST(:details AS jsonb),
           to_char(m.minute AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') || ' ' || :slot
    FROM m
    ON CONFLICT (read_slot) DO UPDATE
    SET details = jsonb_set(
        audit_log.details, '{count}', to_jsonb((audit_log.details ->> 'count')::bigint + 1)
    )
    WHERE audit_log.seq IS NULL
    """
)


def client_address(client: str | None) -> str | None:
    """Only real addresses go into the INET column (test clients call themselves 'testclient')."""
    try:
        return str(ipaddress.ip_address(client)) if client else None
    except ValueError:
        return None


def record(
    session: Session,
    who: Principal,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add the entry for `action` to the caller's transaction.

    A tile read (``layer.read`` with ``via`` "tile ...", as tiles.access records each tile) is
    counted in its minute's entry (:func:`record_read`) rather than written once per tile."""
    if action == LAYER_READ and details and str(details.get("via", "")).startswith(TILE):
        record_read(session, who, target or "", str(details["via"]), details.get("grant"))
        return
    session.add(
        AuditEvent(
            department_code=who.department,
            key_prefix=who.key_prefix,
            account=who.account,
            role=who.role,
            action=action,
            target=target,
            client=client_address(who.client),
            details=details,
        )
    )


def record_read(
    session: Session, who: Principal, layer: str, via: str, grant: int | str | None = None
) -> None:
    """A read of non-public `layer` by `who`, counted in one entry per minute, layer, caller,
    way and grant: details ``{"via", "count", "grant"}``. The way is the first word of `via`
    ("tile" of "tile 14/13492/6210"); `via` as the minute's first read gave it is kept (for
    tiles: the first tile read), `count` counts them all. Exact across workers and processes
    (the database's unique key on the slot, not a process's memory)."""
    details: dict[str, Any] = {"via": via, "count": 1}
    if grant is not None:
        details["grant"] = grant
    way = via.split(" ", 1)[0]
    slot = orjson.dumps([layer, who.department, who.key_prefix, who.account, way, grant]).decode()
    session.execute(
        _UPSERT_READ,
        {
            "department": who.department,
            "key": who.key_prefix,
            "account": who.account,
            "role": who.role,
            "action": LAYER_READ,
            "layer": layer,
            "client": client_address(who.client),
            "details": orjson.dumps(details).decode(),
            "slot": slot,
        },
    )

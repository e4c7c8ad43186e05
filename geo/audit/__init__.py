"""The audit trail: every write, and every read of non-public data, with who, when, what, where;
chained by hash so that a changed or deleted entry is found (`geo audit verify`).

Other packages call :func:`record` in the transaction of the action it records, and
:func:`record_read` for reads counted once per minute, layer and caller (tiles).
"""

from geo.audit.entries import record, record_read
from geo.audit.listing import department_scope, layer_events, query

__all__ = ["department_scope", "layer_events", "query", "record", "record_read"]

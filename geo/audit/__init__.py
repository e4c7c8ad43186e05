"""The audit trail: every write, and every read of non-public data, with who, when, what, where.

Other packages call :func:`record` in the transaction of the action it records.
"""

from geo.audit.entries import department_scope, query, record

__all__ = ["department_scope", "query", "record"]

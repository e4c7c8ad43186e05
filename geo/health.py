"""Liveness and readiness: is this process up, and should a load balancer send it traffic?

Liveness asks nothing of the database (a process waiting for a failover is alive: restarting it
would not help). Readiness asks what a request needs: a primary that takes writes, a schema at
every head the code's migrations have (geo.migrations upgrades to all heads, branches included),
and read replicas no further behind than GEO_READY_MAX_REPLICA_LAG_S.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import text

from geo.db import get_engine, replica_engines
from geo.metrics import engine_label, replica_lag
from geo.settings import get_settings


@dataclass
class Readiness:
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(c["ok"] for c in self.checks.values())

    def add(self, name: str, ok: bool, **details: Any) -> None:
        self.checks[name] = {"ok": ok, **details}


@lru_cache
def code_heads() -> frozenset[str]:
    """The heads of the migrations shipped with this code (read once per process)."""
    from geo.migrations import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config("postgresql://")).get_heads())


def _failure(exc: Exception) -> str:
    """The kind of failure, not its text (which may name hosts and users)."""
    return type(exc).__name__


def check_primary(result: Readiness) -> frozenset[str] | None:
    """Writable primary, and the revisions it is at (None when unreachable)."""
    try:
        with get_engine().connect() as conn:
            writable = conn.execute(
                text(
                    "SELECT NOT pg_is_in_recovery()"
                    " AND current_setting('transaction_read_only') = 'off'"
                )
            ).scalar_one()
            revisions = frozenset(
                conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
    except Exception as exc:  # readiness reports what is wrong, it does not raise
        result.add("database", False, error=_failure(exc))
        return None
    result.add("database", bool(writable), writable=bool(writable))
    return revisions


def readiness() -> Readiness:
    result = Readiness()
    revisions = check_primary(result)
    if revisions is not None:
        heads = code_heads()
        result.add(
            "migrations",
            revisions == heads,
            missing=sorted(heads - revisions),
            unknown=sorted(revisions - heads),
        )
    limit = get_settings().ready_max_replica_lag_s
    for engine in replica_engines():
        name = f"replica {engine_label(engine)}"
        try:
            lag = replica_lag(engine)
        except Exception as exc:
            result.add(name, False, error=_failure(exc))
            continue
        result.add(name, lag <= limit, lag_seconds=round(lag, 3), limit_seconds=limit)
    return result

"""The sealer every server worker runs: seals committed audit entries every few seconds.

Each worker runs one; they take turns through the chain head's row lock (a worker finding it
held skips its turn), so any number of workers and machines share the work without two ever
extending the chain at once. Between a commit and its sealing (GEO_AUDIT_SEAL_SECONDS, a few
seconds; a minute more for per-minute read counts) an entry is in the trail but not yet under
the chain: that window is what a writer saves by not waiting for the chain in its transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from geo.audit.chain import seal

log = logging.getLogger("geo.audit")


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    seal_seconds: float = Field(
        default=5.0,
        ge=0,
        validation_alias="GEO_AUDIT_SEAL_SECONDS",
        description="how often each worker seals committed audit entries; 0: never (then "
        "`geo audit seal` must run, from cron for instance)",
    )


def _run(every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        try:
            seal(wait=False)
        except Exception:  # the database away for a moment: the next turn seals what is left
            log.exception("sealing the audit trail failed; retrying in %.0f s", every_s)


@asynccontextmanager
async def sealing(_: Any) -> AsyncIterator[None]:
    """Lifespan of the audit router (geo.routers.audit): the sealer thread runs while the app
    does."""
    every_s = AuditSettings().seal_seconds
    if not every_s:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_run, args=(every_s, stop), name="audit-sealer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)

"""`geo` with one fault injected, for crash tests: every commit first waits
``GEO_TEST_COMMIT_DELAY_S`` seconds.

That widens the window in which a server could acknowledge a write it has not committed yet (the
bug the crash tests guard against: FastAPI ending a yield dependency, and so committing, only
after the response had gone out). A test kills the process with SIGKILL while commits wait here,
then checks that every write the clients saw acknowledged is in the database. Test-only: the
service's own code has no such hook.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import event
from sqlalchemy.orm import Session

from geo.cli import main

DELAY = float(os.environ.get("GEO_TEST_COMMIT_DELAY_S", "0"))


@event.listens_for(Session, "before_commit")
def _slow_commit(session: Session) -> None:
    time.sleep(DELAY)


if __name__ == "__main__":
    main()

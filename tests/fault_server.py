"""`geo` with faults injected, for tests of a real server process.

- Every commit first waits ``GEO_TEST_COMMIT_DELAY_S`` seconds (crash tests). That widens the
  window in which a server could acknowledge a write it has not committed yet (the bug the crash
  tests guard against: FastAPI ending a yield dependency, and so committing, only after the
  response had gone out). A test kills the process with SIGKILL while commits wait here, then
  checks that every write the clients saw acknowledged is in the database.
- The app has one more route, ``GET /test/unexpected-error``, whose handler raises as a bug
  would (log tests: a JSON 500 naming the request id, the traceback in the log).

Test-only: the service's own code has no such hooks. The faults are installed only when this file
runs as a program, so a test module importing its constants leaves the in-process app untouched.
"""

from __future__ import annotations

import os
import time

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session

import geo.app
from geo.cli import main

DELAY = float(os.environ.get("GEO_TEST_COMMIT_DELAY_S", "0"))


def _slow_commit(session: Session) -> None:
    time.sleep(DELAY)


UNEXPECTED_ERROR_ROUTE = "/test/unexpected-error"
_create_app = geo.app.create_app


def create_app() -> FastAPI:
    """The product's app plus the failing route; `geo serve` finds it as geo.app:create_app."""
    app = _create_app()

    @app.get(UNEXPECTED_ERROR_ROUTE)
    def unexpected_error() -> None:
        raise RuntimeError("a bug the log test planted")

    return app


if __name__ == "__main__":
    event.listen(Session, "before_commit", _slow_commit)
    geo.app.create_app = create_app
    main()

"""Data versions: bumped in the writer's transaction, so a rolled-back write leaves no trace."""

from __future__ import annotations

import pytest

from geo.db import session_scope
from geo.versions import bump, versions


def test_bump_counts_and_unknown_is_zero(database_url: str) -> None:
    with session_scope() as session:
        assert versions(session, ["probe-a", "never-written"]) == {"probe-a": 0, "never-written": 0}
        assert bump(session, "probe-a") == 1
        assert bump(session, "probe-a") == 2
    with session_scope() as session:
        assert versions(session, ["probe-a"]) == {"probe-a": 2}


def test_rolled_back_bump_is_invisible(database_url: str) -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        bump(session, "probe-b")
        raise RuntimeError("the write failed")
    with session_scope() as session:
        assert versions(session, ["probe-b"]) == {"probe-b": 0}

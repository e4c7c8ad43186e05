"""Shared by the audit tests: entries written straight through geo.audit, a department with
an admin key, and sessions in which to tamper with the trail."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import audit
from geo.auth import Principal
from geo.db import session_scope
from tests.conftest import Dept, bearer


@dataclass(frozen=True)
class AdminDept:
    dept: Dept
    admin: dict[str, str]

    @property
    def code(self) -> str:
        return self.dept.code


def with_admin(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable[..., Dept]
) -> AdminDept:
    dept = make_department()
    r = client.post(f"/departments/{dept.code}/keys", json={"role": "admin"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    return AdminDept(dept, bearer(r.json()["key"]))


def write_entries(n: int, action: str | None = None, department: str = "platform") -> str:
    """`n` committed entries of a fresh action name, one transaction each."""
    action = action or "test." + secrets.token_hex(4)
    who = Principal(department, "editor", "tjg_test")
    for i in range(n):
        with session_scope() as session:
            audit.record(session, who, action, f"target-{i}", {"i": i, "名称": "测试"})
    return action


@contextmanager
def tampering() -> Iterator[Session]:
    """A REPEATABLE READ transaction that is always rolled back: changes made in it are seen by
    geo.audit.chain.verify in the same session, and never by anyone else."""
    with session_scope() as session:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        try:
            yield session
        finally:
            session.rollback()


def sealed_ids(session: Session, action: str) -> list[tuple[int, int]]:
    """(id, seq) of the action's sealed entries, in chain order."""
    rows = session.execute(
        text("SELECT id, seq FROM audit_log WHERE action = :a AND seq IS NOT NULL ORDER BY seq"),
        {"a": action},
    )
    return [(r[0], r[1]) for r in rows]

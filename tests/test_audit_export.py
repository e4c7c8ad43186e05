"""The audit trail as CSV for auditors (GET /audit.csv, `geo audit export`): UTF-8 with BOM and
Chinese column names for Excel, the filters of /audit, each department admin its own entries."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geo import audit
from geo.audit.chain import seal
from geo.audit.export import HEADER
from geo.auth import Principal
from geo.db import session_scope
from tests.audit_helpers import AdminDept, with_admin, write_entries


@pytest.fixture(scope="module")
def police(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable
) -> AdminDept:
    return with_admin(client, admin_headers, make_department)


@pytest.fixture(scope="module")
def health(
    client: TestClient, admin_headers: dict[str, str], make_department: Callable
) -> AdminDept:
    return with_admin(client, admin_headers, make_department)


def parse(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(b"\xef\xbb\xbf"), body[:10]  # the BOM Excel looks for
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == [name for name, _ in HEADER]
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_csv_has_bom_chinese_header_and_every_field(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    action = write_entries(3)
    seal()
    r = client.get("/audit.csv", params={"action": action}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="audit.csv"' in r.headers["content-disposition"]
    rows = parse(r.content)
    assert [row["对象"] for row in rows] == ["target-0", "target-1", "target-2"]  # oldest first
    first = rows[0]
    assert first["操作"] == action and first["部门"] == "platform" and first["角色"] == "editor"
    assert first["详情"] == '{"i":0,"名称":"测试"}'
    assert first["时间"].endswith("+08:00")
    seqs = [int(row["链序号"]) for row in rows]
    assert seqs == sorted(seqs) and all(len(row["哈希"]) == 64 for row in rows)
    assert [name for name, _ in HEADER][:3] == ["编号", "时间", "部门"]


def test_csv_filters_like_the_json_listing(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    action = write_entries(2)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        parse(
            client.get(
                "/audit.csv", params={"action": action, "since": later}, headers=admin_headers
            ).content
        )
        == []
    )
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    rows = parse(
        client.get(
            "/audit.csv",
            params={"action": action, "since": earlier, "until": later, "limit": 1},
            headers=admin_headers,
        ).content
    )
    assert [row["对象"] for row in rows] == ["target-0"]
    listed = client.get("/audit", params={"action": action}, headers=admin_headers).json()
    exported = parse(
        client.get("/audit.csv", params={"action": action}, headers=admin_headers).content
    )
    assert sorted(int(row["编号"]) for row in exported) == sorted(e["id"] for e in listed["events"])


def test_department_admin_exports_its_own_department_only(
    client: TestClient, admin_headers: dict[str, str], police: AdminDept, health: AdminDept
) -> None:
    action = "test.export-scope"
    write_entries(1, action, police.code)
    write_entries(1, action, health.code)
    own = parse(client.get("/audit.csv", params={"action": action}, headers=police.admin).content)
    assert [row["部门"] for row in own] == [police.code]
    refused = client.get("/audit.csv", params={"department": health.code}, headers=police.admin)
    assert refused.status_code == 403, refused.text
    assert refused.json()["details"] == {"rule": "own-department", "department": health.code}
    every = parse(
        client.get("/audit.csv", params={"action": action}, headers=admin_headers).content
    )
    assert sorted(row["部门"] for row in every) == sorted([police.code, health.code])
    assert client.get("/audit.csv", headers=police.dept.editor).status_code == 403
    assert client.get("/audit.csv").status_code == 401


def test_department_admin_cannot_read_another_departments_audit(
    client: TestClient, police: AdminDept, health: AdminDept
) -> None:
    write_entries(1, "test.other-dept", health.code)
    for path in ("/audit", "/audit.csv"):
        r = client.get(path, params={"department": health.code}, headers=police.admin)
        assert r.status_code == 403, (path, r.text)
    listed = client.get("/audit", params={"limit": 10_000}, headers=police.admin).json()["events"]
    assert {e["department"] for e in listed} <= {police.code}
    assert client.get("/audit/verify", headers=police.admin).status_code == 403


def test_cells_excel_would_run_as_formulas_are_quoted(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    with session_scope() as session:
        audit.record(
            session, Principal("platform", "admin", "tjg_csv"), "test.formula", "=HYPERLINK(1)"
        )
    rows = parse(
        client.get("/audit.csv", params={"action": "test.formula"}, headers=admin_headers).content
    )
    assert rows[-1]["对象"] == "'=HYPERLINK(1)"


def test_a_large_export_streams_every_row_in_order(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    with session_scope() as session:
        who = Principal("platform", "editor", "tjg_many")
        for i in range(2500):  # more than one batch of the stream
            audit.record(session, who, "test.many", f"n{i:04d}")
    rows = parse(
        client.get(
            "/audit.csv", params={"action": "test.many", "limit": 1_000_000}, headers=admin_headers
        ).content
    )
    assert [row["对象"] for row in rows] == [f"n{i:04d}" for i in range(2500)]


@pytest.mark.parametrize(
    "params",
    [{"since": "yesterday"}, {"limit": "0"}, {"limit": "1000001"}, {"until": "x"}, {"bogus": "1"}],
)
def test_bad_filters_are_400(
    client: TestClient, admin_headers: dict[str, str], params: dict[str, str]
) -> None:
    r = client.get("/audit.csv", params=params, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert next(iter(params)) in r.json()["message"]


def test_cli_export_writes_the_same_file(database_url: str, tmp_path: Path) -> None:
    action = write_entries(2)
    out = tmp_path / "审计.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from geo.cli import main; main()",
            "audit",
            "export",
            str(out),
            "--action",
            action,
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = parse(out.read_bytes())
    assert [row["对象"] for row in rows] == ["target-0", "target-1"]

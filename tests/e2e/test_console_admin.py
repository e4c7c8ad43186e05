"""The administration and audit pages in a real browser (issue 13): a department admin signs in,
creates an account and a key, sees the key once, revokes it, and finds it all in the audit
log. Debian's Chromium against `geo serve` in its own process, as tests/e2e/test_console.py;
the screenshot is tests/e2e/artifacts/console-6-admin.png, and axe-core finds no serious
violation on either page."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import Dept, bearer
from tests.e2e.test_console import (
    click,
    fill,
    no_serious_violations,
    shot,
    sign_in,
    wait_for,
    wait_text,
)
from tests.test_accounts import Person, activate, create_account, new_browser


@pytest.fixture(scope="module")
def department_admin(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
) -> Person:
    code = make_department().code
    person, _ = activate(new_browser(app), create_account(client, admin_headers, code, "admin"))
    return person


def test_a_department_admin_manages_accounts_and_keys_and_reads_the_audit(
    server: str, driver: Any, client: TestClient, department_admin: Person
) -> None:
    code = department_admin.department
    sign_in(driver, server, department_admin, department_admin.password)
    wait_for(driver, "return location.pathname === '/console/layers'", what="signed in")
    click(driver, "nav a[href='/console/admin']")
    wait_for(driver, f"return location.pathname === '/console/admin/{code}'", what="admin page")
    wait_text(driver, "main", "API 密钥")
    no_serious_violations(driver)

    # A bad username: said in Chinese under the form, nothing created, the form as typed.
    fill(driver, {"account-username": "Bad Name", "account-role": "editor"})
    click(driver, "#account-form button[type=submit]")
    wait_text(driver, "account-error", "用户名须为")
    assert driver.execute_script("return document.getElementById('account-username').value") == (
        "Bad Name"
    )

    # An account: its one-time password shown with it.
    username = "clerk" + secrets.token_hex(3)
    fill(driver, {"account-username": username, "account-display-name": "王五"})
    click(driver, "#account-form button[type=submit]")
    wait_text(driver, "account-once", username)
    assert driver.execute_script("return document.getElementById('temporary-password').innerText")
    wait_text(driver, "accounts-table", "待修改密码")

    # A key: shown once.
    fill(driver, {"key-label": "区县报表", "key-role": "viewer"})
    click(driver, "#key-form button[type=submit]")
    wait_text(driver, "key-once", "只显示这一次")
    key = str(driver.execute_script("return document.getElementById('new-key').innerText"))
    assert key.startswith("tjg_")
    assert client.get("/auth/me", headers=bearer(key)).json()["department"] == code
    shot(driver, "console-6-admin.png")
    no_serious_violations(driver)
    driver.refresh()
    wait_text(driver, "keys-table", "区县报表")
    assert driver.execute_script("return document.getElementById('new-key')") is None
    assert key not in driver.page_source

    # Revoked: the key stops working.
    click(driver, f"#keys-table tr[data-key='{key[:8]}'] button.revoke")
    wait_for(
        driver,
        f"return document.querySelector(\"#keys-table tr[data-key='{key[:8]}']\").innerText"
        ".includes('已撤销')",
        what="revoked",
    )
    assert client.get("/auth/me", headers=bearer(key)).status_code == 401

    # The audit log has all three, newest first, and the filters narrow it.
    click(driver, "nav a[href='/console/audit']")
    wait_for(driver, "return location.pathname === '/console/audit'", what="audit page")
    body = wait_text(driver, "audit-body", "key.revoke")
    assert "account.create" in body and "key.create" in body
    assert f"{code}/{username}" in body and f"{code}/{key[:8]}" in body
    assert body.index("key.revoke") < body.index("key.create") < body.index("account.create")
    no_serious_violations(driver)
    fill(driver, {"audit-action": "key.revoke"})
    click(driver, "#audit-filters button[type=submit]")
    wait_for(driver, "return location.search.includes('action=key.revoke')", what="filtered")
    rows = driver.execute_script("return document.getElementById('audit-body').rows.length")
    assert rows == 1
    csv = driver.execute_script("return document.getElementById('audit-csv').href")
    assert "/audit.csv?" in csv and f"department={code}" in csv and "action=key.revoke" in csv

    # The session ends while a form is being filled: sign in again, the form is still there and
    # nothing was created.
    driver.get(f"{server}/console/admin/{code}")
    late = "late" + secrets.token_hex(3)
    fill(driver, {"account-username": late, "account-display-name": "赵六"})
    driver.delete_cookie("geo_session")
    click(driver, "#account-form button[type=submit]")
    wait_for(driver, "return location.pathname === '/console/login'", what="back to sign-in")
    wait_text(driver, "main", "您填写的内容已保留")
    fill(driver, {"username": department_admin.username, "password": department_admin.password})
    click(driver, "#login-form button[type=submit]")
    wait_for(driver, f"return location.pathname === '/console/admin/{code}'", what="back")
    kept = "return document.getElementById('account-username').value"
    wait_for(driver, f"{kept} === {late!r}", what="the form put back")
    assert late not in driver.execute_script(
        "return document.getElementById('accounts-table').innerText"
    )

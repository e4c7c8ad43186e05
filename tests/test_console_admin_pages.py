"""The console's administration and audit pages on the server side (issue 13): who may see and
do what (exactly as the /departments and /audit API allows), bad input on every form answered
in Chinese with nothing written, and sessions and CSRF as for every cookie write. The flow in a
browser is tests/e2e/test_console_admin.py."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from geo import audit
from geo.auth import Principal
from geo.db import session_scope
from tests.conftest import Dept, bearer
from tests.test_accounts import Person, activate, create_account, new_browser


@dataclass
class Admin:
    """A signed-in browser of an administrator, its department and its CSRF token."""

    browser: TestClient
    department: str
    token: str

    def post(self, url: str, data: dict[str, str] | None = None, csrf: bool = True) -> object:
        headers = {"HX-Request": "true"}
        if csrf:
            headers["X-CSRF-Token"] = self.token
        return self.browser.post(url, data=data or {}, headers=headers)


def signed_in_admin(app: FastAPI, client: TestClient, headers: dict[str, str], code: str) -> Admin:
    browser = new_browser(app)
    person = create_account(client, headers, code, role="admin")
    _, token = activate(browser, person)
    return Admin(browser, code, token)


@pytest.fixture
def dept(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


@pytest.fixture
def admin(app: FastAPI, client: TestClient, admin_headers: dict[str, str], dept: Dept) -> Admin:
    return signed_in_admin(app, client, admin_headers, dept.code)


@pytest.fixture(scope="module")
def platform(app: FastAPI, client: TestClient, admin_headers: dict[str, str]) -> Admin:
    return signed_in_admin(app, client, admin_headers, "platform")


def accounts_of(client: TestClient, headers: dict[str, str], code: str) -> list[str]:
    r = client.get(f"/departments/{code}/accounts", headers=headers)
    assert r.status_code == 200, r.text
    return [a["username"] for a in r.json()["accounts"]]


def keys_of(client: TestClient, headers: dict[str, str], code: str) -> list[dict]:
    r = client.get(f"/departments/{code}/keys", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["keys"])


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


# --- who sees what ------------------------------------------------------------------------------


def test_navigation_shows_administration_to_admins_only(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], dept: Dept, admin: Admin
) -> None:
    page = admin.browser.get("/console/layers").text
    assert 'href="/console/admin"' in page and 'href="/console/audit"' in page
    editor = new_browser(app)
    activate(editor, create_account(client, admin_headers, dept.code, role="editor"))
    plain = editor.get("/console/layers").text
    assert "/console/admin" not in plain and "/console/audit" not in plain
    # Typing the address does not help: the pages say no, in Chinese.
    for url in ("/console/admin/" + dept.code, "/console/audit"):
        r = editor.get(url)
        assert r.status_code == 403 and "无权访问" in r.text, url
    r = editor.post(
        f"/console/admin/{dept.code}/keys",
        data={"role": "admin"},
        headers={"X-CSRF-Token": activate_token(editor)},
    )
    assert r.status_code == 403 and "您没有权限" in r.text
    assert [k for k in keys_of(client, admin_headers, dept.code) if k["role"] == "admin"] == []


def activate_token(browser: TestClient) -> str:
    return str(browser.get("/auth/me").json()["csrf_token"])


def test_admin_home_goes_to_ones_department_and_signs_in_first(app: FastAPI, admin: Admin) -> None:
    r = admin.browser.get("/console/admin", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/console/admin/{admin.department}"
    page = admin.browser.get(r.headers["location"])
    assert page.status_code == 200 and "账户" in page.text and "API 密钥" in page.text
    assert "departments-section" not in page.text  # every department: the platform admin
    anonymous = new_browser(app).get(f"/console/admin/{admin.department}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith(
        "/console/login?next="
    )
    en = admin.browser.get(f"/console/admin/{admin.department}?lang=en").text
    assert "Administration" in en and "API keys" in en


def test_a_department_admin_never_reaches_another_department(
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
    admin: Admin,
) -> None:
    other = make_department().code
    victim = create_account(client, admin_headers, other)
    victim_key = keys_of(client, admin_headers, other)[0]
    page = admin.browser.get(f"/console/admin/{other}")
    assert page.status_code == 403 and "只能管理和查看本部门" in page.text
    assert victim.username not in page.text and victim_key["prefix"] not in page.text
    before_keys = len(keys_of(client, admin_headers, other))
    attempts = [
        (f"/console/admin/{other}/accounts", {"username": "intruder1", "role": "admin"}),
        (f"/console/admin/{other}/accounts/{victim.username}/reset", {}),
        (f"/console/admin/{other}/accounts/{victim.username}/disable", {}),
        (f"/console/admin/{other}/keys", {"role": "admin"}),
        (f"/console/admin/{other}/keys/{victim_key['id']}/revoke", {}),
        # Platform-wide actions, even on its own department's page.
        (f"/console/admin/{admin.department}/departments", {"name": "假部门", "new_code": "fake"}),
        (f"/console/admin/{admin.department}/authority", {"address_authority": "true"}),
        (f"/console/admin/{other}/authority", {"address_authority": "true"}),
    ]
    for url, data in attempts:
        r = admin.post(url, data)
        assert r.status_code == 403, (url, r.text)
        assert victim.username not in r.text and victim_key["prefix"] not in r.text
    assert "intruder1" not in accounts_of(client, admin_headers, other)
    keys = keys_of(client, admin_headers, other)
    assert len(keys) == before_keys and all(k["revoked_at"] is None for k in keys)
    victim_account = client.get(f"/departments/{other}/accounts", headers=admin_headers).json()
    assert all(a["disabled_at"] is None for a in victim_account["accounts"])
    assert (
        client.get(f"/departments/{other}", headers=admin_headers).json()["address_authority"]
        is False
    )
    assert client.get("/departments/fake", headers=admin_headers).status_code == 404


# --- accounts -----------------------------------------------------------------------------------


def test_create_reset_and_disable_an_account(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], admin: Admin
) -> None:
    username = "clerk" + secrets.token_hex(3)
    base = f"/console/admin/{admin.department}/accounts"
    made = admin.post(base, {"username": username, "role": "editor", "display_name": "王五"})
    assert made.status_code == 200, made.text
    temporary = between(made.text, '<code id="temporary-password">', "</code>")
    assert "只显示这一次" in made.text and f'data-account="{username}"' in made.text
    assert username in accounts_of(client, admin_headers, admin.department)
    login = new_browser(app).post("/auth/login", json={"username": username, "password": temporary})
    assert login.status_code == 200 and login.json()["must_change_password"] is True
    # The password is shown once: the page read again does not carry it.
    assert temporary not in admin.browser.get(f"/console/admin/{admin.department}").text

    reset = admin.post(f"{base}/{username}/reset")
    assert reset.status_code == 200
    again = between(reset.text, '<code id="temporary-password">', "</code>")
    assert again != temporary
    assert (
        new_browser(app)
        .post("/auth/login", json={"username": username, "password": again})
        .status_code
        == 200
    )

    disabled = admin.post(f"{base}/{username}/disable")
    assert disabled.status_code == 200 and "已停用" in disabled.text
    assert (
        new_browser(app)
        .post("/auth/login", json={"username": username, "password": again})
        .status_code
        == 401
    )


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"username": "Bad Name", "role": "viewer"}, 400, "用户名须为 3–64 位小写字母"),
        ({"username": "", "role": "viewer"}, 422, "请填写“用户名”"),
        ({"username": "okname" + "x" * 70, "role": "viewer"}, 422, "“用户名”太长"),
        ({"username": "okname", "role": "root"}, 422, "“角色”的值无效"),
        ({"username": "okname", "role": "viewer", "display_name": "长" * 201}, 422, "“姓名”太长"),
    ],
)
def test_account_form_bad_input_is_said_in_chinese_and_creates_nothing(
    client: TestClient,
    admin_headers: dict[str, str],
    admin: Admin,
    form: dict[str, str],
    status: int,
    message: str,
) -> None:
    before = accounts_of(client, admin_headers, admin.department)
    r = admin.post(f"/console/admin/{admin.department}/accounts", form)
    assert r.status_code == status and message in r.text, r.text
    assert 'id="account-form"' in r.text  # the form comes back, as typed
    assert f'value="{form["username"]}"' in r.text
    assert accounts_of(client, admin_headers, admin.department) == before


def test_an_existing_username_and_an_unknown_account(
    client: TestClient, admin_headers: dict[str, str], admin: Admin
) -> None:
    taken = create_account(client, admin_headers, admin.department)
    base = f"/console/admin/{admin.department}/accounts"
    r = admin.post(base, {"username": taken.username, "role": "viewer"})
    assert r.status_code == 409 and "已存在" in r.text
    for action in ("reset", "disable"):
        r = admin.post(f"{base}/nobody-{secrets.token_hex(2)}/{action}")
        assert r.status_code == 404 and "没有找到" in r.text


# --- keys ---------------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_works_and_is_revoked(
    client: TestClient, admin_headers: dict[str, str], admin: Admin
) -> None:
    made = admin.post(
        f"/console/admin/{admin.department}/keys",
        {"role": "viewer", "label": "区县报表", "expires_on": "2099-12-31", "read_only": "on"},
    )
    assert made.status_code == 200, made.text
    key = between(made.text, '<code id="new-key">', "</code>")
    assert key.startswith("tjg_") and "只显示这一次" in made.text
    me = client.get("/auth/me", headers=bearer(key)).json()
    assert me["department"] == admin.department and me["read_only"] is True
    listed = [
        k for k in keys_of(client, admin_headers, admin.department) if k["label"] == "区县报表"
    ]
    # The end of the picked day in Tianjin.
    expires = datetime.fromisoformat(listed[0]["expires_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert expires.strftime("%Y-%m-%d %H:%M:%S") == "2099-12-31 23:59:59"
    page = admin.browser.get(f"/console/admin/{admin.department}").text
    assert key not in page and key[:8] in page
    revoked = admin.post(f"/console/admin/{admin.department}/keys/{listed[0]['id']}/revoke")
    assert revoked.status_code == 200 and "已撤销" in revoked.text
    assert client.get("/auth/me", headers=bearer(key)).status_code == 401


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"role": "viewer", "expires_on": "2001-01-01"}, 400, "到期日须在今天之后"),
        ({"role": "viewer", "expires_on": "明天"}, 422, "“到期日”的值无效"),
        ({"role": "owner"}, 422, "“角色”的值无效"),
        ({"role": "viewer", "label": "x" * 201}, 422, "“用途说明”太长"),
    ],
)
def test_key_form_bad_input_is_said_in_chinese_and_creates_nothing(
    client: TestClient,
    admin_headers: dict[str, str],
    admin: Admin,
    form: dict[str, str],
    status: int,
    message: str,
) -> None:
    before = len(keys_of(client, admin_headers, admin.department))
    r = admin.post(f"/console/admin/{admin.department}/keys", form)
    assert r.status_code == status and message in r.text, r.text
    assert 'id="new-key"' not in r.text
    assert len(keys_of(client, admin_headers, admin.department)) == before
    unknown = admin.post(f"/console/admin/{admin.department}/keys/999999999/revoke")
    assert unknown.status_code == 404 and "没有找到" in unknown.text


# --- departments (the platform administrator) ---------------------------------------------------


def test_the_platform_admin_sees_every_department_and_creates_one(
    client: TestClient, admin_headers: dict[str, str], platform: Admin, dept: Dept
) -> None:
    page = platform.browser.get("/console/admin/platform")
    assert page.status_code == 200 and "departments-section" in page.text
    assert f'data-department="{dept.code}"' in page.text
    other = platform.browser.get(f"/console/admin/{dept.code}")
    assert other.status_code == 200 and "账户" in other.text
    code = "dept-" + secrets.token_hex(3)
    made = platform.post(
        "/console/admin/platform/departments", {"name": "规划局", "new_code": code}
    )
    assert made.status_code == 200 and f"已创建部门 {code}" in made.text
    assert client.get(f"/departments/{code}", headers=admin_headers).json()["name"] == "规划局"
    on = platform.post(f"/console/admin/{code}/authority", {"address_authority": "true"})
    assert on.status_code == 200 and "取消地址主管部门" in on.text
    assert client.get(f"/departments/{code}", headers=admin_headers).json()["address_authority"]
    # The platform admin manages another department's accounts too.
    username = "padm" + secrets.token_hex(3)
    made = platform.post(f"/console/admin/{code}/accounts", {"username": username, "role": "admin"})
    assert made.status_code == 200 and 'id="temporary-password"' in made.text


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"name": "", "new_code": "emptyname"}, 422, "请填写“部门名称”"),
        ({"name": "   ", "new_code": "blankname"}, 400, "请填写“部门名称”"),
        ({"name": "水务局", "new_code": "Bad Code"}, 400, "部门代码须为 2–64 位"),
        ({"name": "水务局", "new_code": "platform"}, 409, "已存在"),
        ({"name": "水" * 201, "new_code": ""}, 422, "“部门名称”太长"),
    ],
)
def test_department_form_bad_input(
    client: TestClient,
    admin_headers: dict[str, str],
    platform: Admin,
    form: dict[str, str],
    status: int,
    message: str,
) -> None:
    before = client.get("/departments", headers=admin_headers).json()["departments"]
    r = platform.post("/console/admin/platform/departments", form)
    assert r.status_code == status and message in r.text, r.text
    assert client.get("/departments", headers=admin_headers).json()["departments"] == before


def test_the_platform_stays_the_address_authority(platform: Admin) -> None:
    r = platform.post("/console/admin/platform/authority", {"address_authority": "false"})
    assert r.status_code == 400 and "始终是地址主管部门" in r.text
    bad = platform.post("/console/admin/platform/authority", {"address_authority": "maybe"})
    assert bad.status_code == 422 and "“地址主管部门”的值无效" in bad.text


# --- sessions and CSRF --------------------------------------------------------------------------


def test_forms_need_the_csrf_token_and_a_session(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], admin: Admin
) -> None:
    url = f"/console/admin/{admin.department}/accounts"
    r = admin.post(url, {"username": "nocsrf1", "role": "viewer"}, csrf=False)
    assert r.status_code == 403 and "页面已过期" in r.text
    assert "nocsrf1" not in accounts_of(client, admin_headers, admin.department)
    ended = new_browser(app).post(
        url,
        data={"username": "nosession", "role": "viewer"},
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{url[:-9]}"},
    )
    assert ended.status_code == 204
    assert ended.headers["HX-Redirect"] == (
        f"/console/login?expired=1&next=/console/admin/{admin.department}"
    )
    assert "nosession" not in accounts_of(client, admin_headers, admin.department)


# --- the audit log ------------------------------------------------------------------------------


def test_audit_page_shows_the_departments_own_entries_with_filters(
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
    admin: Admin,
) -> None:
    other = make_department().code
    # Entries belong to the department that acted (as GET /audit reads them).
    username = "audited" + secrets.token_hex(3)
    made = admin.post(
        f"/console/admin/{admin.department}/accounts", {"username": username, "role": "viewer"}
    )
    assert made.status_code == 200
    mine = Person(admin.department, username, "")
    assert (
        admin.post(f"/console/admin/{admin.department}/keys", {"role": "viewer"}).status_code == 200
    )
    theirs = create_account(client, admin_headers, other)
    page = admin.browser.get("/console/audit")
    assert page.status_code == 200 and "审计日志" in page.text
    assert f"{admin.department}/{mine.username}" in page.text
    assert theirs.username not in page.text and other not in page.text
    assert "chain-status" not in page.text  # the chain check is the platform admin's
    refused = admin.browser.get("/console/audit", params={"department": other})
    assert refused.status_code == 403 and "只能管理和查看本部门" in refused.text
    assert theirs.username not in refused.text
    by_action = admin.browser.get("/console/audit", params={"action": "key.create"}).text
    assert (
        'data-action="key.create"' in by_action and 'data-action="account.create"' not in by_action
    )
    by_target = admin.browser.get(
        "/console/audit", params={"target": f"{admin.department}/{mine.username}"}
    ).text
    assert by_target.count('data-action="account.create"') == 1
    # The CSV link carries the filters and the department admin's own department.
    csv_link = between(by_target, 'id="audit-csv" href="', '"').replace("&amp;", "&")
    assert f"department={admin.department}" in csv_link and "target=" in csv_link
    csv = admin.browser.get(csv_link)
    assert csv.status_code == 200 and mine.username in csv.text
    assert csv.text.count(admin.department + "/") == 1
    # A time range: nothing before the department existed.
    past = admin.browser.get("/console/audit", params={"until": "2001-01-01T00:00"}).text
    assert "没有符合条件的记录" in past


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "昨天"}, "起始时间不是有效的日期时间"),
        ({"until": "2026-13-40T00:00"}, "截止时间不是有效的日期时间"),
        ({"since": "2026-12-05T10:00", "until": "2026-12-05T09:00"}, "起始时间须早于截止时间"),
        ({"offset": "-5"}, "页码参数无效"),
        ({"target": "x" * 501}, "“对象”太长"),
        ({"action": "x" * 65}, "“操作”太长"),
    ],
)
def test_audit_filters_bad_input(admin: Admin, params: dict[str, str], message: str) -> None:
    r = admin.browser.get("/console/audit", params=params)
    assert r.status_code == 400 and message in r.text, r.text
    assert 'id="audit-filters"' in r.text


def test_audit_pages_through_entries(admin: Admin) -> None:
    who = Principal(admin.department, "admin", None, account="pager")
    with session_scope() as session:
        for i in range(55):
            audit.record(session, who, "test.page", f"{admin.department}/page-{i:02d}")
    first = admin.browser.get("/console/audit", params={"action": "test.page"}).text
    assert first.count('data-action="test.page"') == 50 and "第 1–50 条" in first
    assert "page-54" in first and "page-04" not in first  # newest first
    next_link = between(first, 'id="audit-next" href="', '"').replace("&amp;", "&")
    second = admin.browser.get(next_link).text
    assert second.count('data-action="test.page"') == 5 and "page-04" in second
    assert 'id="audit-next"' not in second and 'id="audit-prev"' in second


def test_the_chain_status_is_the_platform_admins(platform: Admin, admin: Admin) -> None:
    page = platform.browser.get("/console/audit").text
    assert 'hx-get="/console/audit/chain"' in page
    status = platform.browser.get("/console/audit/chain")
    assert status.status_code == 200 and "哈希链完整" in status.text
    refused = admin.browser.get("/console/audit/chain")
    assert refused.status_code == 403 and "哈希链" not in refused.text


def test_the_api_filters_the_audit_by_target_prefix(
    client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    person = create_account(client, admin_headers, dept.code)
    r = client.get("/audit", params={"target": f"{dept.code}/"}, headers=admin_headers)
    assert r.status_code == 200
    targets = {e["target"] for e in r.json()["events"]}
    assert f"{dept.code}/{person.username}" in targets
    assert all(t.startswith(f"{dept.code}/") for t in targets)
    # '%' and '_' are literal in the prefix, not wildcards.
    assert (
        client.get("/audit", params={"target": "%"}, headers=admin_headers).json()["events"] == []
    )

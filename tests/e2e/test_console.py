"""The console in a real browser (issue 13): Debian's Chromium driven by chromedriver against
`geo serve` in its own process, as a department's staff would use it. Each flow leaves a
screenshot in tests/e2e/artifacts/ (ignored by git), and axe-core (vendored under
tests/e2e/vendor) finds no serious or critical accessibility violation on each page."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openpyxl import Workbook

from tests.browser import poll
from tests.conftest import Dept
from tests.test_accounts import STRONG, Person, activate, create_account, new_browser

ARTIFACTS = Path(__file__).parent / "artifacts"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


WINDOW = "1280,1400"


def wait_for(driver: Any, script: str, timeout: float = 30, what: str = "") -> Any:
    value = poll(driver, script, timeout)
    if not value:
        raise AssertionError(f"timed out waiting for {what or script}")
    return value


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').innerText"))


def wait_text(driver: Any, element_id: str, needle: str, timeout: float = 30) -> str:
    check = (
        f"const e = document.getElementById('{element_id}');"
        f" return e && e.innerText.includes({needle!r}) ? e.innerText : '';"
    )
    try:
        return str(wait_for(driver, check, timeout, f"{needle!r} in #{element_id}"))
    except AssertionError as exc:
        status = driver.execute_script(
            "return [...document.querySelectorAll('[role=status],[role=alert]')]"
            ".map(e => e.id + ': ' + e.innerText).join('\\n')"
        )
        raise AssertionError(
            f"{exc}; #{element_id}: {text_of(driver, element_id)!r}; {status}"
        ) from None


def no_serious_violations(driver: Any) -> None:
    """axe-core, injected into the page, finds nothing serious or critical."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        " axe.run(document).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' '))}))));"
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert serious == [], serious


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


def fill(driver: Any, values: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By

    for element_id, value in values.items():
        element = driver.find_element(By.ID, element_id)
        if element.tag_name == "select":
            driver.execute_script(
                "arguments[0].value = arguments[1]; arguments[0].dispatchEvent("
                "new Event('change'));",
                element,
                value,
            )
        else:
            element.clear()
            element.send_keys(value)


def click(driver: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, css).click()


def sign_in(driver: Any, server: str, person: Person, password: str) -> None:
    driver.get(server + "/console/login")
    fill(driver, {"username": person.username, "password": password})
    click(driver, "#login-form button[type=submit]")


def sign_out(driver: Any) -> None:
    click(driver, "#logout")
    wait_for(driver, "return location.pathname === '/console/login'", what="signed out")


def points_xlsx(path: Path, bad_row: bool) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["名称", "lon", "lat"])
    sheet.append(["和平路站", 117.20, 39.12])
    sheet.append(["南京路站", "经度错误" if bad_row else 117.21, 39.125])
    sheet.append(["滨江道站", 117.19, 39.118])
    book.save(path)
    return path


@pytest.fixture(scope="module")
def people(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
) -> dict[str, tuple[Person, str]]:
    """An owner whose password is still the administrator's, its department's administrator,
    and two other departments' editors: (person, password to type)."""
    owner_department = make_department().code
    owner = create_account(client, admin_headers, owner_department)
    approver = create_account(client, admin_headers, owner_department, role="admin")
    grantee = create_account(client, admin_headers, make_department().code)
    asker = create_account(client, admin_headers, make_department().code)
    return {
        "owner": (owner, owner.password),
        "grantee": (activate(new_browser(app), grantee)[0], STRONG),
        "asker": (activate(new_browser(app), asker)[0], STRONG),
        "approver": (activate(new_browser(app), approver)[0], STRONG),
    }


def test_console_flows(
    server: str, driver: Any, people: dict[str, tuple[Person, str]], tmp_path: Path
) -> None:
    owner, temporary = people["owner"]
    layer = "stops_" + secrets.token_hex(3)

    # 1. Sign in: the first page asked for goes to sign-in, then to the forced password change.
    driver.get(server + "/console/layers")
    wait_for(driver, "return location.pathname === '/console/login'", what="sign-in page")
    assert driver.execute_script("return document.documentElement.lang") == "zh-CN"
    no_serious_violations(driver)
    fill(driver, {"username": owner.username, "password": temporary})
    click(driver, "#login-form button[type=submit]")
    wait_for(driver, "return location.pathname === '/console/password'", what="password page")
    no_serious_violations(driver)
    fill(driver, {"current_password": temporary, "new_password": STRONG})
    click(driver, "#password-form button[type=submit]")
    wait_for(driver, "return location.pathname === '/console/layers'", what="my layers")
    wait_text(driver, "main", "本部门还没有图层")
    shot(driver, "console-1-signin.png")
    no_serious_violations(driver)
    # English on request, remembered, and back to Chinese.
    click(driver, "#lang-switch")
    wait_for(driver, "return document.documentElement.lang === 'en'", what="English")
    wait_text(driver, "main", "My layers")
    no_serious_violations(driver)
    driver.get(server + "/console/layers")
    assert driver.execute_script("return document.documentElement.lang") == "en"
    click(driver, "#lang-switch")
    wait_for(driver, "return document.documentElement.lang === 'zh-CN'", what="Chinese")
    wait_text(driver, "main", "我的图层")

    # 2. An XLSX with one bad row: choosing it previews it (upload, then processing), and the
    # preview shows the bad row in its error report, the good ones on the map, nothing written.
    fill(
        driver,
        {"upload-id": layer, "upload-title": "公交站点", "upload-crs": "EPSG:4326"},
    )
    file_input = driver.find_element("id", "upload-file")
    file_input.send_keys(str(points_xlsx(tmp_path / "bad.xlsx", bad_row=True)))
    errors = wait_text(driver, "preview-errors", "个要素有误")
    assert "未写入任何数据" in errors and "第 2 个要素" in errors  # the second data row
    assert "经纬度列 lon/lat 应为数字" in errors  # the reason in Chinese too
    wait_for(driver, "return window.previewMapReady === 2", what="the good rows on the map")
    wait_text(driver, "preview-schema-body", "名称")
    assert driver.execute_script("return document.getElementById('preview-commit').disabled")
    assert driver.execute_script("return document.getElementById('upload-progress').value") == 100
    told = "return document.getElementById('process-progress').getAttribute('aria-valuetext')"
    assert driver.execute_script(told) == "正在处理：已读取 3 个要素…"  # the server's progress
    driver.execute_script("document.getElementById('preview').scrollIntoView()")
    shot(driver, "console-2-preview.png")
    no_serious_violations(driver)
    assert driver.execute_script("return document.getElementById('layers-body').rows.length") == 0
    # An empty file, a file of an unsupported type, a table without a location: a Chinese
    # message each, nothing created.
    (tmp_path / "empty.geojson").write_bytes(b"")
    file_input.send_keys(str(tmp_path / "empty.geojson"))
    wait_text(driver, "upload-error", "未创建任何图层")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 not a layer")
    file_input.send_keys(str(tmp_path / "report.pdf"))
    wait_text(driver, "upload-error", "不支持这种文件类型")
    # A table without coordinates or addresses (read as CSV) is named as such.
    (tmp_path / "notes.txt").write_text("名称,备注\n和平路站,无坐标\n")
    file_input.send_keys(str(tmp_path / "notes.txt"))
    wait_text(driver, "upload-error", "没有经纬度列或地址列")
    assert driver.execute_script("return document.getElementById('layers-body').rows.length") == 0
    # The fixed file: previewed on the map, cancelled (nothing written), previewed again.
    file_input.send_keys(str(points_xlsx(tmp_path / "good.xlsx", bad_row=False)))
    wait_text(driver, "preview-verdict", "提交后将写入 3 个要素")
    wait_for(driver, "return window.previewMapReady === 3", what="the fixed file on the map")
    wait_text(driver, "preview-errors", "没有发现错误")
    click(driver, "#preview-cancel")
    wait_text(driver, "upload-status", "已取消")
    assert driver.execute_script("return document.getElementById('layers-body').rows.length") == 0
    click(driver, "#upload-submit")
    wait_text(driver, "upload-status", "预览完成")
    wait_text(driver, "preview-verdict", "提交后将写入 3 个要素")
    # A double click commits once: the button is disabled while the first is on its way.
    driver.execute_script(
        "const b = document.getElementById('preview-commit'); b.click(); b.click();"
    )
    wait_text(driver, "upload-status", "写入 3 个要素")
    assert driver.execute_script(told) == "正在处理：已读取 3 个要素…"  # the commit's too
    wait_text(driver, "layers-body", layer)
    assert driver.execute_script("return document.getElementById('layers-body').rows.length") == 1
    # Creating it again is refused at the preview with a clear message, not a second layer.
    click(driver, "#upload-submit")
    wait_text(driver, "upload-error", "该标识已存在")
    # The same file appended to the layer, through its preview.
    fill(driver, {"upload-mode": "append"})
    click(driver, "#upload-submit")
    wait_text(driver, "upload-status", "预览完成")
    wait_text(driver, "preview-verdict", "提交后将写入 3 个要素")
    click(driver, "#preview-commit")
    wait_text(driver, "upload-status", "写入 3 个要素")
    count = f"#layers-body tr[data-layer='{layer}'] td:nth-child(3)"
    wait_for(driver, f"return document.querySelector({count!r}).innerText === '6'", what="6")

    driver.get(f"{server}/console/layers/{layer}")
    wait_text(driver, "features-range", "共 6 条")
    wait_text(driver, "schema-body", "名称")
    wait_for(driver, "return window.consoleMapReady === 6", what="the map preview")
    # The layer's own page previews an append against the layer's schema: a column the layer
    # lacks is reported row by row, nothing written; the good file is committed and its
    # features reach the page's map and table without a reload.
    (tmp_path / "extra.csv").write_text("名称,lon,lat,备注\n天津站,117.21,39.14,新增\n")
    file_input = driver.find_element("id", "upload-file")
    file_input.send_keys(str(tmp_path / "extra.csv"))
    wait_text(driver, "preview-errors", "属性“备注”不在图层的属性结构中")
    assert driver.execute_script("return document.getElementById('preview-commit').disabled")
    file_input.send_keys(str(tmp_path / "good.xlsx"))
    wait_text(driver, "preview-verdict", "提交后将写入 3 个要素")
    wait_for(driver, "return window.previewMapReady === 3", what="the append on the map")
    no_serious_violations(driver)
    click(driver, "#preview-commit")
    wait_text(driver, "upload-status", "写入 3 个要素")
    wait_text(driver, "features-range", "共 9 条")
    fill(driver, {"filter": "名称 = '南京路站'"})
    click(driver, "#filter-form button[type=submit]")
    wait_text(driver, "features-range", "共 3 条")
    shot(driver, "console-3-layer.png")
    no_serious_violations(driver)

    # 3. Grant a view to another department on the layer page; make the layer conditional.
    grantee = people["grantee"][0]
    fill(driver, {"grant-grantee": grantee.department, "grant-level": "view"})
    click(driver, "#grant-form button[type=submit]")
    wait_text(driver, "grants-body", grantee.department)
    fill(driver, {"cat-sharing": "conditional"})
    click(driver, "#catalogue-form button[type=submit]")
    wait_text(driver, "catalogue-status", "已保存")
    shot(driver, "console-4-grant.png")
    # Revoking.
    click(driver, "#grants-body button")
    wait_for(driver, "return !document.getElementById('grants-empty').hidden", what="revoked")
    assert driver.execute_script("return document.getElementById('grants-body').rows.length") == 0

    # A session that ends while a form is being filled: sign in again, the form is still there.
    asker = people["asker"][0]
    fill(driver, {"grant-grantee": asker.department, "grant-attributes": "名称"})
    driver.delete_cookie("geo_session")
    click(driver, "#grant-form button[type=submit]")
    wait_for(driver, "return location.pathname === '/console/login'", what="back to sign-in")
    wait_text(driver, "main", "您填写的内容已保留")
    fill(driver, {"username": owner.username, "password": STRONG})
    click(driver, "#login-form button[type=submit]")
    wait_for(driver, f"return location.pathname === '/console/layers/{layer}'", what="back")
    kept = "return document.getElementById('grant-grantee').value"
    wait_for(driver, f"{kept} === {asker.department!r}", what="the form put back")
    assert driver.execute_script("return document.getElementById('grant-attributes').value") == (
        "名称"
    )
    sign_out(driver)

    # 4. Another department finds the layer, requests access; its administrator approves it.
    password = people["asker"][1]
    sign_in(driver, server, asker, password)
    wait_for(driver, "return location.pathname === '/console/layers'", what="asker signed in")
    driver.get(server + "/console/catalogue")
    fill(driver, {"q": "公交站点"})
    click(driver, "#search-form button[type=submit]")
    wait_text(driver, "results-body", "公交站点")
    ask = f"#results-body tr[data-layer='{layer}'] button"
    wait_for(driver, f"return document.querySelector({ask!r})", what="the request button")
    driver.execute_script(f"document.querySelector({ask!r}).click()")
    fill(driver, {"request-purpose": "规划公交线路"})
    click(driver, "#request-form button[type=submit]")
    wait_text(driver, "outgoing-body", "待审批")
    no_serious_violations(driver)
    sign_out(driver)

    # The owner, an editor, sees the request but deciding is for the department's administrator.
    sign_in(driver, server, owner, STRONG)
    wait_for(driver, "return location.pathname === '/console/layers'", what="owner signed in")
    driver.get(server + "/console/catalogue")
    wait_text(driver, "incoming-body", "规划公交线路")
    assert driver.execute_script("return document.querySelector('#incoming-body button')") is None
    sign_out(driver)
    approver, password = people["approver"]
    sign_in(driver, server, approver, password)
    wait_for(driver, "return location.pathname === '/console/layers'", what="admin signed in")
    driver.get(server + "/console/catalogue")
    wait_text(driver, "incoming-body", "规划公交线路")
    click(driver, "#incoming-body button.approve")
    wait_text(driver, "incoming-body", "已批准")
    shot(driver, "console-5-request-approved.png")
    no_serious_violations(driver)

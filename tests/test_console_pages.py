"""The console's pages on the server side (issue 13): who gets a page and who is sent to
sign-in or to the password page, the language switch, 404s, and the static files. The flows in a
browser are in tests/e2e/test_console.py."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from console import i18n
from geo.accounts import csrf
from geo.accounts.sessions import COOKIE
from geo.crs import list_crs, resolve
from tests.conftest import Dept
from tests.test_accounts import activate, create_account, new_browser, sign_in


def test_every_language_has_every_word() -> None:
    zh, en = i18n.MESSAGES["zh-CN"], i18n.MESSAGES["en"]
    assert zh.keys() == en.keys()
    assert all(value.strip() for value in [*zh.values(), *en.values()])


def test_a_page_without_a_session_leads_to_sign_in_and_back(app: FastAPI) -> None:
    browser = new_browser(app)
    home = browser.get("/console", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/console/layers"
    r = browser.get("/console/layers/roads?x=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Flayers%2Froads%3Fx%3D1"
    login = browser.get(r.headers["location"])
    assert login.status_code == 200
    assert 'data-next="/console/layers/roads?x=1"' in login.text


def test_sign_in_page_is_chinese_first_and_english_on_request(app: FastAPI) -> None:
    browser = new_browser(app)
    zh = browser.get("/console/login")
    assert '<html lang="zh-CN">' in zh.text and "登录" in zh.text and "Sign in" not in zh.text
    assert zh.headers["cache-control"] == "no-store"
    en = browser.get("/console/login?lang=en")
    assert '<html lang="en">' in en.text and "Sign in" in en.text
    assert en.cookies.get(i18n.COOKIE) == "en"
    # The cookie keeps the choice; an unknown language falls back to Chinese.
    assert '<html lang="en">' in browser.get("/console/login").text
    fresh = new_browser(app)
    assert '<html lang="zh-CN">' in fresh.get("/console/login?lang=xx").text


def test_next_never_leaves_the_console(app: FastAPI) -> None:
    browser = new_browser(app)
    for target in ("//evil.example/", "https://evil.example/", "/auth/logout", "/console//x"):
        page = browser.get("/console/login", params={"next": target})
        assert 'data-next="/console/layers"' in page.text, target


def test_unknown_pages_are_404_in_chinese(app: FastAPI) -> None:
    r = new_browser(app).get("/console/no-such-page")
    assert r.status_code == 404
    assert "页面不存在" in r.text and r.headers["content-type"].startswith("text/html")


def test_static_files_are_served_from_the_package(app: FastAPI) -> None:
    browser = new_browser(app)
    htmx = browser.get("/console-assets/vendor/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]
    assert browser.get("/console-assets/console.js").status_code == 200
    assert browser.get("/console-assets/nothing.js").status_code == 404
    # No CDN: every script and stylesheet of a page is our own.
    page = browser.get("/console/login").text
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert not url.startswith(("http:", "https:", "//")), url


def test_a_forced_password_change_comes_first(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
) -> None:
    dept = make_department()
    person = create_account(client, admin_headers, dept.code)
    browser = new_browser(app)
    sign_in(browser, person)
    r = browser.get("/console/layers", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/password?next=%2Fconsole%2Flayers"
    assert browser.get(r.headers["location"]).status_code == 200
    activate(new_browser(app), person)  # the password is changed (in another browser)
    sign_in(browser, person, "Haihe-Bridge-7th!")
    page = browser.get("/console/layers")
    assert page.status_code == 200
    token = csrf.token_for(browser.cookies[COOKIE])
    assert f'"X-CSRF-Token": "{token}"' in page.text
    assert f'data-department="{dept.code}"' in page.text and person.username in page.text

    # A layer's map opens in the console, where the session's cookie reads private layers.
    assert 'href="/console/map?layers=roads"' in browser.get("/console/layers/roads").text
    # The upload form offers only CRSs the API accepts (it once offered EPSG:4547, refused).
    offered = re.findall(
        r'<option value="([^"]+)"', page.text.split('name="crs"', 1)[1].split("</select>", 1)[0]
    )
    assert offered[:6] == ["EPSG:4326", "EPSG:4490", "GCJ02", "BD09", "EPSG:4548", "EPSG:3857"]
    assert {resolve(crs).id for crs in offered} == {info["id"] for info in list_crs()}


def test_an_ended_session_or_an_api_key_leads_to_sign_in(
    app: FastAPI, make_department: Callable[..., Dept]
) -> None:
    browser = new_browser(app)
    browser.cookies.set(COOKIE, "not-a-session")
    r = browser.get("/console/catalogue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
    assert 'geo_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    keyed = new_browser(app).get(
        "/console/layers", headers=make_department().editor, follow_redirects=False
    )
    assert keyed.status_code == 303 and keyed.headers["location"].startswith("/console/login")

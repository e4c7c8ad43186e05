"""Staff accounts (issue 11, part 2): people sign in with a username and a password, programs keep
their keys. Passwords are argon2id hashes meeting the strength policy; five failures lock an
account; a password an administrator set must be changed first; the web session is a cookie
(HttpOnly, SameSite=Strict, Secure over HTTPS) whose writes need a CSRF token; sessions end at
sign-out, when idle and at their lifetime. Each test uses its own TestClient as the browser, so
its cookie never reaches the suite's shared client."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import median

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from geo.accounts import passwords, policy
from geo.accounts.models import Account, AccountSession
from geo.accounts.sessions import COOKIE, hash_token
from geo.db import get_engine, session_scope
from geo.errors import ApiError
from tests.conftest import Dept, bearer
from tests.live_server import live_server
from tests.test_access_secrets import geo

STRONG = "Haihe-Bridge-7th!"


@dataclass(frozen=True)
class Person:
    department: str
    username: str
    password: str


def new_browser(app: FastAPI, https: bool = False) -> TestClient:
    return TestClient(app, base_url="https://testserver" if https else "http://testserver")


def create_account(
    client: TestClient, headers: dict[str, str], code: str, role: str = "editor"
) -> Person:
    username = "u" + secrets.token_hex(4)
    r = client.post(
        f"/departments/{code}/accounts",
        json={"username": username, "role": role, "display_name": "张三"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["must_change_password"] is True
    return Person(code, username, r.json()["temporary_password"])


def sign_in(browser: TestClient, person: Person, password: str | None = None) -> dict:
    r = browser.post(
        "/auth/login", json={"username": person.username, "password": password or person.password}
    )
    assert r.status_code == 200, r.text
    return r.json()


def activate(browser: TestClient, person: Person) -> tuple[Person, str]:
    """Sign in with the one-time password and choose a real one; returns the CSRF token."""
    token = sign_in(browser, person)["csrf_token"]
    r = browser.post(
        "/auth/password",
        json={"current_password": person.password, "new_password": STRONG},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200, r.text
    return Person(person.department, person.username, STRONG), token


def audit_targets(client: TestClient, admin_headers: dict[str, str], action: str) -> list[str]:
    r = client.get("/audit", params={"action": action, "limit": 1000}, headers=admin_headers)
    assert r.status_code == 200, r.text
    return [e["target"] for e in r.json()["events"]]


@pytest.fixture
def dept(make_department: Callable[..., Dept]) -> Dept:
    return make_department()


@pytest.fixture
def person(client: TestClient, admin_headers: dict[str, str], dept: Dept) -> Person:
    return create_account(client, admin_headers, dept.code)


# --- the password policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Ab1!short", "length"),
        ("x" * 100 + "A1!" + "y" * 30, "length"),
        ("alllowercase-letters", "classes"),
        ("ALLCAPS12345", "classes"),
        ("Zhang.San2026!", "username"),
        ("Password123!", "common"),
        ("Admin@12345", "common"),
        ("1qaz@WSX3edc", "common"),
        ("Abcdefgh12", "common"),
        ("Ab1!Ab1!Ab1!", "common"),
    ],
)
def test_policy_names_the_rule_a_password_fails(password: str, rule: str) -> None:
    with pytest.raises(ApiError) as refused:
        policy.check(password, "zhang.san")
    assert refused.value.status == 400
    assert refused.value.code == "WeakPassword"
    assert refused.value.details == {"rule": rule}


def test_policy_accepts_strong_and_generated_passwords() -> None:
    for password in (STRONG, "Kx7#mQ2pLw", "Tj@2026address"):
        policy.check(password, "zhang.san")
    for _ in range(50):
        policy.check(passwords.temporary_password(), "zhang.san")


def test_a_password_below_the_policy_is_a_400_and_changes_nothing(
    app: FastAPI, person: Person
) -> None:
    browser = new_browser(app)
    token = sign_in(browser, person)["csrf_token"]
    r = browser.post(
        "/auth/password",
        json={"current_password": person.password, "new_password": "tianjin2026"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "WeakPassword"
    assert r.json()["details"]["rule"] == "classes"
    # Nothing written: the one-time password still works and still has to be changed.
    assert sign_in(new_browser(app), person)["must_change_password"] is True
    reused = browser.post(
        "/auth/password",
        json={"current_password": person.password, "new_password": person.password},
        headers={"X-CSRF-Token": token},
    )
    assert reused.status_code == 400 and reused.json()["details"]["rule"] == "reused"


def test_passwords_are_stored_as_argon2id_hashes(person: Person) -> None:
    with session_scope() as session:
        stored = session.scalar(
            select(Account.password_hash).where(Account.username == person.username)
        )
    assert stored is not None and stored.startswith("$argon2id$")
    assert person.password not in stored


def test_a_hash_made_with_older_parameters_is_replaced_at_sign_in(
    app: FastAPI, person: Person
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    with session_scope() as session:
        account = session.scalars(select(Account).where(Account.username == person.username)).one()
        account.password_hash = weak.hash(person.password)
    assert passwords.needs_rehash(weak.hash("x"))
    sign_in(new_browser(app), person)
    with session_scope() as session:
        rehashed = session.scalar(
            select(Account.password_hash).where(Account.username == person.username)
        )
    assert rehashed is not None and not passwords.needs_rehash(rehashed)
    assert passwords.verify(rehashed, person.password)


# --- signing in ----------------------------------------------------------------------------------


def test_forced_change_on_first_sign_in(app: FastAPI, person: Person) -> None:
    browser = new_browser(app)
    signed = sign_in(browser, person)
    assert signed["must_change_password"] is True and signed["username"] == person.username
    refused = browser.get(f"/departments/{person.department}/accounts")
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "PasswordChangeRequired"
    assert browser.get("/collections").json()["code"] == "PasswordChangeRequired"
    me = browser.get("/auth/me")
    assert me.status_code == 200 and me.json()["must_change_password"] is True
    changed = browser.post(
        "/auth/password",
        json={"current_password": person.password, "new_password": STRONG},
        headers={"X-CSRF-Token": signed["csrf_token"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["must_change_password"] is False
    assert browser.get("/collections").status_code == 200
    # The one-time password is gone; the new one signs in.
    wrong = new_browser(app).post(
        "/auth/login", json={"username": person.username, "password": person.password}
    )
    assert wrong.status_code == 401
    assert sign_in(new_browser(app), person, STRONG)["must_change_password"] is False


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], person: Person
) -> None:
    browser = new_browser(app)
    unknown = "nobody" + secrets.token_hex(3)

    def attempt(username: str) -> tuple[float, tuple[int, str]]:
        started = time.perf_counter()
        r = browser.post("/auth/login", json={"username": username, "password": "Wrong-pass-1"})
        return time.perf_counter() - started, (r.status_code, r.text)

    wrong = [attempt(person.username) for _ in range(3)]
    missing = [attempt(unknown) for _ in range(3)]
    assert {answer for _, answer in wrong} == {answer for _, answer in missing}
    status, body = wrong[0][1]
    assert status == 401 and "SignInFailed" in body
    assert COOKIE not in browser.cookies
    # Unknown users are checked against a dummy hash: as slow as a real check.
    assert median(t for t, _ in missing) > 0.5 * median(t for t, _ in wrong)
    failed = audit_targets(client, admin_headers, "auth.signin.failed")
    assert person.username in failed and unknown in failed


def test_five_failures_lock_the_account(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], person: Person
) -> None:
    browser = new_browser(app)
    answers = set()
    for _ in range(5):
        r = browser.post("/auth/login", json={"username": person.username, "password": "Nope-123!"})
        answers.add((r.status_code, r.text))
    # Locked: even the right password is refused, with the same answer as any failure.
    right = browser.post(
        "/auth/login", json={"username": person.username, "password": person.password}
    )
    answers.add((right.status_code, right.text))
    assert len(answers) == 1 and right.status_code == 401
    assert "locked for 15 minutes after 5 failures" in right.json()["message"]
    assert person.username in audit_targets(client, admin_headers, "account.lockout")
    listed = client.get(f"/departments/{person.department}/accounts", headers=admin_headers)
    (entry,) = [a for a in listed.json()["accounts"] if a["username"] == person.username]
    assert entry["locked_until"] is not None
    # Once the lockout is over, the right password signs in again.
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "UPDATE accounts SET locked_until = now() - interval '1 second' WHERE username = :u"
            ),
            {"u": person.username},
        )
    assert sign_in(browser, person)["username"] == person.username


def test_the_session_cookie_attributes_and_what_is_stored(app: FastAPI, person: Person) -> None:
    browser = new_browser(app)
    r = browser.post("/auth/login", json={"username": person.username, "password": person.password})
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    token = browser.cookies[COOKIE]
    with session_scope() as session:
        stored = list(session.scalars(select(AccountSession.token_hash)))
    assert hash_token(token) in stored and token not in stored
    secure = new_browser(app, https=True).post(
        "/auth/login", json={"username": person.username, "password": person.password}
    )
    assert "Secure" in secure.headers["set-cookie"]
    # X-Forwarded-Proto is uvicorn's to honour (from FORWARDED_ALLOW_IPS), never the app's.
    claimed = new_browser(app).post(
        "/auth/login",
        json={"username": person.username, "password": person.password},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" not in claimed.headers["set-cookie"]


# --- cookie writes and CSRF ----------------------------------------------------------------------


def test_cookie_writes_need_the_csrf_token(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    chief = create_account(client, admin_headers, dept.code, role="admin")
    browser = new_browser(app)
    chief, token = activate(browser, chief)
    url = f"/departments/{dept.code}/keys"
    before = client.get(url, headers=admin_headers).json()["keys"]
    missing = browser.post(url, json={"role": "viewer"})
    assert missing.status_code == 403 and missing.json()["code"] == "CsrfTokenMissing"
    forged = browser.post(url, json={"role": "viewer"}, headers={"X-CSRF-Token": "0" * 64})
    assert forged.status_code == 403 and forged.json()["code"] == "CsrfTokenInvalid"
    assert client.get(url, headers=admin_headers).json()["keys"] == before  # nothing written
    # GET /auth/me hands the page the same token; with it the write goes through.
    assert browser.get("/auth/me").json()["csrf_token"] == token
    made = browser.post(url, json={"role": "viewer"}, headers={"X-CSRF-Token": token})
    assert made.status_code == 201, made.text
    # Reads need no token, and a key caller never needs one (a key is not sent by browsers).
    assert browser.get(url).status_code == 200
    keyed = client.post(url, json={"role": "viewer"}, headers=admin_headers)
    assert keyed.status_code == 201


def test_an_account_acts_with_its_department_and_role(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    dept: Dept,
    caplog: pytest.LogCaptureFixture,
) -> None:
    viewer = create_account(client, admin_headers, dept.code, role="viewer")
    browser = new_browser(app)
    viewer, token = activate(browser, viewer)
    me = browser.get("/auth/me").json()
    assert (me["department"], me["role"], me["account"], me["key_prefix"]) == (
        dept.code,
        "viewer",
        viewer.username,
        None,
    )
    refused = browser.post(
        f"/departments/{dept.code}/keys", json={"role": "viewer"}, headers={"X-CSRF-Token": token}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "Forbidden"
    # The request log names the account.
    with caplog.at_level(logging.INFO, logger="geo.request"):
        browser.get("/auth/me")
    (line,) = [r for r in caplog.records if r.name == "geo.request" and r.route == "/auth/me"]
    assert line.account == viewer.username and line.department == dept.code
    assert line.key_prefix is None
    assert f"user={viewer.username}" in line.getMessage()


# --- sessions end --------------------------------------------------------------------------------


def test_sign_out_ends_the_session(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], person: Person
) -> None:
    browser = new_browser(app)
    person, token = activate(browser, person)
    cookie = browser.cookies[COOKIE]
    without = browser.post("/auth/logout")
    assert without.status_code == 403 and without.json()["code"] == "CsrfTokenMissing"
    out = browser.post("/auth/logout", headers={"X-CSRF-Token": token})
    assert out.status_code == 200, out.text
    assert (
        'geo_session=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    )
    replay = new_browser(app)
    replay.cookies.set(COOKIE, cookie)
    gone = replay.get("/auth/me")
    assert gone.status_code == 401 and gone.json()["code"] == "SessionInvalid"
    assert person.username in audit_targets(client, admin_headers, "auth.signout")
    assert person.username in audit_targets(client, admin_headers, "auth.signin")


@pytest.mark.parametrize(
    ("column", "age", "message"),
    [
        ("last_seen_at", timedelta(minutes=31), "idle"),
        ("expires_at", timedelta(seconds=1), "lifetime"),
    ],
)
def test_sessions_end_when_idle_and_at_their_lifetime(
    app: FastAPI, person: Person, column: str, age: timedelta, message: str
) -> None:
    browser = new_browser(app)
    sign_in(browser, person)
    assert browser.get("/auth/me").status_code == 200
    digest = hash_token(browser.cookies[COOKIE])
    with get_engine().begin() as conn:
        conn.execute(
            text(f"UPDATE account_sessions SET {column} = :at WHERE token_hash = :h"),
            {"at": datetime.now(UTC) - age, "h": digest},
        )
    over = browser.get("/auth/me")
    assert over.status_code == 401, over.text
    assert over.json()["code"] == "SessionExpired" and message in over.json()["message"]
    assert "Max-Age=0" in over.headers["set-cookie"]
    with session_scope() as session:
        assert (
            session.scalar(select(AccountSession).where(AccountSession.token_hash == digest))
            is None
        )


# --- administrators manage accounts --------------------------------------------------------------


def test_department_admin_manages_accounts_of_its_own_department_only(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
) -> None:
    own, other = make_department(), make_department()
    key = client.post(
        f"/departments/{own.code}/keys", json={"role": "admin"}, headers=admin_headers
    )
    dept_admin = bearer(key.json()["key"])
    username = "x" + secrets.token_hex(4)
    refused = client.post(
        f"/departments/{other.code}/accounts",
        json={"username": username, "role": "editor"},
        headers=dept_admin,
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["details"]["rule"] == "own-department"
    assert client.get(f"/departments/{other.code}/accounts", headers=dept_admin).status_code == 403
    listed = client.get(f"/departments/{other.code}/accounts", headers=admin_headers).json()
    assert username not in {a["username"] for a in listed["accounts"]}  # nothing written
    # A signed-in department admin is held to the same rule.
    chief = create_account(client, dept_admin, own.code, role="admin")
    browser = new_browser(app)
    chief, token = activate(browser, chief)
    across = browser.post(
        f"/departments/{other.code}/accounts",
        json={"username": username, "role": "editor"},
        headers={"X-CSRF-Token": token},
    )
    assert across.status_code == 403 and across.json()["details"]["rule"] == "own-department"
    made = browser.post(
        f"/departments/{own.code}/accounts",
        json={"username": username, "role": "editor"},
        headers={"X-CSRF-Token": token},
    )
    assert made.status_code == 201, made.text
    assert username in audit_targets(client, admin_headers, "account.create")[0]
    platform = browser.post(
        "/departments",
        json={"name": "越权", "code": "d-" + secrets.token_hex(3)},
        headers={"X-CSRF-Token": token},
    )
    assert platform.status_code == 403 and platform.json()["details"]["rule"] == "platform-admin"


def test_account_bad_input(
    client: TestClient, admin_headers: dict[str, str], person: Person
) -> None:
    url = f"/departments/{person.department}/accounts"
    taken = client.post(
        url, json={"username": person.username, "role": "viewer"}, headers=admin_headers
    )
    assert taken.status_code == 409
    bad = client.post(url, json={"username": "Bad Name", "role": "viewer"}, headers=admin_headers)
    assert bad.status_code == 400 and "username" in bad.json()["message"]
    role = client.post(url, json={"username": "okname", "role": "root"}, headers=admin_headers)
    assert role.status_code == 400
    missing = client.post(
        "/departments/no-such-dept/accounts",
        json={"username": "abc", "role": "viewer"},
        headers=admin_headers,
    )
    assert missing.status_code == 404
    gone = client.post(f"{url}/nobody-here/reset", headers=admin_headers)
    assert gone.status_code == 404


def test_reset_and_disable(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], person: Person
) -> None:
    browser = new_browser(app)
    person, _ = activate(browser, person)
    base = f"/departments/{person.department}/accounts/{person.username}"
    reset = client.post(f"{base}/reset", headers=admin_headers)
    assert reset.status_code == 200, reset.text
    temporary = reset.json()["temporary_password"]
    assert reset.json()["must_change_password"] is True
    # The reset ended the person's sessions; the old password no longer works.
    assert browser.get("/auth/me").json()["code"] == "SessionInvalid"
    assert (
        new_browser(app)
        .post("/auth/login", json={"username": person.username, "password": STRONG})
        .status_code
        == 401
    )
    again = new_browser(app)
    assert sign_in(again, person, temporary)["must_change_password"] is True
    disabled = client.post(f"{base}/disable", headers=admin_headers)
    assert disabled.status_code == 200 and disabled.json()["disabled_at"]
    assert again.get("/auth/me").status_code == 401
    refused = new_browser(app).post(
        "/auth/login", json={"username": person.username, "password": temporary}
    )
    assert refused.status_code == 401 and refused.json()["code"] == "SignInFailed"
    for action in ("account.reset", "account.disable"):
        assert f"{person.department}/{person.username}" in audit_targets(
            client, admin_headers, action
        )


def test_cli_creates_resets_and_disables_accounts(
    app: FastAPI, client: TestClient, admin_headers: dict[str, str], dept: Dept
) -> None:
    username = "cli" + secrets.token_hex(3)
    made = geo("account", "create", dept.code, username, "--role", "editor", "--name", "李四")
    assert made.returncode == 0, made.stderr
    assert "一次性密码" in made.stderr
    temporary = made.stdout.strip()
    person = Person(dept.code, username, temporary)
    assert sign_in(new_browser(app), person)["must_change_password"] is True
    reset = geo("account", "reset", dept.code, username)
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() != temporary
    sign_in(new_browser(app), person, reset.stdout.strip())
    disabled = geo("account", "disable", dept.code, username)
    assert disabled.returncode == 0 and "已停用" in disabled.stderr
    refused = new_browser(app).post(
        "/auth/login", json={"username": username, "password": reset.stdout.strip()}
    )
    assert refused.status_code == 401
    assert geo("account", "create", dept.code, username).returncode == 2  # exists already
    listed = geo("account", "list", dept.code)
    assert username in listed.stdout and "已停用" in listed.stdout


@pytest.mark.parametrize(("trusted", "secure"), [("127.0.0.1", True), ("10.9.9.9", False)])
def test_x_forwarded_proto_counts_only_from_trusted_proxies(
    person: Person, trusted: str, secure: bool
) -> None:
    """`geo serve` as run in production: uvicorn honours X-Forwarded-Proto from the addresses in
    FORWARDED_ALLOW_IPS only, and the cookie is Secure exactly when it did."""
    with live_server(env={"FORWARDED_ALLOW_IPS": trusted}) as server:
        r = httpx.post(
            f"{server.base}/auth/login",
            json={"username": person.username, "password": person.password},
            headers={"X-Forwarded-Proto": "https"},
            timeout=30,
        )
    assert r.status_code == 200, r.text
    assert ("Secure" in r.headers["set-cookie"]) is secure

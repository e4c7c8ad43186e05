"""Account actions, for the console (geo.accounts.cli) and HTTP (geo.routers.accounts) alike:
create, list, reset, disable, sign in, sign out, change a password. Each records itself in the
audit trail in the caller's transaction.

Signing in answers every failure the same way (a 401 `SignInFailed`): unknown username, wrong
password, locked or disabled account, so the answer tells no one which usernames exist; an
unknown username is checked against a dummy hash so that it takes as long. A failure is
committed before the 401 leaves (the failure count and its audit entry must survive the error
answer, whose transaction would otherwise roll back)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo import audit
from geo.accounts import passwords, policy, sessions
from geo.accounts.models import Account
from geo.auth import ROLE_RANK, Principal
from geo.departments import get_department
from geo.errors import ApiError
from geo.settings import get_settings

USERNAME_RE = re.compile(r"[a-z][a-z0-9._-]{2,63}")  # fullmatch


@dataclass(frozen=True)
class SignIn:
    account: Account
    department: str
    token: str  # the session cookie's value, shown to this response only


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def account_dict(account: Account) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "username": account.username,
        "display_name": account.display_name,
        "department": account.department.code,
        "role": account.role,
        "must_change_password": account.must_change_password,
        "locked_until": _iso(account.locked_until)
        if account.locked_until and account.locked_until > now
        else None,
        "disabled_at": _iso(account.disabled_at),
        "created_at": _iso(account.created_at),
        "password_changed_at": _iso(account.password_changed_at),
        "last_signin_at": _iso(account.last_signin_at),
    }


def as_principal(account: Account, client: str | None) -> Principal:
    return Principal(account.department.code, account.role, None, client, account=account.username)


def _check_role(role: str) -> None:
    if role not in ROLE_RANK:
        raise ApiError(
            400, "InvalidRole", f"role must be one of {', '.join(ROLE_RANK)}, not {role!r}"
        )


def create_account(
    session: Session,
    who: Principal,
    code: str,
    username: str,
    role: str,
    display_name: str | None = None,
) -> tuple[Account, str]:
    """A new account in department `code` with a one-time password, returned to be handed over
    (never stored): the person must change it at first sign-in."""
    if not USERNAME_RE.fullmatch(username):
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"username {username!r} must be 3-64 lowercase letters, digits, '.', '-' or '_', "
            "starting with a letter",
            {"field": "username"},
        )
    _check_role(role)
    department = get_department(session, code)
    temporary = passwords.temporary_password()
    account = Account(
        department=department,
        username=username,
        display_name=display_name,
        role=role,
        password_hash=passwords.hash_password(temporary),
        must_change_password=True,
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, "Conflict", f"an account {username!r} exists already") from None
    audit.record(session, who, "account.create", f"{code}/{username}", {"role": role})
    return account, temporary


def list_accounts(session: Session, code: str) -> list[dict[str, Any]]:
    department = get_department(session, code)
    accounts = session.scalars(
        select(Account).where(Account.department_id == department.id).order_by(Account.username)
    )
    return [account_dict(a) for a in accounts]


def get_account(session: Session, code: str, username: str) -> Account:
    """The account `username` of department `code`; another department's is a 404, as if it
    did not exist (a department admin learns nothing about other departments' staff)."""
    department = get_department(session, code)
    account = session.scalar(
        select(Account)
        .where(Account.department_id == department.id, Account.username == username)
        .with_for_update()
    )
    if account is None:
        raise ApiError(404, "NotFound", f"department {code!r} has no account {username!r}")
    return account


def find_account(session: Session, username: str) -> Account:
    account = session.scalar(select(Account).where(Account.username == username))
    if account is None:
        raise ApiError(404, "NotFound", f"no account {username!r}")
    return account


def reset_password(
    session: Session, who: Principal, code: str, username: str
) -> tuple[Account, str]:
    """A new one-time password (the person must change it at next sign-in); unlocks the
    account and ends its sessions."""
    account = get_account(session, code, username)
    temporary = passwords.temporary_password()
    account.password_hash = passwords.hash_password(temporary)
    account.must_change_password = True
    account.failed_signins, account.locked_until = 0, None
    sessions.end_all(session, account.id)
    audit.record(session, who, "account.reset", f"{code}/{username}")
    return account, temporary


def disable_account(session: Session, who: Principal, code: str, username: str) -> Account:
    """No more sign-ins, and its sessions end now. Accounts are kept, never deleted."""
    account = get_account(session, code, username)
    if account.disabled_at is None:
        account.disabled_at = datetime.now(UTC)
    sessions.end_all(session, account.id)
    audit.record(session, who, "account.disable", f"{code}/{username}")
    return account


def _failed(
    session: Session, who: Principal, username: str, reason: str, account: Account | None
) -> ApiError:
    """Count a failure (locking the account after too many), audit it, and commit both before
    the 401 goes out."""
    settings = get_settings()
    if account is not None and reason == "password":
        account.failed_signins += 1
        if account.failed_signins >= settings.signin_max_failures:
            account.locked_until = datetime.now(UTC) + timedelta(
                minutes=settings.signin_lockout_minutes
            )
            account.failed_signins = 0
            audit.record(
                session,
                who,
                "account.lockout",
                username,
                {"minutes": settings.signin_lockout_minutes},
            )
    audit.record(session, who, "auth.signin.failed", username, {"reason": reason})
    session.commit()
    return ApiError(
        401,
        "SignInFailed",
        f"wrong username or password, or the account is disabled, or locked for "
        f"{settings.signin_lockout_minutes} minutes after {settings.signin_max_failures} "
        "failures in a row",
    )


def sign_in(session: Session, username: str, password: str, client: str | None) -> SignIn:
    account = session.scalar(select(Account).where(Account.username == username).with_for_update())
    matches = passwords.verify(account.password_hash if account else None, password)
    if account is None:
        raise _failed(session, Principal(None, None, None, client), username, "unknown", None)
    who = as_principal(account, client)
    now = datetime.now(UTC)
    if account.disabled_at is not None:
        raise _failed(session, who, username, "disabled", account)
    if account.locked_until is not None and account.locked_until > now:
        raise _failed(session, who, username, "locked", account)
    if not matches:
        raise _failed(session, who, username, "password", account)
    if passwords.needs_rehash(account.password_hash):
        account.password_hash = passwords.hash_password(password)
    account.failed_signins, account.locked_until = 0, None
    account.last_signin_at = now
    token = sessions.start(session, account)
    audit.record(session, who, "auth.signin", username)
    return SignIn(account, account.department.code, token)


def sign_out(session: Session, who: Principal, token: str) -> None:
    sessions.end(session, token)
    audit.record(session, who, "auth.signout", who.account)


def change_password(
    session: Session, who: Principal, current: str, new: str, token: str
) -> Account:
    """The signed-in person's own password. A wrong current password counts as a failed
    sign-in (a stolen cookie must not guess it at leisure); the new one must meet the policy
    and differ from the current one. Every other session of the account ends."""
    account = session.scalar(
        select(Account).where(Account.username == who.account).with_for_update()
    )
    if account is None:  # the session resolved a moment ago; its account cannot vanish
        raise ApiError(401, "SessionInvalid", "the session's account no longer exists")
    if account.locked_until is not None and account.locked_until > datetime.now(UTC):
        raise ApiError(
            403,
            "AccountLocked",
            f"the account is locked until {account.locked_until.isoformat()} after failed "
            "password checks",
        )
    if not passwords.verify(account.password_hash, current):
        _failed(session, who, account.username, "password", account)
        raise ApiError(
            403,
            "WrongPassword",
            "current_password is not this account's password",
            {"field": "current_password"},
        )
    policy.check(new, account.username, (account.department.code, account.department.name))
    if passwords.verify(account.password_hash, new):
        raise ApiError(
            400,
            "WeakPassword",
            "the new password must differ from the current one",
            {"rule": "reused"},
        )
    account.password_hash = passwords.hash_password(new)
    account.must_change_password = False
    account.password_changed_at = datetime.now(UTC)
    resolved = sessions.resolve(session, token)
    sessions.end_all(session, account.id, keep=getattr(resolved, "session_id", None))
    audit.record(session, who, "account.password", account.username)
    return account

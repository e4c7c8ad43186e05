"""`geo account create|reset|disable|list`: the console's account management, recorded in the
audit trail as the console (department `platform`, key `console`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="职员账号 Staff accounts (people; programs use keys)", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _hand_over(username: str, temporary: str) -> None:
    err.print(
        f"账号 [bold]{username}[/bold] 的一次性密码如下（只显示这一次，首次登录须修改）"
        f" / one-time password for {username} (shown once; to be changed at first sign-in):"
    )
    print(temporary)


@app.command("create")
def create(
    department: Annotated[str, typer.Argument(help="部门代码 department code")],
    username: Annotated[str, typer.Argument(help="用户名 username")],
    role: Annotated[str, typer.Option(help="viewer, editor or admin")] = "viewer",
    name: Annotated[str | None, typer.Option(help="姓名 the person's name")] = None,
) -> None:
    """创建账号并打印一次性密码 Create an account and print its one-time password."""
    from geo.accounts import service
    from geo.cli import _console_actor as console_actor
    from geo.db import session_scope

    with session_scope() as session:
        _, temporary = service.create_account(
            session, console_actor(), department, username, role, name
        )
    _hand_over(username, temporary)


@app.command("reset")
def reset(department: str, username: str) -> None:
    """重置密码（解锁，结束其会话）Reset a password: unlocks the account, ends its sessions."""
    from geo.accounts import service
    from geo.cli import _console_actor as console_actor
    from geo.db import session_scope

    with session_scope() as session:
        _, temporary = service.reset_password(session, console_actor(), department, username)
    _hand_over(username, temporary)


@app.command("disable")
def disable(department: str, username: str) -> None:
    """停用账号（立即结束其会话）Disable an account; its sessions end at once."""
    from geo.accounts import service
    from geo.cli import _console_actor as console_actor
    from geo.db import session_scope

    with session_scope() as session:
        service.disable_account(session, console_actor(), department, username)
    err.print(f"账号 {username} 已停用 / account {username} disabled")


@app.command("list")
def list_(department: str) -> None:
    """列出部门的账号 List a department's accounts."""
    from geo.accounts import service
    from geo.db import session_scope

    with session_scope() as session:
        for a in service.list_accounts(session, department):
            state = "已停用" if a["disabled_at"] else ""
            if not state and a["must_change_password"]:
                state = "待改密码"
            out.print(f"{a['username']:<24} {a['role']:<8} {a['display_name'] or ''} {state}")

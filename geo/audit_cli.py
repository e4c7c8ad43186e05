"""`geo audit ...`: list entries, seal them, verify the chain, export CSV for an inspector."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="审计日志 The audit trail", no_args_is_help=True)

Department = Annotated[str | None, typer.Option(help="部门代码 department code")]
Action = Annotated[str | None, typer.Option(help="操作 e.g. key.create, layer.read")]
Since = Annotated[datetime | None, typer.Option(help="起始时间（含）ISO 8601, inclusive")]
Until = Annotated[datetime | None, typer.Option(help="截止时间（不含）ISO 8601, exclusive")]
ANCHOR = re.compile(r"^([0-9]{1,18}):([0-9a-f]{64})$")


@app.command("list")
def list_entries(
    department: Department = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """列出最新的审计记录（每行一个 JSON）Print the newest entries as JSON lines."""
    from geo import audit
    from geo.db import session_scope

    with session_scope() as session:
        for event in audit.query(session, department, action, since, until, limit):
            print(json.dumps(event, ensure_ascii=False))


@app.command("seal")
def seal_entries() -> None:
    """封存已提交的审计记录（写入哈希链）Chain every committed entry not sealed yet."""
    from geo.audit.chain import seal

    sealed = seal(wait=True)
    typer.echo(f"已封存 {sealed} 条审计记录 (sealed {sealed} entries)", err=True)


@app.command("verify")
def verify_chain(
    anchor: Annotated[
        str | None,
        typer.Option(help="上次核查记下的链头 SEQ:HASH, a head noted at an earlier check"),
    ] = None,
    seal_first: Annotated[
        bool, typer.Option("--seal/--no-seal", help="先封存已提交的记录 seal first")
    ] = True,
) -> None:
    """核查审计哈希链：完整时退出码 0，否则 1 并指出第一条被改动或删除的记录。

    Verify the hash chain: exit 0 when it holds, 1 naming the first broken entry."""
    from geo.audit.chain import seal, verify
    from geo.db import session_scope

    mark = None
    if anchor is not None:
        found = ANCHOR.fullmatch(anchor)
        if not found:
            raise typer.BadParameter(
                "应为 SEQ:HASH（64 位十六进制）expected SEQ:HASH", param_hint="--anchor"
            )
        mark = (int(found.group(1)), found.group(2))
    if seal_first:
        seal(wait=True)
    with session_scope() as session:
        report = verify(session, mark)
    head = f"#{report.head_seq} {report.head_hash}"
    if report.broken is not None:
        b = report.broken
        typer.echo(
            f"审计链被破坏：第一处问题在第 {b.seq} 条"
            f"{f'（编号 {b.id}）' if b.id is not None else ''}：{_PROBLEMS[b.problem]}。"
            f"此前 {report.sealed} 条完好。\nAudit chain BROKEN: {b.message}",
        )
        raise typer.Exit(1)
    if report.anchor_ok is False:
        typer.echo(
            f"审计链与上次记下的链头 {anchor} 不符：之前的记录被改写。\n"
            f"Audit chain does not contain the anchor {anchor}: earlier entries were rewritten."
        )
        raise typer.Exit(1)
    typer.echo(
        f"审计链完整：已封存 {report.sealed} 条，待封存 {report.unsealed} 条；链头 {head}"
        f"{'；与上次记下的链头一致' if report.anchor_ok else ''}\n"
        f"Audit chain OK: {report.sealed} sealed, {report.unsealed} not sealed yet; head {head}"
    )


_PROBLEMS = {
    "altered": "内容被改动",
    "missing": "记录缺失（被删除或序号被改）",
    "head": "最新的记录被删除，或链头被改动",
}


@app.command("export")
def export_csv(
    path: Annotated[Path, typer.Argument(help="写入的 CSV 文件，- 为标准输出 file, - for stdout")],
    department: Department = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1)] = 1_000_000,
) -> None:
    """导出审计记录为 CSV（UTF-8 BOM，中文表头）Export entries as CSV for auditors."""
    from geo.audit.export import csv_chunks
    from geo.audit.listing import Filters

    chunks = csv_chunks(Filters(department, action, since, until), limit)
    if str(path) == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        return
    with path.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    typer.echo(f"已导出到 {path} (written)", err=True)

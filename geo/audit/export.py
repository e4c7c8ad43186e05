"""The audit trail as CSV for auditors (GET /audit.csv, `geo audit export`).

UTF-8 with a byte order mark, so Excel on a Chinese Windows opens it as UTF-8 rather than GBK;
one header row of Chinese column names (HEADER: the JSON field each holds is beside it); oldest
first; times in Beijing time (+08:00) with microseconds. Every field the chain hashes is there
(geo.audit.chain), with the entry's place and hash, so a copy can be checked on its own. A cell
Excel would take for a formula (=, +, -, @ first) gets a leading apostrophe (OWASP's advice
against CSV injection): targets and details carry names others typed.

Streamed in batches from a server-side cursor: memory stays flat whatever the row limit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

import orjson

from geo.audit.listing import Filters, select_events
from geo.audit.models import AuditEvent
from geo.db import session_scope

BOM = "\ufeff"
BEIJING = timezone(timedelta(hours=8))
BATCH = 1000
# (column header, JSON field of GET /audit it holds)
HEADER = (
    ("编号", "id"),
    ("时间", "at"),
    ("部门", "department"),
    ("密钥", "key"),
    ("账户", "account"),
    ("角色", "role"),
    ("操作", "action"),
    ("对象", "target"),
    ("客户端地址", "client"),
    ("详情", "details"),
    ("读取计数键", "read_slot"),
    ("链序号", "seq"),
    ("哈希", "hash"),
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def row(e: AuditEvent) -> list[str]:
    details = orjson.dumps(e.details).decode() if e.details is not None else None
    at = e.at.astimezone(BEIJING).isoformat(timespec="microseconds")
    values = (e.id, at, e.department_code, e.key_prefix, e.account, e.role, e.action, e.target)
    return [_cell(v) for v in (*values, e.client, details, e.read_slot, e.seq, e.hash)]


def csv_chunks(filters: Filters, limit: int) -> Iterator[bytes]:
    """The file, a batch of rows per chunk. Its own transaction: a streamed response outlives
    the request's session."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow([name for name, _ in HEADER])
    with session_scope() as session:
        stmt = select_events(filters, newest_first=False).limit(limit)
        for n, event in enumerate(session.scalars(stmt, execution_options={"yield_per": BATCH})):
            writer.writerow(row(event))
            if n % BATCH == BATCH - 1:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()

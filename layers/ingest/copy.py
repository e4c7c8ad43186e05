"""Bulk writes with COPY: the only way features enter a table in bulk (never row INSERTs).

One COPY stays open across the batches of an upload, so PostgreSQL stores batch *k* while
Python parses batch *k + 1* (a COPY per batch would wait for the server at every batch end), and
psycopg's queued writer sends the data from its own thread. ``Copy.write_row`` formats rows in
C; geometries travel as hex EWKB, which PostGIS parses straight into the typed ``geom`` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Any

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.orm import Session

from geo.db import raw_connection
from layers.schema import quote_ident


class CopyStream:
    """A COPY into one table, opened on the first write and kept open until :meth:`close`.

    Close it before any other statement on the session (DDL that widens the table, the finishing
    statements); :meth:`abort` ends it with an error, so the server discards the rows.
    """

    def __init__(self, session: Session, table: str, columns: Sequence[str]) -> None:
        self.session = session
        self.table = table
        self.columns = list(columns)
        self._stack: ExitStack | None = None
        self._copy: Any = None

    def write(self, rows: Iterable[Sequence[Any]]) -> int:
        if self._stack is None:
            stack = ExitStack()
            cursor = stack.enter_context(raw_connection(self.session).cursor())
            cols = ", ".join(quote_ident(c) for c in self.columns)
            self._copy = stack.enter_context(
                cursor.copy(
                    f"COPY {self.table} ({cols}) FROM STDIN", writer=QueuedLibpqWriter(cursor)
                )
            )
            self._stack = stack
        count = 0
        for row in rows:
            self._copy.write_row(row)
            count += 1
        return count

    def close(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.close()

    def abort(self, exc: BaseException) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.__exit__(type(exc), exc, exc.__traceback__)

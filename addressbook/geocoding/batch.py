"""Batch geocoding: a CSV file or a JSON list in, the same rows out with the match columns added.

Everything that can make the request fail (encoding, a missing column, malformed JSON) is checked
before the first byte goes out, because a streamed response has already said 200. Then rows go
through `geocoder.geocode_many` CHUNK at a time, so that the exact matches of a whole chunk are
one statement, and each chunk is written out as soon as it is done: a long file shows progress
in the response itself (and in the CLI's progress bar), and memory stays flat. Each chunk runs in
its own short read transaction.

Reading addresses is Python work (the parser), so a file of more than one chunk is spread over
worker processes, one per CPU up to PROCESSES, a few chunks ahead of the writer and written back
in order. The workers are started on the first large batch and kept; each builds its own copy of
the dictionary and follows the library's data versions like any other worker.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any, Final, TypeVar

import numpy as np
import orjson

from addressbook.geocoding.geocoder import Candidate, geocode_many
from geo import http, text_files
from geo.crs import STORAGE_CRS, resolve, transform_xy
from geo.db import session_scope
from geo.errors import ApiError

CHUNK: Final = 1000
MATCH_COLUMNS: Final = (
    "address_id",
    "code",
    "standard",
    "level",
    "score",
    "confident",
    "lon",
    "lat",
)
# Header names taken for the address column when `column=` is not given.
ADDRESS_NAMES: Final = ("address", "addr", "地址", "详细地址", "标准地址")
JSON_TEXT_KEYS: Final = ("address", "text", "q")
MAX_ITEMS: Final = 1_000_000
PROCESSES: Final = min(4, os.cpu_count() or 1)
Progress = Callable[[int], None]
Row = TypeVar("Row")


def _check_text(stream: IO[bytes]) -> str:
    """The upload's encoding (geo.text_files: the whole file read once, then rewound), and a
    NUL found before the 200 goes out: PostgreSQL cannot take it, so it is a 400 here rather
    than a stream cut off mid-way."""
    found = text_files.detect(stream)
    if found.nul_line is not None:
        raise ApiError(
            400,
            "InvalidCharacter",
            f"the file holds a NUL byte on line {found.nul_line}; text cannot hold NUL",
            {"line": found.nul_line},
        )
    return found.codec


def _check_csv(stream: IO[bytes], encoding: str) -> None:
    """Parse the whole upload once as CSV, then rewind: what the csv module refuses (a field
    over its 128 KiB limit, for one) is a 400 found before the 200 goes out, not a stream cut
    off mid-way."""
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    reader = csv.reader(text)
    try:
        for _ in reader:
            pass
    except csv.Error as exc:
        line = reader.line_num
        raise ApiError(400, "InvalidCSV", f"line {line}: {exc}", {"line": line}) from exc
    finally:
        text.detach()  # the stream stays open for the reading proper
    stream.seek(0)


def _output_names(existing: Iterable[str]) -> list[str]:
    """The match columns, prefixed where the input already has a column of that name."""
    taken = set(existing)
    return [f"geocode_{c}" if c in taken else c for c in MATCH_COLUMNS]


@dataclass
class CsvInput:
    """A checked CSV upload: its header, which column holds the address, and the rows to come."""

    header: list[str]
    column: int
    rows: Iterator[list[str]]

    @property
    def out_header(self) -> list[str]:
        return [*self.header, *_output_names(self.header)]


def open_csv(stream: IO[bytes], column: str | None) -> CsvInput:
    """Check the upload (its encoding, a header, the address column) and get ready to read it;
    every problem is a 400 that names it."""
    encoding = _check_text(stream)
    _check_csv(stream, encoding)
    reader = csv.reader(io.TextIOWrapper(stream, encoding=encoding, newline=""))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ApiError(400, "EmptyFile", "the file is empty: expected a CSV header line")
    names = [h.strip() for h in header]
    if column is not None:
        if column not in names:
            raise ApiError(
                400,
                "MissingColumn",
                f"the CSV file has no column {column!r}; its columns are: {', '.join(names)}",
                {"column": column, "header": names},
            )
        index = names.index(column)
    else:
        lowered = [n.lower() for n in names]
        found = next((lowered.index(n) for n in ADDRESS_NAMES if n in lowered), None)
        if found is None:
            raise ApiError(
                400,
                "MissingColumn",
                "name the address column with column=; none of the CSV columns "
                f"({', '.join(names)}) is called {' / '.join(ADDRESS_NAMES)}",
                {"header": names},
            )
        index = found
    return CsvInput(header, index, reader)


@dataclass(frozen=True)
class JsonItem:
    """One item of a JSON batch: its text and the object to echo back (with the match)."""

    text: str
    echo: dict[str, Any]


def parse_json(body: bytes) -> list[JsonItem]:
    """`{"addresses": [...]}` or a bare list; items are strings or objects with an `address`
    (or `text`, `q`) string and anything else (an `id`), which comes back unchanged. The body
    goes through the service's one JSON parser (geo.http: depth limit, NUL refused)."""
    document = http.parse_json(body)
    items = document.get("addresses") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ApiError(
            400,
            "InvalidInput",
            'expected a JSON list of addresses or {"addresses": [...]}',
        )
    if len(items) > MAX_ITEMS:
        raise ApiError(
            413, "PayloadTooLarge", f"{len(items)} addresses; at most {MAX_ITEMS} per request"
        )
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append(JsonItem(item, {"address": item}))
            continue
        key = (
            next((k for k in JSON_TEXT_KEYS if k in item), None) if isinstance(item, dict) else None
        )
        if key is None or not isinstance(item[key], str):
            raise ApiError(
                400,
                "InvalidInput",
                f"addresses[{i}]: expected a string or an object with an address string "
                f"({' / '.join(JSON_TEXT_KEYS)})",
                {"index": i},
            )
        out.append(JsonItem(item[key], item))
    return out


def best_candidates(texts: Sequence[str], area: str | None) -> list[Candidate | None]:
    """Each text's top candidate (None where there is none), in one short read transaction."""
    with session_scope() as session:
        found = geocode_many(session, texts, limit=1, area=area)
    return [c[0] if c else None for c in found]


def _matches(texts: Sequence[str], area: str | None, crs: str) -> list[dict[str, Any]]:
    return match_columns(best_candidates(texts, area), crs)


def match_columns(best: Sequence[Candidate | None], crs: str) -> list[dict[str, Any]]:
    """The top candidate's columns for each text (empty values where there is none), with the
    location converted to `crs` in one pass."""
    xs = np.array([c.lon if c else np.nan for c in best])
    ys = np.array([c.lat if c else np.nan for c in best])
    ok = np.isfinite(xs)
    if ok.any():
        xs[ok], ys[ok] = transform_xy(xs[ok], ys[ok], STORAGE_CRS, crs)
    rows = []
    for candidate, x, y in zip(best, xs.tolist(), ys.tolist(), strict=True):
        if candidate is None:
            rows.append(dict.fromkeys(MATCH_COLUMNS))
            continue
        rows.append(
            {
                "address_id": candidate.address_id,
                "code": candidate.code,
                "standard": candidate.standard,
                "level": candidate.level,
                "score": candidate.score,
                "confident": candidate.confident,
                "lon": round(x, 7),
                "lat": round(y, 7),
            }
        )
    return rows


def _chunks(rows: Iterable[Row]) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _follow_parent() -> None:
    """Worker initializer: leave when the server process is gone. A server stopped by a signal
    does not always shut its pool down, and a worker waiting for tasks would otherwise stay
    behind with its memory and database connection."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


class _Workers:
    """The worker processes, started once (spawned: a fork would copy the server's threads and
    connections)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    PROCESSES, mp_context=context, initializer=_follow_parent
                )
            return self._pool

    def discard(self) -> None:
        """Forget a pool one of whose processes died (it accepts no more work)."""
        with self._lock:
            self._pool = None


_workers = _Workers()


def matched(
    rows: Iterable[Row],
    text_of: Callable[[Row], str],
    area: str | None,
    crs: str,
    work: Callable[[list[str], str | None, str], list[dict[str, Any]]] = _matches,
) -> Iterator[tuple[list[Row], list[dict[str, Any]]]]:
    """Each chunk of rows with its matches, in order: a single chunk right here, more in the
    worker processes, with up to two chunks per process in flight. `work` (a module-level
    function, so that a worker process can be sent it) turns a chunk's texts into its rows of
    results; the match columns unless told otherwise (the quality report adds its own)."""
    chunks = _chunks(rows)
    head = list(next(chunks, []) for _ in range(2))
    if not head[1] or PROCESSES == 1:
        for chunk in chain(filter(None, head), chunks):
            yield chunk, work([text_of(r) for r in chunk], area, crs)
        return
    pool = _workers.pool()
    pending: deque[tuple[list[Row], Future[list[dict[str, Any]]]]] = deque()
    try:
        for chunk in chain(head, chunks):
            pending.append((chunk, pool.submit(work, [text_of(r) for r in chunk], area, crs)))
            if len(pending) > 2 * PROCESSES:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    except BrokenProcessPool:
        _workers.discard()  # this batch fails; the next one starts fresh processes
        raise
    finally:  # the client went away: do not geocode what nobody will read
        for _, future in pending:
            future.cancel()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stream_csv(
    source: CsvInput, area: str | None = None, crs: str = "CRS84", progress: Progress | None = None
) -> Iterator[bytes]:
    """The output CSV: the header, then every input row with the match columns, chunk by
    chunk."""
    target = resolve(crs).id
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(source.out_header)
    yield buffer.getvalue().encode()
    done = 0

    def text_of(row: list[str]) -> str:
        return row[source.column] if source.column < len(row) else ""

    for chunk, matches in matched(source.rows, text_of, area, target):
        buffer.seek(0)
        buffer.truncate()
        for row, match in zip(chunk, matches, strict=True):
            writer.writerow([*row, *(_cell(match[c]) for c in MATCH_COLUMNS)])
        done += len(chunk)
        if progress:
            progress(done)
        yield buffer.getvalue().encode()


def stream_json(
    items: list[JsonItem], area: str | None = None, crs: str = "CRS84", ndjson: bool = True
) -> Iterator[bytes]:
    """Each item with the match columns added: one JSON object per line (NDJSON), or one
    JSON array written as it goes."""
    target = resolve(crs).id
    first = True
    if not ndjson:
        yield b"["
    for chunk, matches in matched(items, lambda item: item.text, area, target):
        lines = []
        for item, match in zip(chunk, matches, strict=True):
            names = _output_names(item.echo)
            lines.append(
                orjson.dumps(
                    {
                        **item.echo,
                        **{n: match[c] for n, c in zip(names, MATCH_COLUMNS, strict=True)},
                    }
                )
            )
        if ndjson:
            yield b"\n".join(lines) + b"\n"
        else:
            yield (b"" if first else b",") + b",".join(lines)
        first = False
    if not ndjson:
        yield b"]"

"""Bulk import of standard addresses: a file in, one transaction, set-based SQL throughout.

The file is streamed into an UNLOGGED staging table with COPY (no row ever becomes a Python
object), then a few statements do everything else over the whole set (ingest.import_sql):
find the district of rows that name none by location, clean and standardise the elements,
resolve district / subdistrict / community names or codes to codes (hash joins against the keys
of addressbook.areas.resolver, the rule single edits and the geocoder follow too; a name of an
earlier division set resolves to its successor, with a note in the report), give every bad row
its reason, fill missing community, subdistrict and grid by location (GiST), build the standard
full form and the stable code, update the known codes and insert the new ones with a history row
each. Any bad row means nothing is written unless
``skip_invalid``; the caller's transaction holds it all. Imports are serialised by a table lock
that readers do not wait for; a bulk load (more rows than the table holds, over 100,000) drops
the indexes and keys of ``addresses`` (and of address_history, when it holds fewer rows than the
file) and builds them again at the end, which holds an exclusive lock on those tables and
address_aliases until commit, and refreshes every road and compound name.

Standard form (公安 standard address model: 省市 区县 乡镇街道 街路巷 门牌号 小区 楼栋 单元 户室):
``天津市 + 区 + 街道/镇 + 路 + 门牌号 + 小区 + 号楼 + 单元 + 室``, e.g.
天津市河西区友谊路街道友谊路32号友谊花园1号楼2单元301室. The community (社区/村) is a
management unit, not part of the written address: it is stored as a code (and is what grids
hang off).
Elements are stored in their written form: house_number ``32号``, building ``1号楼``, unit
``2单元``, room ``301室``. The spelling rules, the full form and the code are the SQL functions
address_standard / address_full_form / address_code (migration 475d15caf34a), shared with the
single-address edits and the geocoder, so an imported address and a typed one agree.

Stable code: ``<6-digit district adcode>-<14 hex digits of md5(district code and the elements)>``
unless the file gives one. The same address imported again gets the same code and updates the
row (version + 1) only when something changed; neither the point nor the subdistrict, community
or grid is part of the code, so moving a point or re-deriving areas keeps it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import psycopg
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from addressbook.areas import resolver
from addressbook.geocoding import names
from addressbook.ingest import import_sql
from addressbook.ingest.import_source import KNOWN_COLUMNS, Source, open_source
from addressbook.lifecycle import actor, require_authority
from geo import audit, versions
from geo.auth import Principal
from geo.crs import STORAGE_CRS, resolve, transform_xy
from geo.db import bulk_statement_timeout, raw_connection
from geo.errors import ApiError
from geo.settings import get_settings

Progress = Callable[[str, int, int | None], None]
MAX_REPORTED_ERRORS = 1000
# Above this many incoming rows (and more than the table holds), secondary indexes are dropped
# and rebuilt: one sorted build beats millions of random inserts into each index.
BULK_ROWS = 100_000
# CRSs whose lon/lat need no conversion into EPSG:4490 (PROJ treats them as identical).
SAME_AS_STORAGE = {"EPSG:4490", "EPSG:4326", "CRS84"}


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    # Good rows that named an area by a superseded name or code (areas.resolver): what it is now.
    notes: list[dict[str, Any]] = field(default_factory=list)
    note_count: int = 0
    filled: dict[str, int] = field(default_factory=dict)
    bulk: bool = False
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errorCount": self.error_count,
            "errors": self.errors,
            "noteCount": self.note_count,
            "notes": self.notes,
            "filledByLocation": self.filled,
            "bulk": self.bulk,
            "seconds": round(self.seconds, 2),
            "steps": {k: round(v, 2) for k, v in self.steps.items()},
        }


class _Steps:
    """Times each step for the report and tells the progress display what is happening."""

    def __init__(self, report: ImportReport, progress: Progress | None) -> None:
        self.report, self.progress, self.last = report, progress, time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.report.steps[name] = now - self.last
        self.last = now
        if self.progress:
            self.progress(name, 1, 1)


def _copy(session: Session, stage: str, source: Source, progress: Progress | None) -> None:
    """Stream the file into the staging table; COPY numbers the rows as lines when the file
    has no line column (line 1 is the header), from a sequence cached in the backend (one
    COPY uses it alone, so the numbers stay consecutive; uncached, each row would lock and
    update the sequence)."""
    kept = [
        c if c in KNOWN_COLUMNS or c == "line" else f"ignored_{i}"
        for i, c in enumerate(source.columns)
    ]
    line = (
        "line bigint"
        if source.numbered
        else "line bigint GENERATED BY DEFAULT AS IDENTITY (START 2 CACHE 10000)"
    )
    columns = ", ".join(f'"{c}" text' for c in kept if c != "line")
    session.execute(text(f"CREATE UNLOGGED TABLE {stage} ({line}, {columns})"))
    names_list = ", ".join(f'"{c}"' for c in kept)
    done = 0
    try:
        with (
            raw_connection(session).cursor() as cursor,
            cursor.copy(f"COPY {stage} ({names_list}) FROM STDIN (FORMAT csv)") as copy,
        ):
            for chunk in source.chunks:
                copy.write(chunk)
                done += len(chunk)
                if progress:
                    progress("reading", done, source.size)
    except (psycopg.errors.DataError, psycopg.errors.InternalError) as exc:
        raise _copy_error(exc, source.numbered) from None


def _copy_error(exc: psycopg.Error, numbered: bool) -> ApiError:
    """PostgreSQL's own CSV complaint, with the line counted as the file counts it."""
    context = exc.diag.context or ""
    found = re.search(r"line (\d+)", context)
    line = int(found.group(1)) + (0 if numbered else 1) if found else None
    message = exc.diag.message_primary or str(exc)
    where = f"{'feature' if numbered else 'line'} {line}: " if line else ""
    return ApiError(400, "InvalidCSV", f"{where}{message}", {"line": line})


def _convert(session: Session, stage: str, out: str, crs: str) -> None:
    """Bring the coordinates into EPSG:4490 with geo.crs (PROJ, or the GCJ-02 / BD-09 offsets),
    one vectorised call for the whole file: the same conversion code as everywhere else."""
    raw = raw_connection(session)
    with raw.cursor() as cursor:
        rows = cursor.execute(f"SELECT line, lon, lat FROM {stage}").fetchall()
    pattern = re.compile(import_sql.NUMBER)

    def number(v: str | None) -> float:
        return float(v) if v is not None and pattern.match(v) else np.nan

    x = np.array([number(r[1]) for r in rows], dtype=np.float64)
    y = np.array([number(r[2]) for r in rows], dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        x[ok], y[ok] = transform_xy(x[ok], y[ok], crs, STORAGE_CRS)
    session.execute(text(f"CREATE UNLOGGED TABLE {out} (line bigint, x float8, y float8)"))
    with raw.cursor() as cursor, cursor.copy(f"COPY {out} FROM STDIN") as copy:
        for (line, _, _), vx, vy, good in zip(
            rows, x.tolist(), y.tolist(), ok.tolist(), strict=True
        ):
            copy.write_row((line, vx if good else None, vy if good else None))


def _collect_errors(session: Session, resolved: str, report: ImportReport) -> None:
    """The bad rows' problems, and the good rows' notes (the first MAX_REPORTED_ERRORS)."""
    report.rows, report.error_count, report.note_count = session.execute(
        text(
            f"SELECT count(*), count(problem), count(note) FILTER (WHERE problem IS NULL) "
            f"FROM {resolved}"
        )
    ).one()
    report.errors = _first_lines(session, resolved, "problem", "problem IS NOT NULL")
    report.notes = _first_lines(session, resolved, "note", "note IS NOT NULL AND problem IS NULL")


def _first_lines(session: Session, resolved: str, column: str, where: str) -> list[dict[str, Any]]:
    """The first MAX_REPORTED_ERRORS rows matching ``where`` (fixed SQL of this module), as
    {"line": ..., column: ...}."""
    rows = session.execute(
        text(
            f"SELECT line, {column} FROM {resolved} WHERE {where} "
            f"ORDER BY line LIMIT {MAX_REPORTED_ERRORS}"
        )
    ).tuples()
    return [{"line": line, column: value} for line, value in rows]


def _rejected(report: ImportReport) -> ApiError:
    first = report.errors[0]
    return ApiError(
        400,
        "InvalidRows",
        f"{report.error_count} of {report.rows} row(s) are invalid, nothing was imported "
        f"(first: line {first['line']}: {first['problem']}); fix them or skip invalid rows",
        {"errorCount": report.error_count, "errors": report.errors},
    )


def _rebuildable(session: Session, table: str) -> list[tuple[str, str, int]]:
    """What a bulk load drops and builds again, in building order: (DROP statement, CREATE
    statement) for the primary key of `table`, its unique constraints (adding the code key
    back also finds a file's duplicate codes), its other indexes but partial ones (they hold
    few rows: testing their condition on insert costs less than the scan that builds them),
    and the foreign keys from and to it (the primary key cannot go without them; one check
    when added back instead of a trigger call queued per inserted row)."""
    return list(
        session.execute(
            text(
                """
                SELECT format('DROP INDEX %I', i.relname), pg_get_indexdef(i.oid), 2 AS rank
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = CAST(:t AS regclass) AND x.indpred IS NULL
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
                UNION ALL
                SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),
                       format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass,
                              conname, pg_get_constraintdef(oid)),
                       CASE contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 ELSE 3 END
                FROM pg_constraint
                WHERE (conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u', 'f'))
                   OR (confrelid = CAST(:t AS regclass) AND contype = 'f')
                ORDER BY 3, 2
                """
            ),
            {"t": table},
        ).tuples()
    )


def _build(session: Session, statement: str) -> None:
    # The pg_trgm GIN build measured faster with a small sort memory (it stays in cache);
    # btree builds sort in memory with a large one.
    memory = "64MB" if "USING gin" in statement else "1GB"
    session.execute(text(f"SET LOCAL maintenance_work_mem = '{memory}'"))
    session.execute(text(statement))


def _smaller(session: Session, table: str, rows: int) -> bool:
    """Whether `table` holds fewer than `rows` rows (reads at most that many)."""
    held = session.execute(
        text(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT :n) t"), {"n": rows}
    ).scalar_one()
    return int(held) < rows


def _write(
    session: Session, rows: str, report: ImportReport, who: str, steps: _Steps, existing: int
) -> None:
    """Update the known codes, insert the new ones; around a bulk load (`report.bulk`), drop
    the indexes and constraints first and build them again after (those of address_history
    too, unless it holds more rows than the file: one sorted build beats millions of inserts
    into each index)."""
    good = report.rows - report.error_count
    rebuilt = _rebuildable(session, "addresses") if report.bulk else []
    if rebuilt and _smaller(session, "address_history", good):
        rebuilt += _rebuildable(session, "address_history")
    for drop, _, _ in reversed(rebuilt):
        session.execute(text(drop))
    report.updated = import_sql.update_existing(session, rows, who) if existing else 0
    report.created = import_sql.insert_new(
        session, rows, who, ordered=not rebuilt, empty=not existing
    )
    report.unchanged = good - report.created - report.updated
    steps.done("write")
    for _, create, _ in rebuilt:
        _build(session, create)
    if rebuilt:
        session.execute(text("ANALYZE addresses"))
        steps.done("indexes")


def import_addresses(
    session: Session,
    stream: IO[bytes],
    filename: str,
    who: Principal,
    crs: str = "CRS84",
    skip_invalid: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a CSV or GeoJSON file of addresses (see the module docstring). Raises ApiError
    400 listing the bad rows when any row is bad and `skip_invalid` is false; 403 unless the
    caller's department is the address authority."""
    require_authority(session, who)
    crs_id = resolve(crs).id
    report = ImportReport()
    started = time.perf_counter()
    steps = _Steps(report, progress)
    source = open_source(stream, filename, get_settings().max_upload_bytes)
    tag = secrets.token_hex(6)
    stage, keys, districts, resolved, fills, xy = (
        f"addr_{name}_{tag}" for name in ("stage", "keys", "district", "resolved", "fill", "xy")
    )
    # Waiting for another import, and a bulk load's index builds, take minutes, not seconds.
    bulk_statement_timeout(session)
    # Imports are serialised (readers are not blocked); the bulk path takes a stronger lock
    # when it drops the indexes.
    session.execute(text("LOCK TABLE addresses IN SHARE ROW EXCLUSIVE MODE"))
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    session.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    _copy(session, stage, source, progress)
    steps.done("copy")
    columns = [c for c in source.columns if c in KNOWN_COLUMNS]
    converted = crs_id not in SAME_AS_STORAGE
    if converted:
        _convert(session, stage, xy, crs_id)
        steps.done("convert")
    resolver.create_key_table(session, keys)
    xy_table = xy if converted else None
    by_location = import_sql.districts_by_location(session, stage, districts, columns, xy_table)
    import_sql.resolve(
        session, stage, keys, resolved, columns, xy_table, districts if by_location else None
    )
    session.execute(
        text(f"DROP TABLE {stage}, {keys}, {districts}" + (f", {xy}" if converted else ""))
    )
    steps.done("resolve")
    # Into an empty table the unique code index catches a file's duplicates for free (see
    # below); otherwise a duplicate could silently update one existing row twice.
    if skip_invalid or session.execute(text("SELECT EXISTS (SELECT 1 FROM addresses)")).scalar():
        import_sql.mark_duplicates(session, resolved)
    _collect_errors(session, resolved, report)
    steps.done("check")
    if report.error_count and not skip_invalid:
        raise _rejected(report)
    report.skipped = report.error_count
    found = import_sql.locate(session, resolved, fills)
    report.filled = found.filled
    steps.done("locate")
    existing = session.execute(text("SELECT count(*) FROM addresses")).scalar_one()
    report.bulk = report.rows - report.error_count > max(BULK_ROWS, existing)
    if not report.bulk:  # a bulk import refreshes every name
        import_sql.touched_names(session, resolved, "_touched_names")
    steps.done("touched")
    label = actor(who)
    try:
        with session.begin_nested():
            rows = import_sql.located(resolved, fills, found)
            _write(session, rows, report, label, steps, existing)
    except IntegrityError as exc:
        if "addresses_code_key" not in str(exc.orig):
            raise
        # The same address twice in the file (the unique code index said so): report them all.
        import_sql.mark_duplicates(session, resolved)
        _collect_errors(session, resolved, report)
        raise _rejected(report) from None
    if "aliases" in columns:
        import_sql.insert_aliases(session, resolved)
    steps.done("aliases")
    names.refresh_streets(session, None if report.bulk else "_touched_names")
    session.execute(text(f"DROP TABLE IF EXISTS {resolved}, {fills}_c, {fills}_s, {fills}_g"))
    versions.bump(session, "addresses")
    steps.done("names")
    report.seconds = time.perf_counter() - started
    summary = {k: v for k, v in report.as_dict().items() if k not in ("errors", "notes", "steps")}
    audit.record(session, who, "addresses.import", filename, summary)
    return report

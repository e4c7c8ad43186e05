"""An upload, start to finish: read, validate, COPY, and finish by mode, in one transaction.

Modes: ``create`` registers the layer (schema and geometry type inferred when not declared),
``append`` adds features, ``replace`` swaps the whole table atomically (the new features are
copied into a staging table, then the old table is archived into history, dropped, and the
staging table renamed; readers see the old layer or the new one, never a mix), ``upsert``
updates features whose key property matches and inserts the rest.

Every feature is checked; after the first bad one nothing more is copied, but reading goes on so
the report lists every problem (the first 100, and the count). Any problem rolls the whole
transaction back: nothing is written.

A preview (:func:`preview`) is the same reading loop with nothing written: what it shows is kept
by layers.ingest.preview, and the problems are its answer rather than a 422.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from geo import audit, crs, versions
from geo.auth import Principal
from geo.db import bulk_statement_timeout
from geo.errors import ApiError
from geo.settings import get_settings
from layers import catalogue
from layers.ingest import geometry, json_readers, ogr_readers, readers, table_readers
from layers.ingest.preview import Sample
from layers.ingest.target import MAX_REPORTED, Problems, Target, actor, columns_of
from layers.schema import PropertySpec, specs_of

MODES = ("create", "append", "replace", "upsert")


@dataclass
class UploadOptions:
    mode: str = "create"
    crs: str | None = None
    format: str | None = None
    make_valid: bool = False
    key_property: str | None = None
    source_layer: str | None = None
    lon_column: str | None = None
    lat_column: str | None = None
    address_column: str | None = None
    # Catalogue entries for mode=create.
    title: str | None = None
    description: str | None = None
    keywords: list[str] = field(default_factory=list)
    access: str = "private"
    shared_with: list[str] = field(default_factory=list)
    geometry_type: str | None = None
    properties: list[dict[str, Any]] | None = None


def open_reader(session: Session, path: Path, filename: str, opts: UploadOptions) -> readers.Reader:
    settings = get_settings()
    fmt = readers.detect_format(filename, opts.format)
    if fmt == "geojson":
        return json_readers.geojson_reader(path, settings.max_json_depth)
    if fmt == "ndjson":
        return json_readers.ndjson_reader(path, settings.max_json_depth)
    if fmt == "gpkg":
        return ogr_readers.gpkg_reader(path, opts.source_layer)
    if fmt == "shapefile":
        return ogr_readers.shapefile_reader(path, opts.source_layer, settings.max_upload_bytes)
    if fmt == "xlsx":
        return table_readers.xlsx_reader(
            path,
            opts.source_layer,
            opts.lon_column,
            opts.lat_column,
            opts.address_column,
            lambda: table_readers.address_locator(session),
        )
    return table_readers.csv_reader(
        path,
        opts.lon_column,
        opts.lat_column,
        opts.address_column,
        lambda: table_readers.address_locator(session),
    )


_gc_lock = threading.Lock()
_gc_holders = 0


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an upload builds millions of small objects.

    Parsed features hold no reference cycles (reference counting frees them), but each batch
    triggers full collections that rescan every live object: measured at half the time of a
    200,000-polygon upload. Collection resumes when the last concurrent upload ends.
    """
    global _gc_holders
    with _gc_lock:
        _gc_holders += 1
        gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0:
                gc.enable()


def upload(
    session: Session,
    who: Principal,
    layer_id: str,
    path: Path,
    filename: str,
    opts: UploadOptions,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Load ``path`` into layer ``layer_id``; the report, or an ApiError with nothing written.

    The COPY stays open while the whole file is parsed, and index builds follow: this
    transaction gets the bulk statement timeout, not the API's."""
    bulk_statement_timeout(session)
    with cyclic_gc_paused():
        return _upload(session, who, layer_id, path, filename, opts, progress)


def preview(
    session: Session,
    who: Principal,
    layer_id: str,
    path: Path,
    filename: str,
    opts: UploadOptions,
    limit: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """What :func:`upload` would do with ``path``, without doing it: the same reading and checks,
    and the schema, count, bbox and first ``limit`` features it would store, with the
    per-feature problems in the 422's shape instead of raising them.

    Nothing is written: no layer, no catalogue row, no version, no audit entry. An upsert
    stages the file in a temporary table (dropped with the transaction) so duplicate keys are
    found by the same query as the real upload's, and the rows it would update are counted."""
    bulk_statement_timeout(session)
    sample = Sample(limit)
    with cyclic_gc_paused():
        done = _read(session, who, layer_id, path, filename, opts, progress, sample)
    target = done.target
    counts = {} if done.problems.count else target.preview_counts(done.copied)
    features, bbox = sample.features(target.specs, target.geometry_type or "Geometry")
    invalid = {
        "count": done.problems.count,
        "total": done.total,
        "errors": done.problems.items,
    }
    return {
        **_summary(done, opts, target.geometry_type or "Geometry", target.specs),
        "features": done.total - done.problems.count,
        "total": done.total,
        "committable": not done.problems.count,
        "bbox": bbox,
        "first_features": {"type": "FeatureCollection", "features": features},
        "invalid": invalid,
        **counts,
    }


@dataclass
class _Read:
    """A file read to its end and checked against its target."""

    reader: readers.Reader
    source_crs: str
    target: Target
    problems: Problems
    total: int
    repaired: int
    copied: int


def _read(
    session: Session,
    who: Principal,
    layer_id: str,
    path: Path,
    filename: str,
    opts: UploadOptions,
    progress: Callable[[int], None] | None,
    sample: Sample | None = None,
) -> _Read:
    """Read and check every feature; copy them while none was bad (a dry run, given a
    ``sample`` to fill, copies only what an upsert's duplicate check needs)."""
    if opts.mode not in MODES:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"mode must be one of {', '.join(MODES)}, not {opts.mode!r}",
        )
    if opts.mode != "create" and (opts.properties is not None or opts.geometry_type):
        raise ApiError(400, "InvalidParameterValue", "a schema can only be given with mode=create")
    settings = get_settings()
    reader = open_reader(session, path, filename, opts)
    source_crs = reader.fixed_crs or (
        crs.resolve(opts.crs).id if opts.crs else reader.declared_crs or crs.DEFAULT_CRS
    )
    target = Target(session, who, layer_id, opts, reader.fields, dry_run=sample is not None)
    who_label = actor(who)
    problems = Problems()
    total = repaired = copied = 0
    try:
        for batch in reader.batches():
            total += len(batch.geoms)
            if total > settings.max_features:
                raise ApiError(
                    413,
                    "TooManyFeatures",
                    f"the file holds more than {settings.max_features} features (GEO_MAX_FEATURES)",
                    {"limit": settings.max_features},
                )
            geoms, errors, fixed = geometry.prepare(
                batch.geoms, source_crs, settings.extent, opts.make_valid
            )
            repaired += fixed
            errors.update(batch.errors)
            target.fit_geometry(geoms, errors)
            if target.geometry_type is not None:
                geoms, wrong = geometry.conform(geoms, target.geometry_type)
                for i, reason in wrong.items():
                    errors.setdefault(i, reason)
            columns = columns_of(batch.properties)
            target.fit_properties(columns, reader.from_text)
            rows = target.rows(batch.properties, columns, reader.from_text, errors)
            problems.extend(batch.start, errors)
            if sample is not None:
                sample.add(geoms, rows, errors, target.specs)
            if progress:
                progress(total)
            if problems.count:
                target.flush()
                continue
            copied += len(rows)
            if target.stages:
                wkb = geometry.ewkb_hex(geoms)
                tail = [] if opts.mode == "upsert" else [who_label]
                target.write([*row, g, *tail] for row, g in zip(rows, wkb, strict=True))
    except BaseException as exc:
        target.abort(exc)
        raise
    target.flush()
    if total == 0:
        raise ApiError(400, "NoFeatures", "the file holds no features; nothing was written")
    return _Read(reader, source_crs, target, problems, total, repaired, copied)


def _summary(
    done: _Read, opts: UploadOptions, geometry_type: str, specs: list[PropertySpec]
) -> dict[str, Any]:
    """What an upload's report and a preview share."""
    out: dict[str, Any] = {
        "collection": done.target.layer_id,
        "mode": opts.mode,
        "format": done.reader.format,
        "crs": done.source_crs,
        "features": done.copied,
        "repaired": done.repaired,
        "geometry_type": geometry_type,
        "properties": [s.as_dict() for s in specs],
    }
    if done.target.renamed:
        out["renamed"] = done.target.renamed
    if done.reader.encoding:
        out["encoding"] = done.reader.encoding
    return out


def _upload(
    session: Session,
    who: Principal,
    layer_id: str,
    path: Path,
    filename: str,
    opts: UploadOptions,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    done = _read(session, who, layer_id, path, filename, opts, progress)
    problems = done.problems
    if problems.count:
        raise ApiError(
            422,
            "InvalidFeatures",
            f"{problems.count} of {done.total} features are invalid; nothing was written"
            + (f" (first {MAX_REPORTED} listed)" if problems.count > MAX_REPORTED else ""),
            {"count": problems.count, "total": done.total, "errors": problems.items},
        )
    who_label = actor(who)
    counts = done.target.finish(who_label, done.copied)
    layer = done.target.current_layer()
    versions.bump(session, catalogue.version_key(layer.id))
    report = {
        **_summary(done, opts, layer.geometry_type, specs_of(layer.properties)),
        **counts,
    }
    audit.record(
        session,
        who,
        "layer.upload",
        layer.id,
        {k: report[k] for k in ("mode", "format", "crs", "features", "repaired")} | counts,
    )
    return report

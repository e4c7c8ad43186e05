"""An upload, start to finish: read, validate, COPY, and finish by mode, in one transaction.

Modes: ``create`` registers the layer (schema and geometry type inferred when not declared),
``append`` adds features, ``replace`` swaps the whole table atomically (the new features are
copied into a staging table, then the old table is archived into history, dropped, and the
staging table renamed; readers see the old layer or the new one, never a mix), ``upsert``
updates features whose key property matches and inserts the rest.

Every feature is checked; after the first bad one nothing more is copied, but reading goes on so
the report lists every problem (the first 100, and the count). Any problem rolls the whole
transaction back: nothing is written.
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
from layers.ingest.target import MAX_REPORTED, Problems, Target, actor, columns_of
from layers.schema import specs_of

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


def _upload(
    session: Session,
    who: Principal,
    layer_id: str,
    path: Path,
    filename: str,
    opts: UploadOptions,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
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
    target = Target(session, who, layer_id, opts, reader.fields)
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
            if problems.count:
                target.flush()
                continue
            wkb = geometry.ewkb_hex(geoms)
            tail = [] if opts.mode == "upsert" else [who_label]
            copied += target.write([*row, g, *tail] for row, g in zip(rows, wkb, strict=True))
            if progress:
                progress(total)
    except BaseException as exc:
        target.abort(exc)
        raise
    target.flush()
    if problems.count:
        raise ApiError(
            422,
            "InvalidFeatures",
            f"{problems.count} of {total} features are invalid; nothing was written"
            + (f" (first {MAX_REPORTED} listed)" if problems.count > MAX_REPORTED else ""),
            {"count": problems.count, "total": total, "errors": problems.items},
        )
    if total == 0:
        raise ApiError(400, "NoFeatures", "the file holds no features; nothing was written")
    counts = target.finish(who_label, copied)
    layer = target.current_layer()
    versions.bump(session, catalogue.version_key(layer.id))
    report: dict[str, Any] = {
        "collection": layer.id,
        "mode": opts.mode,
        "format": reader.format,
        "crs": source_crs,
        "features": copied,
        "repaired": repaired,
        "geometry_type": layer.geometry_type,
        "properties": [s.as_dict() for s in specs_of(layer.properties)],
        **counts,
    }
    if target.renamed:
        report["renamed"] = target.renamed
    if reader.encoding:
        report["encoding"] = reader.encoding
    audit.record(
        session,
        who,
        "layer.upload",
        layer.id,
        {k: report[k] for k in ("mode", "format", "crs", "features", "repaired")} | counts,
    )
    return report

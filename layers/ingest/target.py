"""Where an upload's features go: the schema they must fit (declared, or inferred and widening),
the table COPY writes to for each mode, and how each mode finishes (index, swap, merge)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.auth import Principal
from geo.errors import ApiError
from layers import catalogue, storage
from layers.ingest import geometry
from layers.ingest.copy import CopyStream
from layers.ingest.values import coerce_column, column_name, infer_column, merge_schema
from layers.models import Layer
from layers.schema import (
    PropertySpec,
    check_geometry_type,
    parse_properties,
    quote_ident,
    specs_of,
)

MAX_REPORTED = 100
# From this size on, a created or replaced layer is rewritten in spatial order (see
# storage.rewrite_in_spatial_order); smaller tables stay in cache whatever their order.
SPATIAL_ORDER_MIN_FEATURES = 250_000


class Problems:
    """Per-feature problems: every one counted, the first hundred kept for the report."""

    def __init__(self) -> None:
        self.count = 0
        self.items: list[dict[str, Any]] = []

    def add(self, index: int, reason: str) -> None:
        self.count += 1
        if len(self.items) < MAX_REPORTED:
            self.items.append({"index": index, "reason": reason})

    def extend(self, start: int, errors: geometry.Errors) -> None:
        for i in sorted(errors):
            self.add(start + i, errors[i])


def actor(who: Principal) -> str:
    """How feature rows name who last changed them."""
    return f"{who.department or 'anonymous'}/{who.actor or '-'}"


class Target:
    """Where the features of one upload go, and the schema they must fit (or are widening)."""

    def __init__(
        self,
        session: Session,
        who: Principal,
        layer_id: str,
        opts: Any,
        fields: Any,
        dry_run: bool = False,
    ) -> None:
        self.session, self.who, self.layer_id, self.opts = session, who, layer_id, opts
        # A dry run (a preview) writes nothing and holds no lock on the layer; only an upsert's
        # features are staged, in a temporary table, for the duplicate check.
        self.stages = not dry_run or opts.mode == "upsert"
        self.layer: Layer | None = None
        self.renamed: dict[str, str] = {}
        # File field <-> column, both ways (the same for declared schemas).
        self.columns: dict[str, str] = {}
        self.originals: dict[str, str] = {}
        self.copy_table: str | None = None
        self.stream: CopyStream | None = None
        if opts.mode == "create":
            catalogue.check_id(layer_id)
            if session.get(Layer, layer_id) is not None:
                raise ApiError(409, "Conflict", f"a collection {layer_id!r} exists already")
            self.geometry_type = (
                check_geometry_type(opts.geometry_type) if opts.geometry_type else None
            )
            self.infer_geometry = self.geometry_type is None
            self.infer_properties = opts.properties is None and fields is None
            if opts.properties is not None:
                self.specs = parse_properties(opts.properties)
            elif fields is not None:
                self.specs = [PropertySpec(self._column(n), t) for n, t in fields.items()]
            else:
                self.specs = []
        else:
            self.layer = catalogue.writable_layer(session, who, layer_id, lock=not dry_run)
            self.geometry_type = self.layer.geometry_type
            self.infer_geometry = self.infer_properties = False
            self.specs = specs_of(self.layer.properties)
        self.declared = {s.name for s in self.specs}
        self.key = self._key()

    def _column(self, name: str) -> str:
        """Column for a file field: verbatim for declared schemas, cleaned (and made unique) for
        inferred ones."""
        column = self.columns.get(name)
        if column is not None:
            return column
        column = name
        if self.opts.mode == "create" and self.opts.properties is None:
            column = base = column_name(name)
            n = 1
            while column in self.originals:
                n += 1
                column = f"{base}_{n}"
            if column != name:
                self.renamed[name] = column
        self.columns[name] = column
        self.originals[column] = name
        return column

    def _key(self) -> str | None:
        if self.opts.mode != "upsert":
            return None
        key = self.opts.key_property or (self.layer.key_property if self.layer else None)
        if key is None:
            raise ApiError(
                400, "MissingParameter", "mode=upsert needs key_property= (or a layer key_property)"
            )
        if key not in self.declared:
            raise ApiError(400, "InvalidParameterValue", f"key_property {key!r} is not a property")
        return key

    # -- schema -----------------------------------------------------------------------------
    def fit_geometry(self, geoms: geometry.Geoms, problems: geometry.Errors) -> None:
        """Decide or widen the inferred geometry type; flag features of another family."""
        if not self.infer_geometry:
            return
        types = geometry.types_of(geoms)
        kinds = [k for k in dict.fromkeys(types.tolist()) if k is not None]
        if all(geometry.infer_type(self.geometry_type, {k}) == self.geometry_type for k in kinds):
            return  # the usual batch: nothing new
        for i, kind in enumerate(types):
            if kind is None or i in problems:
                continue
            merged = geometry.infer_type(self.geometry_type, {kind})
            if merged is None:
                problems[i] = (
                    f"mixed geometry types: {kind} in a layer of {self.geometry_type}s "
                    "(one geometry type per layer)"
                )
                continue
            if merged != self.geometry_type:
                if self.geometry_type is not None and self.copy_table is not None:
                    self.flush()
                    storage.promote_geometry(self.session, self._table_name(), self.geometry_type)
                    if self.layer is not None:
                        self.layer.geometry_type = merged
                self.geometry_type = merged

    def fit_properties(self, columns: dict[str, list[Any]], from_text: bool) -> None:
        if not self.infer_properties:
            return
        seen: dict[str, str | None] = {}
        for name, values in columns.items():
            seen[self._column(name)] = infer_column(values, from_text)
        self.specs, added, widened = merge_schema(self.specs, seen)
        if self.copy_table is not None and (added or widened):
            self.flush()
            for spec in added:
                storage.add_column(self.session, self._table_name(), spec)
            for spec in widened:
                storage.widen_column(self.session, self._table_name(), spec)
            if added or widened:
                catalogue.set_properties(self.session, self.current_layer(), self.specs)
        self.declared = {s.name for s in self.specs}

    def rows(
        self,
        props: list[dict[str, Any]],
        columns: dict[str, list[Any]],
        from_text: bool,
        problems: geometry.Errors,
    ) -> list[list[Any]]:
        """Values in column order for each feature, checked against the schema column by
        column (one type check per column and batch in the common case)."""
        unknown = {k for k in columns if self._column(k) not in self.declared}
        if unknown:
            schema = ", ".join(sorted(self.declared)) or "none"
            for i, row in enumerate(props):
                extra = unknown.intersection(row)
                if extra:
                    problems.setdefault(
                        i, f"property {sorted(extra)[0]!r} is not in the layer schema ({schema})"
                    )
        ordered: list[list[Any]] = []
        missing = [None] * len(props)
        for spec in self.specs:
            source = columns.get(self.originals.get(spec.name, spec.name), missing)
            values, wrong = coerce_column(source, spec.type, from_text)
            for i, reason in wrong.items():
                problems.setdefault(i, f"property {spec.name!r}: {reason}")
            if spec.required or spec.name == self.key:
                for i, value in enumerate(values):
                    if value is None:
                        problems.setdefault(i, f"property {spec.name!r} is required")
            ordered.append(values)
        if not ordered:
            return [[] for _ in props]
        return [list(row) for row in zip(*ordered, strict=True)]

    # -- tables -----------------------------------------------------------------------------
    def _table_name(self) -> str:
        return self.current_layer().table_name

    def current_layer(self) -> Layer:
        if self.layer is None:
            raise RuntimeError("the layer is created with its first valid batch")
        return self.layer

    def open(self) -> str:
        """The table COPY writes to, created on first use."""
        if self.copy_table is not None:
            return self.copy_table
        mode = self.opts.mode
        if mode == "create":
            self.layer = catalogue.create_layer(
                self.session,
                self.who,
                self.layer_id,
                title=self.opts.title,
                geometry_type=self.geometry_type or "Geometry",
                properties=self.specs,
                description=self.opts.description,
                keywords=self.opts.keywords,
                access=self.opts.access,
                shared_with=self.opts.shared_with,
                key_property=self.opts.key_property,
                spatial_index=False,
            )
            self.copy_table = storage.table_ref(self.layer.table_name)
        elif mode == "append":
            self.copy_table = storage.table_ref(self._table_name())
        elif mode == "replace":
            stage = self._table_name() + "__stage"
            storage.create_feature_table(
                self.session, stage, self.geometry_type or "Geometry", self.specs, False
            )
            # New ids continue after every id the layer ever used, so history stays unambiguous.
            top = self.session.execute(
                text(
                    f"SELECT greatest("
                    f"(SELECT max(id) FROM {storage.table_ref(self._table_name())}), "
                    f"(SELECT max(fid) FROM {storage.history_ref(self._table_name())}), 0)"
                )
            ).scalar_one()
            self.session.execute(
                text(
                    f"ALTER TABLE {storage.table_ref(stage)} "
                    f"ALTER COLUMN id RESTART WITH {int(top) + 1}"
                )
            )
            self.copy_table = storage.table_ref(stage)
        else:
            columns = ", ".join(quote_ident(s.name) for s in self.specs)
            self.session.execute(
                text(
                    "CREATE TEMP TABLE layer_upsert_stage ON COMMIT DROP AS "
                    f"SELECT {columns + ', ' if columns else ''}geom "
                    f"FROM {storage.table_ref(self._table_name())} LIMIT 0"
                )
            )
            self.copy_table = "layer_upsert_stage"
        return self.copy_table

    def copy_columns(self) -> list[str]:
        extra = [] if self.opts.mode == "upsert" else ["updated_by"]
        return [*(s.name for s in self.specs), "geom", *extra]

    def write(self, rows: Iterable[Sequence[Any]]) -> int:
        table = self.open()
        if self.stream is None:
            self.stream = CopyStream(self.session, table, self.copy_columns())
        return self.stream.write(rows)

    def flush(self) -> None:
        """End the open COPY (before any other statement on the session)."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def abort(self, exc: BaseException) -> None:
        if self.stream is not None:
            self.stream.abort(exc)
            self.stream = None

    def finish(self, who: str, copied: int) -> dict[str, int]:
        self.flush()
        layer = self.current_layer()
        live = storage.table_ref(layer.table_name)
        counts: dict[str, int] = {}
        sort = copied >= SPATIAL_ORDER_MIN_FEATURES
        if self.opts.mode == "create":
            if sort:
                storage.rewrite_in_spatial_order(
                    self.session, layer.table_name, layer.geometry_type, self.specs
                )
            storage.create_spatial_index(self.session, layer.table_name)
        elif self.opts.mode == "replace":
            counts["archived"] = self._archive("true", "replace", who)
            stage = layer.table_name + "__stage"
            if sort:
                storage.rewrite_in_spatial_order(
                    self.session, stage, layer.geometry_type, self.specs
                )
            self.session.execute(text(f"DROP TABLE {live}"))
            self.session.execute(
                text(
                    f"ALTER TABLE {storage.table_ref(stage)} "
                    f"RENAME TO {quote_ident(layer.table_name)}"
                )
            )
            storage.create_spatial_index(self.session, layer.table_name)
        elif self.opts.mode == "upsert":
            counts.update(self._merge(who))
        else:
            self.session.execute(text(f"ANALYZE {live}"))
        key = self.key or layer.key_property
        if key:
            storage.ensure_key_index(self.session, layer.table_name, key)
        layer.updated_at = datetime.now(UTC)
        return counts

    def _archive(self, where: str, action: str, who: str) -> int:
        layer = self.current_layer()
        sql = storage.archive_sql(layer.table_name, self.specs, where)
        return int(self.session.execute(text(sql), {"action": action, "who": who}).rowcount)  # type: ignore[attr-defined]

    def preview_counts(self, copied: int) -> dict[str, int]:
        """What :meth:`finish` would report, counted without changing anything."""
        if self.opts.mode not in ("replace", "upsert"):
            return {}
        live = storage.table_ref(self._table_name())
        if self.opts.mode == "replace":
            return {"archived": self._count(f"SELECT count(*) FROM {live}")}
        self.flush()
        self._check_duplicates()
        key = quote_ident(self.key or "")
        stage = "layer_upsert_stage"
        updated = self._count(
            f"SELECT count(*) FROM {live} t WHERE t.{key} IN (SELECT s.{key} FROM {stage} s)"
        )
        matched = self._count(
            f"SELECT count(*) FROM {stage} s "
            f"WHERE EXISTS (SELECT 1 FROM {live} t WHERE t.{key} = s.{key})"
        )
        return {"updated": updated, "inserted": copied - matched}

    def _count(self, sql: str) -> int:
        return int(self.session.execute(text(sql)).scalar_one())

    def _check_duplicates(self) -> None:
        """An upsert's file names each key once: else which feature wins is anyone's guess."""
        key = quote_ident(self.key or "")
        duplicates = [
            row[0]
            for row in self.session.execute(
                text(
                    f"SELECT {key} FROM layer_upsert_stage GROUP BY {key} "
                    "HAVING count(*) > 1 LIMIT 20"
                )
            )
        ]
        if duplicates:
            raise ApiError(
                422,
                "DuplicateKeys",
                f"the file holds the key property {self.key!r} more than once for "
                f"{len(duplicates)}+ values; nothing was written",
                {"duplicates": [str(d) for d in duplicates]},
            )

    def _merge(self, who: str) -> dict[str, int]:
        layer = self.current_layer()
        live = storage.table_ref(layer.table_name)
        key = quote_ident(self.key or "")
        self._check_duplicates()
        matched = f"t.{key} IN (SELECT s.{key} FROM layer_upsert_stage s)"
        self._archive(matched, "upsert", who)
        sets = ", ".join(f"{quote_ident(s.name)} = s.{quote_ident(s.name)}" for s in self.specs)
        updated = self.session.execute(
            text(
                f"UPDATE {live} t SET {sets}, geom = s.geom, version = t.version + 1, "
                "updated_by = :who, updated_at = now() "
                f"FROM layer_upsert_stage s WHERE t.{key} = s.{key}"
            ),
            {"who": who},
        ).rowcount  # type: ignore[attr-defined]
        columns = ", ".join(quote_ident(s.name) for s in self.specs)
        inserted = self.session.execute(
            text(
                f"INSERT INTO {live} ({columns}, geom, updated_by) "
                f"SELECT {', '.join('s.' + quote_ident(s.name) for s in self.specs)}, s.geom, :who "
                f"FROM layer_upsert_stage s WHERE NOT EXISTS "
                f"(SELECT 1 FROM {live} t WHERE t.{key} = s.{key})"
            ),
            {"who": who},
        ).rowcount  # type: ignore[attr-defined]
        return {"updated": int(updated), "inserted": int(inserted)}


def columns_of(props: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """A batch's properties by name (None where a feature lacks one), names in first-seen order.

    Files almost always give every feature the same keys; then the first feature's keys are all
    there is, and checking that costs one comparison per feature.
    """
    names: dict[str, None] = dict.fromkeys(props[0]) if props else {}
    first = props[0].keys() if props else None
    for row in props:
        if row.keys() != first:
            names.update(dict.fromkeys(row))
    return {name: [p.get(name) for p in props] for name in names}

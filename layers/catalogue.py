"""The catalogue: which layers exist, who may read or change them, and how to read each one.

Graded access (DESIGN.md, security; issue 11): ``public`` (open data) layers are readable by
everyone, unconditionally shared ones (无条件共享) are viewable by every department, and
everything else by the owning department and the holders of a grant (layers.scope), through
that grant's scope; platform admins read everything. A layer the caller may not read does not
exist for them: every lookup answers 404, never 403, so ids of other departments' private
layers leak nothing.

Other packages' datasets (the address library's addresses, districts, subdistricts,
communities, grids) are listed here too, as public read-only *system* collections, so overlay,
identify, statistics, tiles and OGC clients treat them like any layer. Each package registers its
own (geo.plugins.Plugin.collections); this module names none of their tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from geo import audit, versions
from geo.auth import Principal
from geo.errors import ApiError
from geo.plugins import system_collections
from geo.sources import LayerSource
from layers import scope, storage
from layers.models import ACCESS_LEVELS, SHARING_OF_ACCESS, Layer
from layers.schema import PropertySpec, check_geometry_type, specs_of
from layers.scope import Grant

ID_RE = re.compile(r"[a-z][a-z0-9_]{1,49}")  # fullmatch: "$" also matches before "\n"


def version_key(layer_id: str) -> str:
    """The geo.versions name of a collection: a system collection's own, ``layer:<id>`` else."""
    system = system_collections().get(layer_id)
    return system.version_key if system else f"layer:{layer_id}"


def is_system(layer_id: str) -> bool:
    """A collection another package registered (read-only here), not a department layer."""
    return layer_id in system_collections()


# -- access rules -------------------------------------------------------------------------------


def is_public(layer: Layer) -> bool:
    """Readable by everyone, anonymous callers included: `access=public`, or open data."""
    return layer.access == "public" or bool(layer.open_data)


def full_access(who: Principal, layer: Layer, need: str = "view") -> bool:
    """Whether ``who`` reads the whole layer at level ``need`` without a grant.

    `who.is_admin` is the platform administrator only: another department's admin key reads
    what its department may read, like its other keys. Public layers may be viewed and
    downloaded by all; a layer shared unconditionally (无条件共享) may be viewed by every
    department; everything else needs a grant (layers.scope)."""
    if who.is_admin or (who.department is not None and who.department == layer.owner):
        return True
    if need == "edit":
        return False
    if is_public(layer):
        return True
    unconditional = layer.sharing_type == "unconditional"
    return need == "view" and unconditional and who.department is not None


def can_manage(who: Principal, layer: Layer) -> bool:
    """Change metadata, access and grants: the owner's editors (and its admins), or the
    platform administrator; an admin key of another department is refused."""
    return who.is_admin or (who.department == layer.owner and who.has_role("editor"))


def _not_found(layer_id: str) -> ApiError:
    return ApiError(404, "NotFound", f"no collection {layer_id!r}", {"collection": layer_id})


def _grant_for(
    session: Session, who: Principal, layer: Layer, need: str
) -> tuple[bool, Grant | None]:
    """(may, grant): full access needs no grant; otherwise the grant that allows ``need``."""
    if full_access(who, layer, need):
        return True, None
    grant = scope.applicable(session, who.department, [layer.id], need).get(layer.id)
    return grant is not None, grant


def access(
    session: Session, who: Principal, layer_id: str, need: str = "view"
) -> tuple[Layer, Grant | None]:
    """The layer and the grant ``who`` uses for it at level ``need`` (None: full access).

    A layer the caller may not even view is a 404, as if it did not exist; one it may view but
    not at ``need`` (export with a view grant) is a 403 naming the level it lacks."""
    layer = session.get(Layer, layer_id)
    if layer is None:
        raise _not_found(layer_id)
    may, grant = _grant_for(session, who, layer, need)
    if may:
        return layer, grant
    if need != "view" and _grant_for(session, who, layer, "view")[0]:
        raise ApiError(
            403,
            "InsufficientGrant",
            f"reading {layer_id!r} this way needs a {need!r} grant",
            {"collection": layer_id, "needs": need},
        )
    raise _not_found(layer_id)


def readable_layer(session: Session, who: Principal, layer_id: str) -> Layer:
    return access(session, who, layer_id)[0]


def writable_layer(session: Session, who: Principal, layer_id: str, lock: bool = False) -> Layer:
    """The layer, if the caller may manage it: 404 when they cannot even see it, 403 when they
    can see it but it is not theirs to change (or their key is a viewer key)."""
    if is_system(layer_id):
        raise ApiError(405, "ReadOnlyCollection", f"{layer_id!r} is a read-only system collection")
    if lock:
        layer = session.scalars(
            select(Layer).where(Layer.id == layer_id).with_for_update()
        ).one_or_none()
    else:
        layer = session.get(Layer, layer_id)
    if layer is None or not _grant_for(session, who, layer, "view")[0]:
        raise _not_found(layer_id)
    if not can_manage(who, layer):
        if who.anonymous:
            raise ApiError(
                401,
                "Unauthorized",
                "changing a layer needs an editor key of its department",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise ApiError(
            403,
            "Forbidden",
            f"layer {layer_id!r} belongs to {layer.owner!r}; only its editors may change it",
        )
    return layer


def editable_source(session: Session, who: Principal, layer_id: str) -> tuple[Layer, LayerSource]:
    """The layer and the collection its features may be edited through: whole for the owner's
    editors and the platform administrator, narrowed by the grant for an `edit` grantee's
    editor keys. Anyone else gets writable_layer's 404/401/403."""
    if not is_system(layer_id) and who.has_role("editor"):
        layer = session.get(Layer, layer_id)
        if layer is not None and not can_manage(who, layer):
            grant = scope.applicable(session, who.department, [layer_id], "edit").get(layer_id)
            if grant is not None:
                return layer, _with_versions(session, [source_of(layer, grant=grant)])[0]
    layer = writable_layer(session, who, layer_id)
    return layer, _with_versions(session, [source_of(layer)])[0]


def owned_layer_ids(session: Session, department: str) -> list[str]:
    return list(session.scalars(select(Layer.id).where(Layer.owner == department)))


def readable_layers(session: Session, who: Principal) -> list[Layer]:
    stmt = select(Layer).order_by(Layer.id)
    if not who.is_admin:
        rules = [Layer.access == "public"]
        if who.department:
            rules += [
                Layer.owner == who.department,
                Layer.sharing_type == "unconditional",
                Layer.id.in_(scope.granted_layer_ids(who.department)),
            ]
        stmt = stmt.where(or_(*rules))
    return list(session.scalars(stmt))


# -- LayerSource: how tiles, overlay, identify and features read any collection -------------------


def source_of(layer: Layer, version: int = 0, grant: Grant | None = None) -> LayerSource:
    """The collection as ``grant`` lets its holder see it (the whole layer without one): the
    one place where grants reach the SQL of every route (geo.sources.Scope)."""
    properties = {p.name: p.type for p in specs_of(layer.properties)}
    narrowed = None if grant is None else scope.scope_of(grant, list(properties), "geom")
    if narrowed is not None:
        properties = {n: t for n, t in properties.items() if n not in narrowed.hidden}
    return LayerSource(
        id=layer.id,
        title=layer.title,
        table=storage.table_ref(layer.table_name),
        geometry_type=layer.geometry_type,
        properties=properties,
        mercator_column=storage.MERCATOR_COLUMN,
        where=narrowed.area if narrowed else None,
        version_key=version_key(layer.id),
        version=version,
        public=is_public(layer),
        owner=layer.owner,
        description=layer.description,
        keywords=tuple(layer.keywords or ()),
        versioned=True,
        scope=narrowed,
    )


def readable_sources(
    session: Session, who: Principal, ids: Sequence[str], need: str = "view"
) -> list[LayerSource]:
    """Sources for ``ids`` in the order given, as the caller may read them at level ``need``;
    404 for any id the caller may not read (403 when only the level is lacking)."""
    found: list[LayerSource] = []
    for layer_id in ids:
        system = system_collections().get(layer_id)
        if system is not None:
            found.append(system)
            continue
        layer, grant = access(session, who, layer_id, need)
        found.append(source_of(layer, grant=grant))
    return _with_versions(session, found)


def readable_source(
    session: Session, who: Principal, layer_id: str, need: str = "view"
) -> LayerSource:
    return readable_sources(session, who, [layer_id], need)[0]


def all_readable_sources(session: Session, who: Principal) -> list[LayerSource]:
    """Every collection the caller may read: system collections first, then layers by id."""
    layers = readable_layers(session, who)
    narrowed = [x.id for x in layers if not full_access(who, x)]
    grants = scope.applicable(session, who.department, narrowed)
    found = [
        *system_collections().values(),
        *(source_of(x, grant=grants.get(x.id)) for x in layers),
    ]
    return _with_versions(session, found)


def _with_versions(session: Session, sources: list[LayerSource]) -> list[LayerSource]:
    current = versions.versions(session, {s.version_key for s in sources})
    return [replace(s, version=current[s.version_key]) for s in sources]


def audit_read(session: Session, who: Principal, sources: Iterable[LayerSource], how: str) -> None:
    """DESIGN.md: every read of a non-public layer is on the audit trail, naming the grant it
    was read through (issue 11), if any."""
    for source in sources:
        if not source.public:
            details: dict[str, Any] = {"via": how}
            if source.scope is not None:
                details["grant"] = source.scope.grant_id
            audit.record(session, who, "layer.read", source.id, details)


# -- catalogue changes --------------------------------------------------------------------------


def check_id(layer_id: str) -> str:
    if not ID_RE.fullmatch(layer_id):
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"collection id {layer_id!r} must be 2-50 lowercase letters, digits or _, "
            "starting with a letter",
            {"collection": layer_id},
        )
    if is_system(layer_id):
        raise ApiError(409, "Conflict", f"{layer_id!r} is the id of a system collection")
    return layer_id


def check_access(access: str, shared_with: Sequence[str]) -> tuple[str, list[str]]:
    if access not in ACCESS_LEVELS:
        raise ApiError(
            400,
            "InvalidParameterValue",
            f"access must be one of {', '.join(ACCESS_LEVELS)}, not {access!r}",
        )
    if access != "shared" and shared_with:
        raise ApiError(
            400, "InvalidParameterValue", "shared_with is only meaningful with access=shared"
        )
    # Department codes have at most 64 characters (geo.models); a longer one names nobody and
    # would not fit the catalogue's column.
    too_long = [code for code in shared_with if len(code) > 64]
    if too_long:
        raise ApiError(
            400,
            "InvalidParameterValue",
            "shared_with: department codes have at most 64 characters",
            {"too_long": too_long[:5]},
        )
    return access, sorted(set(shared_with))


def create_layer(
    session: Session,
    who: Principal,
    layer_id: str,
    *,
    title: str | None,
    geometry_type: str,
    properties: list[PropertySpec],
    description: str | None = None,
    keywords: Sequence[str] = (),
    access: str = "private",
    shared_with: Sequence[str] = (),
    key_property: str | None = None,
    spatial_index: bool = True,
) -> Layer:
    """Register a layer and create its tables, in the caller's transaction."""
    if who.anonymous or not who.has_role("editor") or who.department is None:
        raise ApiError(403, "Forbidden", "registering a layer needs an editor key")
    check_id(layer_id)
    check_geometry_type(geometry_type)
    access, shared = check_access(access, shared_with)
    if key_property is not None and key_property not in {p.name for p in properties}:
        raise ApiError(
            400, "InvalidSchema", f"key_property {key_property!r} is not a declared property"
        )
    if session.get(Layer, layer_id) is not None:
        # Even a layer the caller cannot see: ids are global, and a 409 names no owner.
        raise ApiError(409, "Conflict", f"a collection {layer_id!r} exists already")
    layer = Layer(
        id=layer_id,
        title=title or layer_id,
        description=description,
        keywords=list(keywords),
        geometry_type=geometry_type,
        properties=[p.as_dict() for p in properties],
        key_property=key_property,
        access=access,
        shared_with=shared,
        sharing_type=SHARING_OF_ACCESS[access],
        owner=who.department,
        table_name="l_" + layer_id,
        created_by=who.actor,
    )
    session.add(layer)
    session.flush()
    sync_shared_with(session, who, layer)
    storage.ensure_schema(session)
    storage.create_feature_table(
        session, layer.table_name, geometry_type, properties, spatial_index=spatial_index
    )
    storage.create_history_table(session, layer.table_name, geometry_type)
    versions.bump(session, version_key(layer_id))
    audit.record(
        session,
        who,
        "layer.create",
        layer_id,
        {"access": access, "shared_with": shared, "geometry_type": geometry_type},
    )
    return layer


def sync_shared_with(session: Session, who: Principal, layer: Layer) -> None:
    """`shared_with` is kept for existing clients as whole-layer view grants (origin
    `shared_with`): one per department named while the layer is `shared`, revoked when the
    department leaves the list (docs/decisions.md, issue 11)."""
    wanted = set(layer.shared_with or []) if layer.access == "shared" else set()
    held = {
        g.grantee: g
        for g in session.scalars(
            select(Grant).where(
                Grant.layer_id == layer.id,
                Grant.origin == "shared_with",
                Grant.revoked_at.is_(None),
            )
        )
    }
    by = who.actor or who.department
    for code in sorted(wanted - set(held)):
        session.add(
            Grant(
                layer_id=layer.id, grantee=code, level="view", origin="shared_with", created_by=by
            )
        )
    for gone in set(held) - wanted:
        held[gone].revoked_at = datetime.now(UTC)
        held[gone].revoked_by = by
    session.flush()


def set_properties(session: Session, layer: Layer, properties: list[PropertySpec]) -> None:
    layer.properties = [p.as_dict() for p in properties]
    session.flush()


def update_layer(session: Session, who: Principal, layer_id: str, changes: dict[str, Any]) -> Layer:
    """Metadata and access changes by the owner (or an admin). The schema and geometry type are
    the table's shape and change through uploads, not here.

    A null clears a member, as in a JSON merge patch: the title falls back to the id (as when
    the layer was registered without one), keywords and shared_with become empty."""
    layer = writable_layer(session, who, layer_id, lock=True)
    access = changes.get("access", layer.access)
    shared = changes.get("shared_with", layer.shared_with if access == "shared" else [])
    access, shared = check_access(access, shared or [])
    if access != layer.access:
        layer.sharing_type = SHARING_OF_ACCESS[access]
    layer.access, layer.shared_with = access, shared
    sync_shared_with(session, who, layer)
    if "title" in changes:
        layer.title = changes["title"] or layer.id
    if "description" in changes:
        layer.description = changes["description"]
    if "keywords" in changes:
        layer.keywords = list(changes["keywords"] or [])
    if "key_property" in changes:
        key = changes["key_property"]
        if key is not None and key not in {p["name"] for p in layer.properties}:
            raise ApiError(400, "InvalidSchema", f"key_property {key!r} is not a property")
        layer.key_property = key
    layer.updated_at = datetime.now(UTC)
    versions.bump(session, version_key(layer_id))
    audit.record(session, who, "layer.update", layer_id, {"changed": sorted(changes)})
    session.flush()
    return layer


def delete_layer(session: Session, who: Principal, layer_id: str) -> None:
    layer = writable_layer(session, who, layer_id, lock=True)
    storage.drop_tables(session, layer.table_name)
    session.delete(layer)
    versions.bump(session, version_key(layer_id))
    audit.record(session, who, "layer.delete", layer_id)

"""What the rest of the service needs to know to read a collection's table.

A :class:`LayerSource` describes one readable collection: a department's layer, or a dataset
another package owns (the address library's addresses, admin areas, grids), which counts as a
layer too. Tiles, overlay, identify and features are written against this description, never
against the tables themselves. It lives in the core because it is the contract between the
package that owns a table (and registers it, geo.plugins.Plugin.collections) and the packages
that read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Attribute types a layer may declare (JSON Schema names); the catalogue maps them to SQL types.
PROPERTY_TYPES = ("string", "integer", "number", "boolean", "date", "datetime")


@dataclass(frozen=True)
class Scope:
    """What a grant narrows a collection to, for the caller it was granted to.

    The catalogue applies it when it builds the caller's :class:`LayerSource`: withheld
    attributes are already gone from ``properties`` and the area predicate is already in
    ``where``, so every reader (items, tiles, overlay, identify, exports, queryables, CQL2
    validation) sees the narrowed collection without knowing grants exist. What stays here is
    what caches, audit entries and level checks need to know about the grant itself.
    """

    grant_id: int
    # "view", "download" or "edit" (layers.scope.LEVELS).
    level: str
    # The grant's area predicate, already part of the source's `where` (None: the whole layer).
    area: str | None = None
    # Attributes withheld from the grantee (gone from the source's properties).
    hidden: tuple[str, ...] = ()
    expires_at: datetime | None = None


@dataclass(frozen=True)
class LayerSource:
    id: str
    title: str
    # Schema-qualified, already-quoted SQL identifier, e.g. '"layers"."l_police_stations"'.
    table: str
    geometry_type: str
    # Column name -> one of PROPERTY_TYPES.
    properties: dict[str, str] = field(default_factory=dict)
    id_column: str = "id"
    geometry_column: str = "geom"
    # The same geometry stored in Web Mercator (EPSG:3857) with a GiST index of its own, kept by
    # the table's owner: vector tiles then read it instead of transforming every row (None: the
    # tiles transform geometry_column).
    mercator_column: str | None = None
    # A fixed SQL predicate selecting this layer's rows from a shared table (e.g. one admin level
    # from admin_areas). Written by the service, never taken from a request.
    where: str | None = None
    # Name in geo.versions: every write to the layer bumps it, caches key on it.
    version_key: str = ""
    version: int = 0
    public: bool = True
    owner: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = ()
    # Department layers carry `version`, `updated_by`, `updated_at` columns and a history table
    # (ETags, Part 4 writes); the address library's tables do not.
    versioned: bool = False
    # The grant the caller reads this collection through, when it is narrowed or needs one
    # (None: the owner, the platform administrator, public and unconditionally shared data).
    scope: Scope | None = None

    def scope_key(self) -> str:
        """What caches add to their keys so that nothing made for one grant scope is served for
        another (tiles, label documents): the grant's id, or nothing for the whole layer. A
        grant's changes bump the layer's data version, which the keys carry already."""
        return f"grant:{self.scope.grant_id}" if self.scope else ""

    def relation(self) -> str:
        """SQL for the rows of this collection, usable after FROM with any alias.

        A source with a fixed ``where`` becomes a derived table, so the predicate's bare column
        names never clash with another table's in a join; PostgreSQL flattens the subquery, and
        the table's indexes serve it as before.
        """
        if not self.where:
            return self.table
        return f"(SELECT * FROM {self.table} WHERE {self.where})"

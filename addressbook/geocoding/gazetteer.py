"""The address library as the geocoder sees it: the parser's dictionary plus the codes, centroids
and districts behind every name, built from the database and cached in each process.

Building takes a fraction of a second for a city (tens of thousands of names), parsing takes a
tenth of a millisecond, so the dictionary is built once and kept. It is keyed on the data versions
(`geo.versions`) of the admin areas, the addresses and the address names, which every import and
edit bumps in its own transaction: each worker compares its copy's versions with the database's at
most once per `CHECK_INTERVAL` and rebuilds when they differ, so a road is recognised the moment
it is imported, in every worker, without any worker being told.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.areas.resolver import AreaKeys
from addressbook.geocoding.dictionary import Gazetteer
from addressbook.geocoding.names import load_name_lists
from addressbook.geocoding.places import PlaceIndex, spelled_places
from addressbook.geocoding.spelling import Corrector
from addressbook.geocoding.words import Kind
from geo import versions as data_versions

DATASETS: Final = ("admin_areas", "addresses", "address_names", "places")
# Seconds between two version checks of one worker; tests set it to 0.
CHECK_INTERVAL = 1.0
ADMIN_LEVELS: Final = ("district", "subdistrict", "community")
_ADMIN_PREFIX: Final = (Kind.DISTRICT, Kind.SUBDISTRICT)


@dataclass(frozen=True, slots=True)
class Area:
    """A current admin area with its district, for scoping and for centroid answers."""

    code: str
    name: str
    level: str
    parent_code: str | None
    district_code: str | None
    lon: float | None
    lat: float | None


@dataclass(frozen=True, slots=True)
class Street:
    """A road or compound name in one district, with the mean position of its addresses."""

    kind: str
    name: str
    district_code: str
    lon: float | None
    lat: float | None
    weight: int


@dataclass(frozen=True, eq=False)
class Library:
    """One consistent snapshot of the names; never changed, replaced whole on a rebuild."""

    versions: tuple[int, ...]
    gazetteer: Gazetteer
    corrector: Corrector
    areas: Mapping[str, Area]
    keys: AreaKeys
    places: PlaceIndex
    _streets: Mapping[tuple[str, str], tuple[Street, ...]]
    _by_name: Mapping[str, tuple[Street, ...]]

    def area_codes(self, level: str, name: str | None) -> tuple[str, ...]:
        """Codes of the current areas of `level` that `name` stands for anywhere (usually one;
        a superseded name stands for its successor)."""
        return tuple(r.code for r in self.keys.resolve(level, name, None))

    def named_areas(
        self, district: str | None, subdistrict: str | None, community: str | None
    ) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
        """The codes the admin names of a text stand for, each inside the one above it, by the
        rule imports and edits follow (addressbook.areas.resolver), and the notes of superseded
        names. A subdistrict or community named by an earlier name takes the district along:
        the text's 红桥区双环村街道 is 北辰区双环邨街道 today."""
        keys = self.keys
        districts = [r.code for r in keys.resolve("district", district, ("",))]
        subdistricts = keys.resolve("subdistrict", subdistrict, districts or None)
        if subdistricts:
            communities = keys.resolve("community", community, [r.code for r in subdistricts])
        elif districts:
            communities = [
                r
                for r in keys.resolve("community", community, None)
                if r.district_code in districts
            ] or keys.resolve("community_in_district", community, districts)
        else:
            communities = keys.resolve("community", community, None)
        found = [*subdistricts, *communities]
        notes = tuple(dict.fromkeys(r.note for r in found if r.note))
        if notes and districts:
            districts = [r.district_code for r in found if r.district_code]
        areas = {
            "district": tuple(dict.fromkeys(districts)),
            "subdistrict": tuple(r.code for r in subdistricts),
            "community": tuple(r.code for r in communities),
        }
        return {level: codes for level, codes in areas.items() if codes}, notes

    def streets(self, kind: str, name: str | None) -> tuple[Street, ...]:
        """The districts' entries of a road or compound name, heaviest first."""
        return self._streets.get((kind, name), ()) if name else ()

    def knows(self, kind: str, name: str | None) -> bool:
        return bool(self.streets(kind, name))

    def named(self, name: str) -> tuple[Street, ...]:
        """Every road and compound of that name, whatever its kind."""
        return self._by_name.get(name, ())

    def peel(self, typed: str) -> tuple[str, tuple[str, ...]]:
        """Strip a leading city and district / subdistrict names from folded text; return the
        rest and the districts they name (when something follows them)."""
        rest = re.sub(r"^天津市?", "", typed) or typed
        districts: tuple[str, ...] = ()
        while rest:
            found = next(
                (
                    (length, entry)
                    for length, entries in self.gazetteer.matches_at(rest, 0)
                    for entry in entries
                    if entry.kind in _ADMIN_PREFIX and not entry.weak and length < len(rest)
                ),
                None,
            )
            if found is None:
                break
            length, entry = found
            if entry.kind is Kind.DISTRICT:
                districts = self.area_codes("district", entry.name)
            elif not districts and entry.district:
                districts = self.area_codes("district", entry.district)
            rest = rest[length:]
        return rest, districts


def _load_areas(session: Session) -> dict[str, Area]:
    rows = session.execute(
        text(
            """
            SELECT code, name, level, parent_code, district_code,
                   ST_X(centroid), ST_Y(centroid)
            FROM current_admin_area_tree ORDER BY code
            """
        )
    ).tuples()
    return {row[0]: Area(*row) for row in rows}


def _load_streets(session: Session) -> dict[tuple[str, str], tuple[Street, ...]]:
    rows = session.execute(
        text(
            """
            SELECT kind, name, district_code, ST_X(centroid), ST_Y(centroid), weight
            FROM address_names WHERE kind IN ('road', 'compound') AND district_code IS NOT NULL
            ORDER BY weight DESC, district_code
            """
        )
    ).tuples()
    streets: dict[tuple[str, str], list[Street]] = {}
    for row in rows:
        streets.setdefault((row[0], row[1]), []).append(Street(*row))
    return {key: tuple(value) for key, value in streets.items()}


def build(session: Session, seen: tuple[int, ...] = ()) -> Library:
    """A fresh snapshot; `seen` are the data versions read before reading the names."""
    keys = AreaKeys.load(session)
    gazetteer = Gazetteer.build(**load_name_lists(session, keys))
    areas = _load_areas(session)
    streets = _load_streets(session)
    by_name: dict[str, tuple[Street, ...]] = {}
    for (_, name), found in streets.items():
        by_name[name] = by_name.get(name, ()) + found
    return Library(
        versions=seen,
        gazetteer=gazetteer,
        corrector=Corrector(name for _, name in streets),
        areas=MappingProxyType(areas),
        keys=keys,
        places=PlaceIndex.build(spelled_places(session)),
        _streets=MappingProxyType(streets),
        _by_name=MappingProxyType(by_name),
    )


class _Cache:
    def __init__(self) -> None:
        self.library: Library | None = None
        self.checked_at = float("-inf")
        self.lock = threading.Lock()


_cache = _Cache()


def _versions(session: Session) -> tuple[int, ...]:
    found = data_versions.versions(session, DATASETS)
    return tuple(found[name] for name in DATASETS)


def _rebuilt(session: Session, seen: tuple[int, ...]) -> Library:
    """A new snapshot, built once however many threads ask.

    The snapshot is a few hundred thousand long-lived objects; the garbage collector would
    traverse them all in every full collection (a pause of a tenth of a second or more, taken
    by whatever request allocates at the time), so they are frozen out of its sight: the old
    snapshot is unfrozen first, to be collected."""
    with _cache.lock:  # one rebuild at a time; the others wait for it and use it
        library = _cache.library
        if library is None or library.versions != seen:
            gc.unfreeze()
            _cache.library = None
            library = build(session, seen)
            gc.collect()
            gc.freeze()
            _cache.library = library
        return library


def current(session: Session) -> Library:
    """This worker's snapshot, rebuilt first if the library changed since it was built."""
    library = _cache.library
    if library is not None and time.monotonic() - _cache.checked_at < CHECK_INTERVAL:
        return library
    seen = _versions(session)
    if library is None or library.versions != seen:
        library = _rebuilt(session, seen)
    _cache.checked_at = time.monotonic()
    return library


def expire() -> None:
    """Make the next `current` call compare versions (after this worker wrote to the library)."""
    _cache.checked_at = float("-inf")

"""The parser's dictionary (`Gazetteer`): every spelling of every name the library knows, with
what it stands for, for longest-match lookup while parsing.

Built at run time from plain name lists (addressbook.geocoding.gazetteer reads them from the
library): official names give the spellings people write (和平区 -> 和平, 王顶堤街道 -> 王顶堤,
花园路社区居委会 -> 花园路社区), marked weak where they are only shortened forms. A finished
gazetteer never changes; `extended` makes a new one with more names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from addressbook.geocoding.normalize import fold
from addressbook.geocoding.words import (
    TIANJIN_HISTORICAL_ALIASES,
    Aliases,
    Kind,
    kind_of,
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One meaning of a surface string: the canonical name it stands for and where that lies.

    `weak` marks shortened forms derived from a full name (和平 for 和平区, 王顶堤 for 王顶堤街道,
    和进里 for 和进里社区居委会): they are only trusted where a new element starts and never when
    they are the head of a longer road name (河北路, 南开三马路).
    """

    kind: Kind
    name: str
    district: str | None = None
    subdistrict: str | None = None
    weak: bool = False


# --- deriving the spellings people use from official names ---------------------------------

_DISTRICT_SUFFIX: Final = re.compile(r"(?:新区|区|县)$")
_SUBDISTRICT_SUFFIX: Final = re.compile(r"(?:街道办事处|街道|办事处|镇|乡)$")
_COMMUNITY_SUFFIX: Final = re.compile(r"(?:社区居民委员会|社区居委会|居民委员会|居委会|社区)$")
_VILLAGE_SUFFIX: Final = re.compile(r"(?:农工商联合公司)?\(?(?:村民委员会|村委会)\)?$")


def _district_surfaces(name: str) -> Iterable[tuple[str, bool]]:
    yield name, False
    short = _DISTRICT_SUFFIX.sub("", name)
    if short != name and len(short) >= 2:
        yield short, True


def _subdistrict_surfaces(name: str) -> Iterable[tuple[str, bool]]:
    """杨村街道 is still typed 杨村镇, 白古屯镇 as 白古屯乡: every suffix form is accepted."""
    yield name, False
    if name.startswith("天津") and len(name) > 4:
        yield name[2:], False
    base = _SUBDISTRICT_SUFFIX.sub("", name)
    if base == name or len(base) < 2:
        return
    for suffix in ("街道", "镇", "乡"):
        yield base + suffix, False
    yield base + "街", True
    if kind_of(base) is not Kind.ROAD:  # 向阳路 is the road, not 向阳路街道
        yield base, True


def _community_surfaces(name: str) -> Iterable[tuple[str, bool]]:
    yield name, False
    village = _VILLAGE_SUFFIX.sub("", name)
    if village != name and len(village) >= 2:
        yield (village if village.endswith("村") else village + "村"), False
        return
    base = _COMMUNITY_SUFFIX.sub("", name)
    if base != name and len(base) >= 2 and "虚拟" not in base:
        yield base + "社区", False
        if kind_of(base) in (None, Kind.COMPOUND):  # 红旗路社区 is not all of 红旗路
            yield base, True


def _plain_surfaces(name: str) -> Iterable[tuple[str, bool]]:
    yield name, False
    if name.endswith("小区") and len(name) >= 4:
        yield name[:-2], False


_SURFACES: Final = {
    Kind.DISTRICT: _district_surfaces,
    Kind.SUBDISTRICT: _subdistrict_surfaces,
    Kind.COMMUNITY: _community_surfaces,
    Kind.ROAD: _plain_surfaces,
    Kind.COMPOUND: _plain_surfaces,
}


class _IndexBuilder:
    """Mutable staging area; a finished `Gazetteer` never changes."""

    def __init__(self, index: Mapping[str, tuple[Entry, ...]] | None = None) -> None:
        self._index: dict[str, list[Entry]] = {k: list(v) for k, v in (index or {}).items()}

    def add(self, name: str, entry: Entry, surface_of: str | None = None) -> None:
        for surface, weak in _SURFACES[entry.kind](fold(surface_of or name)):
            variant = Entry(entry.kind, entry.name, entry.district, entry.subdistrict, weak)
            bucket = self._index.setdefault(surface, [])
            if variant not in bucket:
                bucket.append(variant)

    def alias(self, alias: str, canonical: str, kind: Kind) -> None:
        """The alias stands for every entry of the canonical name, with its parents."""
        targets = [
            e
            for e in self._index.get(fold(canonical), ())
            if e.kind is kind and e.name == canonical and not e.weak
        ] or [Entry(kind, canonical)]
        for target in targets:
            self.add(canonical, target, surface_of=alias)

    def finish(self) -> Gazetteer:
        # The lengths of the surfaces by their first two characters: at most positions of a
        # text no surface starts with the two characters there, and one lookup says so.
        lengths: dict[str, set[int]] = {}
        strong: dict[str, set[int]] = {}
        for surface, entries in self._index.items():
            lengths.setdefault(surface[:2], set()).add(len(surface))
            if not all(boundary_only(entry) for entry in entries):
                strong.setdefault(surface[:2], set()).add(len(surface))
        return Gazetteer(
            {k: tuple(v) for k, v in self._index.items()},
            {k: tuple(sorted(v, reverse=True)) for k, v in lengths.items()},
            {k: tuple(sorted(v)) for k, v in strong.items()},
            frozenset(
                surface
                for surface, entries in self._index.items()
                if not all(boundary_only(entry) for entry in entries)
            ),
            any(len(surface) == 1 for surface in self._index),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Gazetteer:
    """Immutable name dictionary for longest-match lookup: surface string -> meanings.

    Built from plain data (so the library code can fill it from a query); `extended` returns a
    new gazetteer with more names without re-deriving the existing ones. The mappings are plain
    dicts typed read-only (a MappingProxyType costs a method call on every lookup, and parsing
    does hundreds of lookups per text).
    """

    _index: Mapping[str, tuple[Entry, ...]]
    _lengths: Mapping[str, tuple[int, ...]]  # by the first two characters (one, for one-long)
    # The surfaces with a meaning that counts anywhere (not only where a token starts, see
    # boundary_only), and their lengths by the first two characters.
    _strong: Mapping[str, tuple[int, ...]]
    _strong_surfaces: frozenset[str]
    _singles: bool = False  # whether any surface is one character long

    @classmethod
    def build(
        cls,
        *,
        districts: Iterable[str] = (),
        subdistricts: Iterable[tuple[str, str | None]] = (),
        communities: Iterable[tuple[str, str | None, str | None]] = (),
        roads: Iterable[tuple[str, str | None]] = (),
        compounds: Iterable[tuple[str, str | None]] = (),
        aliases: Aliases | None = None,
        historical_aliases: Aliases = TIANJIN_HISTORICAL_ALIASES,
    ) -> Gazetteer:
        """Names with their parents: subdistricts as (name, district), communities as
        (name, subdistrict, district), roads and compounds as (name, district); an unknown
        parent is None or "". Official names that differ from the short names come as aliases,
        e.g. {"花园路社区居委会": ("花园路社区", "community"), "十四津路": ("十四经路", "road")}."""
        builder = _IndexBuilder()
        _add_all(builder, districts, subdistricts, communities, roads, compounds)
        _add_aliases(builder, {**historical_aliases, **(aliases or {})})
        return builder.finish()

    def extended(
        self,
        *,
        districts: Iterable[str] = (),
        subdistricts: Iterable[tuple[str, str | None]] = (),
        communities: Iterable[tuple[str, str | None, str | None]] = (),
        roads: Iterable[tuple[str, str | None]] = (),
        compounds: Iterable[tuple[str, str | None]] = (),
        aliases: Aliases | None = None,
    ) -> Gazetteer:
        """A copy with more names, for a road or compound imported since the last build."""
        builder = _IndexBuilder(self._index)
        _add_all(builder, districts, subdistricts, communities, roads, compounds)
        _add_aliases(builder, aliases or {})
        return builder.finish()

    def lookup(self, surface: str) -> tuple[Entry, ...]:
        """Meanings of exactly this spelling (after width/script folding)."""
        return self._index.get(fold(surface), ())

    def matches_at(self, text: str, start: int) -> list[tuple[int, tuple[Entry, ...]]]:
        """Every surface that begins at `text[start]`, longest first, as (length, meanings)."""
        found = []
        index = self._index
        head = text[start : start + 2]
        room = len(text) - start
        for length in self._lengths.get(head, ()):
            if length <= room and (entries := index.get(text[start : start + length])):
                found.append((length, entries))
        if self._singles and len(head) == 2 and (entries := index.get(head[0])):
            found.append((1, entries))
        return found

    def strong_starts(self, text: str) -> frozenset[int]:
        """Positions of `text` where a surface begins that has a meaning that counts anywhere
        (not only where a token starts, see boundary_only)."""
        surfaces, strong = self._strong_surfaces, self._strong
        starts = []
        for start in range(len(text)):
            head = text[start : start + 2]
            lengths = strong.get(head, ())
            if self._singles and len(head) == 2:
                lengths += strong.get(head[0], ())
            room = len(text) - start
            for length in lengths:
                if length <= room and text[start : start + length] in surfaces:
                    starts.append(start)
                    break
        return frozenset(starts)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"<Gazetteer: {len(self._index)} spellings>"


def _add_all(
    builder: _IndexBuilder,
    districts: Iterable[str],
    subdistricts: Iterable[tuple[str, str | None]],
    communities: Iterable[tuple[str, str | None, str | None]],
    roads: Iterable[tuple[str, str | None]],
    compounds: Iterable[tuple[str, str | None]],
) -> None:
    for name in districts:
        builder.add(name, Entry(Kind.DISTRICT, name))
    for name, district in subdistricts:
        builder.add(name, Entry(Kind.SUBDISTRICT, name, district or None))
    for name, subdistrict, district in communities:
        builder.add(name, Entry(Kind.COMMUNITY, name, district or None, subdistrict or None))
    for name, district in roads:
        builder.add(name, Entry(Kind.ROAD, name, district or None))
    for name, district in compounds:
        builder.add(name, Entry(Kind.COMPOUND, name, district or None))


def _add_aliases(builder: _IndexBuilder, aliases: Aliases) -> None:
    for alias, (canonical, kind) in aliases.items():
        builder.alias(alias, canonical, Kind(kind))


def boundary_only(entry: Entry) -> bool:
    """Short names, and village names (高庄村 inside 搬高庄村), only count where a token starts."""
    return entry.weak or entry.kind is Kind.COMMUNITY

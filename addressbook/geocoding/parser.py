"""Dictionary-driven splitting of a Tianjin address into the public-security address hierarchy.

The geocoder matches the parse result structurally in PostGIS (exact first, then fuzzy inside
the parsed admin scope), so the parser has to find the elements reliably rather than guess a
single best answer. Names come from a `Gazetteer` built at run time from the address library:
a road or compound is recognised as soon as it is imported. Names the library does not know yet
are still split out by their suffix (…路, …里, …花园), with the dictionary taking precedence.

The result and its levels are in geocoding.parsed, the dictionary in geocoding.dictionary, the
Tianjin words and patterns in geocoding.words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Final

from addressbook.geocoding.dictionary import Entry, Gazetteer, boundary_only
from addressbook.geocoding.normalize import normalize_with_notes
from addressbook.geocoding.parsed import ParsedAddress
from addressbook.geocoding.words import (
    ALTERNATIVES,
    CROSSING,
    EXTENSION,
    FILLER,
    GLUED_ROAD,
    HIGHWAY,
    KIND_ORDER,
    NUMBER,
    NUMBER_GROUPS,
    OTHER_CITY,
    ROAD_NOTE,
    ROAD_TAIL,
    SUFFIX_NAMES,
    ZONE,
    Kind,
    is_cjk,
    kind_of,
    scan_word,
    starts_with_suffix,
    suffix_of,
)

# The hierarchy fields of ParsedAddress, city to room.
_FIELDS: Final = tuple(item.name for item in fields(ParsedAddress) if item.type == "str | None")


# --- parsing ------------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    """Working state of one parse; discarded once the frozen result is built."""

    gazetteer: Gazetteer | None
    values: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(_FIELDS))
    chosen: dict[Kind, Entry] = field(default_factory=dict)
    compound_from_dictionary: bool = False
    last: str | None = None  # what the previous token was: "road", "compound", "number", ...
    place: str | None = None  # a bare community name that may also name the compound
    pending: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        return self.values[key]

    def has_structure(self) -> bool:
        return any(self.values[key] for key in ("building", "unit", "room"))

    def remark(self, text: str) -> None:
        """Noise after the structure, or text in an unparsed position."""
        if text.strip():
            (self.notes if self.has_structure() else self.unparsed).append(text.strip())


def parse(text: str, gazetteer: Gazetteer) -> ParsedAddress:
    """Split `text` into hierarchy elements using the names in `gazetteer`."""
    normalized, removed = normalize_with_notes(text)
    main, others = _choose_alternative(normalized)
    state = _State(gazetteer)
    state.notes.extend(removed)
    state.notes.extend(others)
    segments = [segment for segment in _take_city(main, state).split(" ") if segment]
    for index, segment in enumerate(segments):
        state.last = None  # adjacency never crosses a space
        if index and state.get("city") is None and segment.startswith("天津"):
            segment = _take_city(segment, state)  # 工厂: 天津滨海高新区...
        _parse_segment(segment, state)
        following = segments[index + 1][:1] if index + 1 < len(segments) else ""
        if not following.isdigit():  # 亚泰津澜 1-1-2503: unknown text may name the compound
            _flush(state, before_structure=False)
    _infer_parents(state)
    return ParsedAddress(
        normalized=normalized,
        notes=tuple(state.notes),
        unparsed=" ".join(state.unparsed),
        **state.values,
    )


def _choose_alternative(text: str) -> tuple[str, list[str]]:
    """`A / B` or `A; B` lists several addresses: parse the first Tianjin one, note the rest."""
    parts = [part for part in ALTERNATIVES.split(text) if part]
    if len(parts) <= 1:
        return text, []
    chosen = next((part for part in parts if part.startswith("天津")), parts[0])
    return chosen, [part for part in parts if part is not chosen]


def _foreign_city(text: str) -> str | None:
    match = OTHER_CITY.match(text)
    return match.group() if match and not match.group().startswith("天津") else None


def _take_city(text: str, state: _State) -> str:
    """Record the city named at the start of `text` and return the rest."""
    if other := _foreign_city(text):
        state.values["city"] = other
        state.gazetteer = None  # Tianjin names mean nothing in another city
        return text[len(other) :]
    if text.startswith("天津市"):
        state.values["city"] = "天津市"
        return text[3:]
    if text.startswith("天津"):
        state.values["city"] = "天津市"
        word = scan_word(text, 0, frozenset())
        tail = text[2 : word[0]] if word else ""
        is_name = tail in SUFFIX_NAMES or EXTENSION.fullmatch(tail) is not None
        known = state.gazetteer is not None and state.gazetteer.matches_at(text, 0)
        return text if is_name or known else text[2:]  # 天津大道, 天津空港经济区 are names
    return text


def _parse_segment(segment: str, state: _State) -> None:
    stops = _dictionary_starts(segment, state.gazetteer)
    position = 0
    while position < len(segment):
        if state.get("room") is not None:
            _flush(state, before_structure=False)
            state.notes.append(segment[position:])
            return
        position = _next_token(segment, position, stops, state)


def _dictionary_starts(segment: str, gazetteer: Gazetteer | None) -> frozenset[int]:
    """Positions where a name that counts anywhere begins: suffix words must stop there."""
    if gazetteer is None:
        return frozenset()
    return gazetteer.strong_starts(segment)


def _next_token(segment: str, position: int, stops: frozenset[int], state: _State) -> int:
    """Consume one token at `position` and return where the next one starts."""
    ch = segment[position]
    annex = ch == "增" and segment[position + 1 : position + 2].isdigit()
    if (ch.isascii() and ch.isalnum()) or annex:
        if state.get("road") is None and (highway := HIGHWAY.match(segment, position)):
            _flush(state, before_structure=False)
            _set_road(state, highway.group(), None)
            return highway.end()
        if number := NUMBER.match(segment, position):
            return _on_number(number, segment, state)
    if segment.startswith("天津市", position) and state.values["city"] in (None, "天津市"):
        _flush(state, before_structure=False)  # a repeated city inside the text
        state.values["city"] = "天津市"
        return position + 3
    if (hit := _dictionary_token(segment, position, stops, state)) is not None:
        return hit
    if state.last == "road" and not state.pending and (end := _road_remark(segment, position)):
        state.notes.append(segment[position:end])
        return end
    if word := scan_word(segment, position, stops):
        end, kind = word
        _on_word(segment[position:end], kind, state)
        return end
    if not state.pending and (filler := FILLER.match(segment, position)):
        return filler.end()
    state.pending.append(ch)
    return position + 1


def _road_remark(segment: str, position: int) -> int | None:
    """Cross streets and sides after a road (`与杨北公路交口`, `以东`, `西侧`) are notes."""
    if remark := ROAD_NOTE.match(segment, position):
        return remark.end()
    if CROSSING.match(segment, position):
        word = scan_word(segment, position + 1, frozenset())
        if word and word[1] is Kind.ROAD:
            remark = ROAD_NOTE.match(segment, word[0])
            return remark.end() if remark else word[0]
    return None


# --- dictionary tokens ----------------------------------------------------------------------


def _dictionary_token(
    segment: str, position: int, stops: frozenset[int], state: _State
) -> int | None:
    """Consume the longest dictionary name at `position` that makes sense here, if any."""
    if state.gazetteer is None:
        return None
    for length, entries in state.gazetteer.matches_at(segment, position):
        end = position + length
        weak = any(entry.weak for entry in entries)
        blocked = _head_of_longer(segment, end, stops) if weak else frozenset()
        entry = _pick(entries, state, blocked=blocked)
        if entry is None:
            continue
        redundant = state.get(entry.kind.value) == entry.name
        word = scan_word(segment, position, stops) if entry.weak and redundant else None
        if word and word[1] is Kind.COMPOUND:
            return None  # 团泊镇团泊湖庭院: a repeated short name that starts a compound name
        _on_entry(entry, segment[position:end], state)
        return end
    return None


_ALL_KINDS: Final = frozenset(Kind)
_LOCAL_KINDS: Final = frozenset((Kind.SUBDISTRICT, Kind.COMMUNITY))


def _head_of_longer(segment: str, end: int, stops: frozenset[int]) -> frozenset[Kind]:
    """Kinds of short name that, ending at `end`, would only be the head of a longer name:
    河北+路, 南开+三马路, 万新+村, 仁爱濠景+大厦; and for subdistricts and communities,
    大寺+新家园, 梅江+康城 (a one-character stem is not a compound name on its own; district
    short names such as 津南八里台 are exempt, they are typed as prefixes)."""
    if end >= len(segment):
        return frozenset()
    if starts_with_suffix(segment, end) or ROAD_TAIL.match(segment, end):
        return _ALL_KINDS
    follower = scan_word(segment, end, stops)
    if follower is None or follower[1] is not Kind.COMPOUND:
        return frozenset()
    word = segment[end : follower[0]]
    found = suffix_of(word)
    return _LOCAL_KINDS if found and len(word) - len(found[0]) <= 1 else frozenset()


def _consistent(entry: Entry, state: _State) -> bool:
    """An entry from another district (or, for a community, another subdistrict) is not meant."""
    district = state.get("district")
    if entry.kind is not Kind.DISTRICT and district and entry.district not in (None, district):
        return False
    subdistrict = state.chosen.get(Kind.SUBDISTRICT)
    return not (
        entry.kind is Kind.COMMUNITY
        and subdistrict is not None
        and entry.subdistrict not in (None, subdistrict.name)
    )


def _pick(entries: tuple[Entry, ...], state: _State, *, blocked: frozenset[Kind]) -> Entry | None:
    """Prefer a meaning that fills an empty slot, then one that repeats a known element, then a
    conflicting one (noted); strong before weak, shallow before deep. A short name that repeats
    the known district (塘沽 in 滨海新区塘沽开发区) is read as the district, not as the
    subdistrict of the same name."""
    best: tuple[tuple[int, bool, int], Entry] | None = None
    for entry in entries:
        if (entry.weak and entry.kind in blocked) or (boundary_only(entry) and state.pending):
            continue
        if not _consistent(entry, state):
            continue
        current = state.get(entry.kind.value)
        conflict = 0 if current is None else 1 if current == entry.name else 2
        if conflict == 2 and entry.weak:
            continue
        if entry.weak and entry.kind is Kind.DISTRICT and conflict == 1:
            return entry
        rank = (conflict, entry.weak, KIND_ORDER[entry.kind])
        if best is None or rank < best[0]:
            best = (rank, entry)
    return best[1] if best else None


def _on_entry(entry: Entry, surface: str, state: _State) -> None:
    state.place = None
    if entry.kind is Kind.ROAD:
        _flush(state, before_structure=False)
        _set_road(state, entry.name, entry)
    elif entry.kind is Kind.COMPOUND:
        _set_compound(state, entry.name, from_dictionary=True)
    else:
        _flush(state, before_structure=False)
        _set_admin(state, entry.kind, entry.name, entry)
        if entry.weak and entry.kind is Kind.COMMUNITY:
            _community_as_place(surface, state)
    if state.values["city"] is None:
        state.values["city"] = "天津市"


def _community_as_place(surface: str, state: _State) -> None:
    """Communities are named after their compound (和进里, 芳水河畔): the bare name is both when it
    looks like one or when building numbers follow it."""
    kind = kind_of(surface)
    if kind is Kind.COMPOUND and not state.compound_from_dictionary:
        _set_compound(state, surface, from_dictionary=False)  # 万新村远翠中里: the later wins
    elif kind is None:
        state.place = surface


def _set_admin(state: _State, kind: Kind, name: str, entry: Entry | None) -> None:
    """Fill an admin level; a different value is a conflict and goes to the notes, except that
    a later district replaces an earlier one while nothing below it is known."""
    key = kind.value
    current = state.get(key)
    if current == name:
        state.last = "admin"
        return
    if current is None or (kind is Kind.DISTRICT and not _deeper_than_district(state)):
        if current is not None:
            state.notes.append(current)  # 天津河东区...东丽区卫国道: the later, typed one wins
        state.values[key] = name
        if entry is not None:
            state.chosen[kind] = entry
        else:
            state.chosen.pop(kind, None)
    else:
        state.notes.append(name)
    state.last = "admin"


def _deeper_than_district(state: _State) -> bool:
    """Whether anything was found that the district is the scope of."""
    return any(state.values[key] for key in ("subdistrict", "community", "road", "compound"))


def _set_road(state: _State, name: str, entry: Entry | None) -> None:
    current = state.get("road")
    if current is None:
        state.values["road"] = name
        if entry is not None:
            state.chosen[Kind.ROAD] = entry
    elif current != name:
        state.notes.append(name)  # a second road is a cross street or landmark
    state.last = "road"


def _set_compound(state: _State, name: str, *, from_dictionary: bool) -> None:
    """Adjacent compound words form one name (万科水晶城皓石园) unless one is a dictionary
    name, which wins; a zone (生态城旅游区, 工业园) gives way to the place inside it."""
    adjacent = state.last == "compound" and not state.pending
    prefix = "".join(state.pending)
    if prefix and not from_dictionary and state.get("compound") is None:
        state.pending.clear()
        name = prefix + name  # 尚8文化创意产业园: digits split the name
    _flush(state, before_structure=False)
    current = state.get("compound")
    if current is None or current == name:
        pass
    elif adjacent and not from_dictionary and not state.compound_from_dictionary:
        if ZONE.search(current):
            state.notes.append(current)
        else:
            name = current + name
    elif adjacent and state.compound_from_dictionary:
        state.notes.append(name)
        name, from_dictionary = current, True
    elif not state.has_structure():
        state.notes.append(current)
    else:
        state.notes.append(name)
        name, from_dictionary = current, state.compound_from_dictionary
    state.values["compound"] = name
    state.compound_from_dictionary = from_dictionary
    state.last = "compound"


def _on_word(word: str, kind: Kind, state: _State) -> None:
    """A name recognised by its suffix only: kept as typed."""
    if kind is Kind.ROAD:
        _flush(state, before_structure=False)
        _set_road(state, word, None)
    elif kind is Kind.COMPOUND:
        _set_compound(state, word, from_dictionary=False)
    else:
        _flush(state, before_structure=False)
        _set_admin(state, kind, word, None)


def _flush(state: _State, *, before_structure: bool) -> None:
    """Settle unknown text: right before a building number it names the compound
    (芳水河畔22-1-502, 亚泰津澜1-1-2503); anywhere else it is left over."""
    text = "".join(state.pending).strip(" -")
    state.pending.clear()
    if before_structure and not text and state.last == "admin" and state.get("compound") is None:
        state.values["compound"] = state.place
    if not text:
        return
    named = sum(map(is_cjk, text)) >= 2
    current = state.get("compound")
    merge = any(map(is_cjk, text)) and state.last == "compound"
    if before_structure and merge and not state.compound_from_dictionary:
        state.values["compound"] = (current or "") + text  # 万科新里 + 程
    elif before_structure and named and (current is None or ZONE.search(current)):
        if current is not None:
            state.notes.append(current)  # 经济开发区 ... 帝达东谷国际6号楼
        state.values["compound"] = text
        state.compound_from_dictionary = False
    else:
        state.remark(text)


# --- number tokens --------------------------------------------------------------------------


def _on_number(match: re.Match[str], segment: str, state: _State) -> int:
    """Consume a number token; floors and phases (4楼, 3期, 9区) are notes, not levels."""
    group = next(name for name in NUMBER_GROUPS if match.group(name) is not None)
    value = match.group(group)
    end = match.end()
    if group == "bare" and end < len(segment) and is_cjk(segment[end]):
        return _on_glued_number(value, segment, end, state)
    if group in ("floor", "zone"):
        _flush(state, before_structure=True)
        state.notes.append(value)
    elif group == "house":
        _on_house_number(match, segment, state)
    else:
        _flush(state, before_structure=True)
        _on_structure(group, value, state)
    state.last = "number"
    return end


def _on_glued_number(value: str, segment: str, end: int, state: _State) -> int:
    """Digits followed by a name: a house number after a road (围堤道53丽晶大厦), part of a road
    name (海泰发展6道), or part of a compound name (58间新区, 尚8文化创意产业园)."""
    if road_tail := GLUED_ROAD.match(segment, end):
        name = "".join(state.pending) + value + road_tail.group()
        state.pending.clear()
        _set_road(state, name, None)
        return road_tail.end()
    if state.last == "road" and state.get("house_number") is None and not state.pending:
        state.values["house_number"] = value
        state.last = "number"
    else:
        state.pending.append(value)
    return end


def _on_house_number(match: re.Match[str], segment: str, state: _State) -> None:
    """N号 is the house number after a road or before a building number (华鼎新区1号21号楼), and
    a building number inside a compound or when a unit or unit-room group follows
    (颐安花园西区4号5门102)."""
    number = match.group("house") + (match.group("annex") or "")
    following = NUMBER.match(segment, match.end())
    next_is_number = following is not None and bool(
        following.group("unit") or following.group("dash")
    )
    after_road = state.last == "road" or (
        state.get("road") is not None and state.get("compound") is None and not state.pending
    )
    before_building = following is not None and following.group("building") is not None
    if (before_building or (not next_is_number and after_road)) and not state.get("house_number"):
        _flush(state, before_structure=False)
        state.values["house_number"] = number
        return
    _flush(state, before_structure=True)
    _put(state, "building", number)


def _on_structure(group: str, value: str, state: _State) -> None:
    """Building, unit, room, a dash group, or a bare number placed by what came before it."""
    if group == "building":
        _put(state, "building", value)
    elif group == "unit":
        _put(state, "room" if len(value) >= 3 else "unit", value)  # 1903单元 is an office
    elif group == "room":
        _put(state, "room", value)
    elif group == "dash":
        _on_dash(value.split("-"), state)
    elif state.has_structure() or state.get("compound") or state.get("house_number"):
        _put(state, "room", value)  # 1号楼1204, 建材大厦902
    elif state.get("road") is not None and state.get("house_number") is None:
        state.values["house_number"] = value
    else:
        state.remark(value)


def _put(state: _State, key: str, value: str) -> None:
    """Set a number slot once; a second value (a duplicated address) is a note."""
    if state.get(key) is None:
        state.values[key] = value
    else:
        state.notes.append(value)


def _on_dash(parts: list[str], state: _State) -> None:
    """18-3-502 is building-unit-room, 23-601 building-room, 3-2 building-unit; after a known
    building (11号楼1-401) the group is unit-room; 1001-1005 is a range of rooms."""
    if len(parts) == 2 and all(len(p) >= 3 for p in parts):
        _put(state, "room", "-".join(parts))
        return
    if state.get("building") is None:
        _put(state, "building", parts[0])
        parts = parts[1:]
    if (len(parts) == 1 and len(parts[0]) >= 3) or state.get("unit") is not None:
        _put(state, "room", "-".join(parts))
        return
    _put(state, "unit", parts[0])
    if len(parts) > 1:
        _put(state, "room", "-".join(parts[1:]))


# --- parents from children --------------------------------------------------------------------


def _infer_parents(state: _State) -> None:
    """A known subdistrict, community, road or compound implies its district (and a community
    its subdistrict) when the dictionary says so unambiguously."""
    community = state.chosen.get(Kind.COMMUNITY)
    if state.get("subdistrict") is None and community and community.subdistrict:
        state.values["subdistrict"] = community.subdistrict
    if state.get("district") is None:
        for kind in (Kind.SUBDISTRICT, Kind.COMMUNITY, Kind.ROAD, Kind.COMPOUND):
            entry = state.chosen.get(kind)
            if entry and entry.district and _unambiguous(entry, state):
                state.values["district"] = entry.district
                break
    if state.get("district") is not None and state.values["city"] is None:
        state.values["city"] = "天津市"


def _unambiguous(entry: Entry, state: _State) -> bool:
    """Whether every entry of this name and kind lies in the same district."""
    if state.gazetteer is None:
        return False
    districts = {
        e.district
        for e in state.gazetteer.lookup(entry.name)
        if e.kind is entry.kind and e.name == entry.name
    }
    return len(districts) == 1

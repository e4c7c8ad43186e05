"""Reading a text: its parse, the readings that correct a misspelt name or leave out a word the
library does not know, and what each reading asks for (areas as codes by the area resolver's
rule, elements in the library's spelling). Step 1 of the geocoder (geocoding.geocoder).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from sqlalchemy.orm import Session

from addressbook.geocoding import matching, scoring
from addressbook.geocoding.gazetteer import Library
from addressbook.geocoding.parsed import ParsedAddress
from addressbook.geocoding.parser import parse
from addressbook.geocoding.spelling import Correction, Option, apply, corrections, unexplained
from addressbook.models import ELEMENTS

TIANJIN: Final = "天津市"


@dataclass(frozen=True)
class Understood:
    """A text after parsing and spelling correction, with what it asks for."""

    text: str
    parsed: ParsedAddress
    fixes: tuple[Correction, ...] = ()
    # Words the library does not know, left out of this reading.
    ignored: tuple[str, ...] = ()
    wanted: scoring.Wanted = field(default_factory=scoring.Wanted)

    @property
    def foreign(self) -> bool:
        return self.parsed.city not in (None, TIANJIN)


def _unsure(parsed: ParsedAddress, library: Library) -> bool:
    """Whether the parse has a name the library does not know, or text it did not understand:
    the signs of a misspelt name."""
    return (
        bool(parsed.unparsed)
        or (parsed.road is not None and not library.knows("road", parsed.road))
        or (parsed.compound is not None and not library.knows("compound", parsed.compound))
    )


def understand(text: str, library: Library) -> list[Understood]:
    """The readings of a text: its parse and, when the parse has a road or compound name the
    library does not know or text it did not understand, one parse per plausible correction of
    the unknown words (see spelling.corrections). The wanted elements are filled in later, for a
    whole batch at once, by `_standardise`."""
    parsed = parse(text, library.gazetteer)
    readings = [Understood(text, parsed)]
    if parsed.city not in (None, TIANJIN) or not _unsure(parsed, library):
        return readings
    named = set(library.area_codes("district", parsed.district))
    centre = _centre(parsed, library)

    def standing(name: str) -> tuple[bool, float]:
        """In the named district? How close to the deepest area the text names?"""
        streets = library.named(name)
        inside = not named or any(s.district_code in named for s in streets)
        if centre is None:
            return inside, 0.0
        x, y = centre
        distances = [math.hypot(s.lon - x, s.lat - y) for s in streets if s.lon and s.lat]
        return inside, -min(distances, default=0.0)

    normalized = parsed.normalized
    options = corrections(
        normalized, library.gazetteer, library.corrector, standing, parsed.district
    )
    return readings + _corrected(text, normalized, options, library, bool(parsed.district))


def without_unknown_words(reading: Understood, library: Library) -> Understood | None:
    """The text parsed again without the words no dictionary name explains: a word the library
    has never heard of (其他片区) can throw the parser off the rest of the address."""
    normalized = reading.parsed.normalized
    regions = unexplained(normalized, library.gazetteer, reading.parsed.district)
    if not regions:
        return None
    kept = apply(normalized, [Correction(a, normalized[a:b], " ") for a, b, _, _ in regions])
    ignored = tuple(normalized[a:b] for a, b, _, _ in regions)
    return Understood(reading.text, parse(kept, library.gazetteer), ignored=ignored)


def _centre(parsed: ParsedAddress, library: Library) -> tuple[float, float] | None:
    """The centroid of the deepest admin area the text names, if it has one."""
    areas, _ = library.named_areas(parsed.district, parsed.subdistrict, parsed.community)
    for level in ("community", "subdistrict", "district"):
        for code in areas.get(level, ()):
            area = library.areas[code]
            if area.lon is not None and area.lat is not None:
                return area.lon, area.lat
    return None


def _corrected(
    text: str, normalized: str, options: list[Option], library: Library, named_district: bool
) -> list[Understood]:
    """One reading per option. Rival corrections of one word mostly differ in nothing but the
    name, so once the first option is parsed, a rival that is a name of the same kind, with the
    same other corrections, takes the first one's place in its parse instead of a parse of its
    own; when the text named no district, the one the parser inferred from the first rival's
    name is dropped (the rival's own districts are searched)."""
    out: list[Understood] = []
    first: tuple[Option, ParsedAddress, str] | None = None
    for option in options:
        corrected = apply(normalized, option.fixes)
        if first is not None:
            head, template, slot = first
            same_word = (option.rival.start, option.rival.typed, option.others) == (
                head.rival.start,
                head.rival.typed,
                head.others,
            )
            if same_word and library.knows(slot, option.rival.name):
                out.append(
                    Understood(
                        text, _swapped(template, slot, option, corrected), tuple(option.fixes)
                    )
                )
                continue
        parsed = parse(corrected, library.gazetteer)
        slot = next(
            (c for c in ("road", "compound") if getattr(parsed, c) == option.rival.name), ""
        )
        if first is None and slot:
            template = parsed if named_district else replace(parsed, district=None)
            first = (option, template, slot)
        out.append(Understood(text, parsed, tuple(option.fixes)))
    return out


def _swapped(template: ParsedAddress, slot: str, option: Option, normalized: str) -> ParsedAddress:
    name = option.rival.name
    if slot == "road":
        return replace(template, normalized=normalized, road=name)
    return replace(template, normalized=normalized, compound=name)


def standardise(
    session: Session, library: Library, readings: Sequence[tuple[int, Understood]]
) -> list[tuple[int, Understood]]:
    """The readings with what they ask for: admin areas as codes, elements in the library's
    spelling (for the whole batch in one go)."""
    spelled = matching.standardise(
        session, [{c: getattr(r.parsed, c) for c in ELEMENTS} for _, r in readings]
    )
    areas: dict[tuple[str | None, ...], tuple[dict[str, tuple[str, ...]], tuple[str, ...]]] = {}
    out = []
    for (i, r), elements in zip(readings, spelled, strict=True):
        named = (r.parsed.district, r.parsed.subdistrict, r.parsed.community)
        if named not in areas:  # the readings of one text mostly name the same areas
            areas[named] = library.named_areas(*named)
        codes, notes = areas[named]
        out.append((i, replace(r, wanted=scoring.Wanted(codes, elements, notes))))
    return out

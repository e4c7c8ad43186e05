"""How sure the geocoder is: a score in [0, 1] from how the found address agrees with the text.

Commercial geocoders (Amap, Baidu, Tianditu) return a match level and a confidence, and callers
decide with them whether to trust a point; so the score has to mean something. It starts at 1 and
is multiplied down by every reason for doubt: an element of the text that contradicts the
candidate (another district, another house number), an element the candidate does not reach (the
text names room 502, the library knows the building only), a name that had to be corrected, text
that was not understood, a second candidate as good as the first. A candidate is `confident` when
the score reaches CONFIDENT: an exact match of everything the text says, or an exact match after
one corrected name; a contradiction, a missing level or an ambiguity always falls below it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from addressbook.geocoding.parsed import Level
from addressbook.models import ELEMENTS

CONFIDENT: Final = 0.8
# Factors for an element of the text that the candidate contradicts.
CONFLICT: Final = {
    "district": 0.5,
    "subdistrict": 0.75,
    "community": 0.75,
    "road": 0.5,
    "house_number": 0.4,
    "compound": 0.6,
    "building": 0.4,
    "unit": 0.5,
    "room": 0.5,
}
# Factors for an element of the text below the deepest level the candidate reaches.
UNMATCHED: Final = {
    "road": 0.6,
    "house_number": 0.6,
    "compound": 0.7,
    "building": 0.7,
    "unit": 0.75,
    "room": 0.75,
}
CORRECTED: Final = 0.9  # per name read as a library name one character away
NOT_UNDERSTOOD: Final = 0.9  # some of the text was neither an element nor noise
# A word the library does not know, left out to read the rest: as doubtful as a missing level.
IGNORED: Final = 0.6
SUCCESSOR: Final = 0.95  # the text names a retired address; the answer is its successor
RETIRED: Final = 0.5  # the text names a retired address that has no successor
AMBIGUOUS: Final = 0.7  # another place scored (nearly) as well
AMBIGUITY_MARGIN: Final = 0.05
# Text similarity alone (pg_trgm) never makes a confident answer, however close the strings.
SIMILARITY_CAP: Final = 0.7

ADMIN_ELEMENTS: Final = ("district", "subdistrict", "community")


@dataclass(frozen=True)
class Wanted:
    """What the text asks for: admin areas as the codes its names may mean, the other elements
    in their standard spelling (32号, 1号楼...), and what became of areas it names by an
    earlier name (addressbook.areas.resolver), for the candidates' notes."""

    areas: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    elements: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass
class Verdict:
    score: float
    level: Level | None
    notes: list[str]


def judge(wanted: Wanted, found: Mapping[str, str | None]) -> Verdict:
    """Compare the text's elements with a candidate's (`found`: `district_code`... and the
    street elements; a None admin code means the candidate does not say)."""
    verdict = Verdict(1.0, None, [])
    for key in ADMIN_ELEMENTS:
        codes = wanted.areas.get(key)
        have = found.get(f"{key}_code")
        if not codes or have is None:
            continue
        if have in codes:
            verdict.level = _deeper(verdict.level, Level[key.upper()])
        else:
            verdict.score *= CONFLICT[key]
            verdict.notes.append(f"the {key} differs from the text's")
    for key in ELEMENTS:
        want = wanted.elements.get(key)
        if want is None:
            continue
        have = found.get(key)
        if have == want:
            verdict.level = _deeper(verdict.level, Level[key.upper()])
        elif have is None:
            verdict.score *= UNMATCHED[key]
            verdict.notes.append(f"{key} {want} not found in the library")
        else:
            verdict.score *= CONFLICT[key]
            verdict.notes.append(f"{key} is {have}, the text says {want}")
    return verdict


def _deeper(a: Level | None, b: Level) -> Level:
    return b if a is None or b > a else a


def ambiguity(scores: Sequence[float]) -> bool:
    """Whether the best of `scores` (one per distinct place, best first) has a rival."""
    return len(scores) > 1 and scores[1] >= scores[0] - AMBIGUITY_MARGIN

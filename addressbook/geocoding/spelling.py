"""Typo correction for road and compound names: the library names within one edit of a span.

One wrong character in a road name (湘江葫同 for 湘江胡同) does more harm than the lost name: the
parser no longer recognises the road, takes the misspelt word for a compound, and reads the
house number as a building. So before matching, the spans of the text that no dictionary name
explains are compared with the library's names, the best correction is written into the text,
and the text is parsed again.

Candidates come from deletion neighbourhoods (the SymSpell method): every name is indexed under
itself and under each string left by deleting one of its characters, and a typed span is looked
up the same way; a substitution, insertion or deletion of one character meets its name in one
dictionary probe per variant, whatever the size of the library. rapidfuzz's Levenshtein distance
confirms each hit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from rapidfuzz.distance import Levenshtein

from addressbook.geocoding.dictionary import Entry, Gazetteer

# Two-character names are one edit away from too much of the language to be corrected into.
MIN_NAME: Final = 3
MAX_SPAN: Final = 16
# How far a window may reach into text the dictionary explains: a typo in the last character of
# a name leaves its first characters recognisable as some shorter name.
REACH: Final = 3
# Rival readings of one misspelt name worth checking against the library.
MAX_OPTIONS: Final = 12
_CJK_RUN: Final = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]+")
# Markers that belong to the number before them (73号, 1号楼, 2单元) and the city prefix: text
# the parser understands without the dictionary.
_MARKER: Final = re.compile(r"号楼|号|单元|室|栋|幢|座|门|户|层|楼|期|区")
_CITY: Final = re.compile(r"天津市|天津")


@dataclass(frozen=True, slots=True)
class Correction:
    """`typed` (at `start` in the normalised text) read as the library name `name`."""

    start: int
    typed: str
    name: str

    @property
    def end(self) -> int:
        return self.start + len(self.typed)


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class Corrector:
    """Library names by their deletion neighbourhoods; immutable once built."""

    def __init__(self, names: Iterable[str]) -> None:
        index: dict[str, set[str]] = {}
        self.longest = 0  # no span longer than this plus one can be one edit from a name
        for name in names:
            if len(name) < MIN_NAME:
                continue
            self.longest = max(self.longest, len(name))
            for key in (name, *_deletions(name)):
                index.setdefault(key, set()).add(name)
        self._index = {key: tuple(sorted(found)) for key, found in index.items()}

    def near(self, span: str) -> list[str]:
        """Names exactly one edit away from `span` (the span itself, if a name, is not one)."""
        index = self._index
        found: set[str] = set(index.get(span, ()))
        for i in range(len(span)):
            if hit := index.get(span[:i] + span[i + 1 :]):
                found.update(hit)
        if not found:
            return []
        return sorted(
            name for name in found if Levenshtein.distance(span, name, score_cutoff=1) == 1
        )


def _fits(entries: tuple[Entry, ...], district: str | None) -> bool:
    """Whether a dictionary hit explains text in `district`: a road of another district is
    what a misspelt local name often happens to be (重庆南里 for 重庆东里)."""
    return any(e.district in (None, district) or district is None for e in entries)


def unexplained(
    text: str, gazetteer: Gazetteer, district: str | None = None
) -> list[tuple[int, int, int, int]]:
    """Regions of Chinese text that no dictionary name (of `district`, when given) covers, as
    (start, end) in `text` with the bounds of the run of Chinese characters they lie in:
    (start, end, run_start, run_end)."""
    regions = []
    for run in _CJK_RUN.finditer(text):
        word = run.group()
        covered = [False] * len(word)
        lead = _CITY.match(word)
        if run.start() > 0 and text[run.start() - 1].isalnum():
            lead = _MARKER.match(word)
        for i in range(lead.end() if lead else 0):
            covered[i] = True
        for i in range(len(word)):
            for length, entries in gazetteer.matches_at(word, i):
                if _fits(entries, district):
                    covered[i : i + length] = [True] * length
        i = 0
        while i < len(word):
            if covered[i]:
                i += 1
                continue
            j = i
            while j < len(word) and not covered[j]:
                j += 1
            regions.append((run.start() + i, run.start() + j, run.start(), run.end()))
            i = j
    return regions


@dataclass(frozen=True, slots=True)
class Option:
    """One reading of the text: `rival` (a candidate for the best-supported correction) with
    the other corrections that fit beside it."""

    rival: Correction
    others: tuple[Correction, ...]

    @property
    def fixes(self) -> list[Correction]:
        return sorted((self.rival, *self.others), key=lambda fix: fix.start)


def _overlaps(a: Correction, b: Correction) -> bool:
    return a.start < b.end and b.start < a.end


def _greedy(ranked: list[Correction], rival: Correction) -> Option:
    chosen: list[Correction] = []
    for fix in ranked:
        if not any(_overlaps(fix, other) for other in (rival, *chosen)):
            chosen.append(fix)
    return Option(rival, tuple(chosen))


def corrections(
    text: str,
    gazetteer: Gazetteer,
    corrector: Corrector,
    standing: Callable[[str], tuple[bool, float]],
    district: str | None = None,
    options: int = MAX_OPTIONS,
) -> list[Option]:
    """Sets of non-overlapping corrections for the unexplained parts of `text`, best first.

    Among the names one edit from some window around an unexplained region, the choice prefers
    names `standing` says are in scope (the district the text names), then windows that cover
    more of the unexplained text, then substitutions (the usual slip of a Chinese input method)
    over insertions and deletions, then longer names, then names `standing` places nearer (to
    the subdistrict the text names, say). A misspelt name is often one edit from
    several library names (翠福庄东街: 仁福庄东街, 崔福庄东街); the other sets put each rival
    of the best correction (a name for the same characters) in its place, so that the geocoder
    can keep the reading that the rest of the address (the house number, the building)
    confirms."""
    found: list[tuple[tuple[bool, int, bool, int, float], Correction]] = []
    stood: dict[str, tuple[bool, float]] = {}
    span = min(MAX_SPAN, corrector.longest + 1)
    for start, end, run_start, run_end in unexplained(text, gazetteer, district):
        for a in range(max(run_start, start - REACH), end):
            for b in range(max(a + MIN_NAME - 1, start + 1), min(run_end, end + REACH) + 1):
                if b - a > span:
                    break
                window = text[a:b]
                overlap = min(b, end) - max(a, start)
                for name in corrector.near(window):
                    inside, near = stood.get(name) or stood.setdefault(name, standing(name))
                    rank = (inside, overlap, len(name) == len(window), len(name), near)
                    found.append((rank, Correction(a, window, name)))
    ranked = [fix for _, fix in sorted(found, key=lambda item: item[0], reverse=True)]
    if not ranked:
        return []
    best = ranked[0]
    rivals: dict[str, Correction] = {}
    for fix in ranked:
        if (fix.start, fix.typed) == (best.start, best.typed) and len(rivals) < options:
            rivals.setdefault(fix.name, fix)
    others = [fix for fix in ranked if not _overlaps(fix, best)]
    return [_greedy(others, rival) for rival in rivals.values()]


def apply(text: str, fixes: list[Correction]) -> str:
    """`text` with each correction written in (corrections must not overlap)."""
    for fix in sorted(fixes, key=lambda f: f.start, reverse=True):
        text = text[: fix.start] + fix.name + text[fix.end :]
    return text

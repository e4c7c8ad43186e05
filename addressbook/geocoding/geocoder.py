"""Free text to ranked candidates from the address library, with a match level and a score.

The steps, cheapest first, each taken only when the previous ones found nothing sure:

1. Parse the text with the library's dictionary (geocoding.gazetteer, geocoding.readings). If a
   road or compound name is not in the dictionary, every library name one character away is a
   reading of its own (geocoding.spelling): the rest of the address decides between them in
   step 2. Text naming another city gets no candidates, unless it is a place's name (step 5).
2. Exact structured match: the elements, in the library's standard spelling, looked up by road +
   house number and by compound on the btree indexes, in the district the text names, or, when
   it names none (or names the wrong one), in every district that has the road or compound.
   `geocode_many` does this for all the readings of a whole batch of texts in one statement.
   A text that found nothing sure is also read once more without the words no dictionary name
   explains (a stray word can throw the parser off the rest).
3. Relaxed match: when the text goes deeper than the library (a room it does not know), the
   deepest level that does match: the address stored there, or the centroid of the addresses
   below it.
4. Name and area centroids: the road or compound alone (address_names), then the community,
   subdistrict or district.
5. Named places (geocoding.places): a place's name or alias in the text, or the text one edit
   from one, answered with match level `place` and judged on the rest of the text (a house
   number beside a place's name prefers the address, which step 2 found if the library has it).
6. Text similarity (pg_trgm) of the standard full forms to the text, for text the parser could
   not use; the candidates are the addresses on library names like its words (matching.similar).

Every candidate is scored by geocoding.scoring; a candidate is `confident` only when the text
and the answer agree on everything the text says. Retired addresses are answered with their
successor, and the candidate says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

from sqlalchemy.orm import Session

from addressbook.geocoding import gazetteer, matching, scoring
from addressbook.geocoding.candidates import (
    Candidate,
    Draft,
    address_drafts,
    allowed_districts,
    anchor_districts,
    anchor_values,
    fallback,
    finish,
    named_place,
    needs_similarity,
    place_drafts,
    similar_drafts,
)
from addressbook.geocoding.gazetteer import Library
from addressbook.geocoding.matching import ANCHORS, AreaFilter, Probe, Row
from addressbook.geocoding.readings import (
    Understood,
    standardise,
    understand,
    without_unknown_words,
)
from geo.errors import ApiError
from geo.metrics import GEOCODE_SECONDS

MAX_TEXT: Final = 200
MAX_LIMIT: Final = 20
_AREA_COLUMNS: Final = {
    "district": "district_code",
    "subdistrict": "subdistrict_code",
    "community": "community_code",
}


def check_text(text: str) -> str:
    """The `q` of the endpoints: a 400 naming the problem for empty or absurdly long text."""
    stripped = text.strip()
    if not stripped:
        raise ApiError(400, "EmptyQuery", "q is empty: give the address text to look up")
    if len(stripped) > MAX_TEXT:
        raise ApiError(
            400,
            "QueryTooLong",
            f"q is {len(stripped)} characters long; addresses are at most {MAX_TEXT}",
            {"length": len(stripped), "max": MAX_TEXT},
        )
    return stripped


def area_filter(library: Library, code: str | None) -> AreaFilter | None:
    """`area=`: a current district, subdistrict or community code; anything else is a 400."""
    if code is None:
        return None
    area = library.areas.get(code.strip())
    if area is None:
        raise ApiError(
            400,
            "UnknownArea",
            f"area {code!r} is not the code of a current district, subdistrict or community",
            {"area": code},
        )
    return AreaFilter(_AREA_COLUMNS[area.level], area.code)


# --- exact matches, for a batch -----------------------------------------------------------------


def _exact_pass(
    session: Session,
    library: Library,
    jobs: Sequence[tuple[int, Understood]],
    area: AreaFilter | None,
    anchors: Callable[[Understood], Sequence[str]],
    second: bool = False,
) -> dict[int, list[Row]]:
    """One exact lookup of the `anchors` of each (key, reading), in the districts the reading
    names (or that have its name), or with `second` in the other districts that have it."""
    allowed = allowed_districts(library, area)
    probes: list[Probe] = []
    for index, job in jobs:
        for anchor in anchors(job):
            values = anchor_values(job, anchor)
            if values is None:
                continue
            districts = anchor_districts(job, library, anchor, allowed)[1 if second else 0]
            probes.extend(Probe(index, anchor, d, values) for d in districts)
    return matching.exact(session, probes, area) if probes else {}


def _first_anchor(job: Understood) -> Sequence[str]:
    """Road and house number when the text has them, else the compound."""
    return ("road",) if anchor_values(job, "road") else ("compound",)


def _second_anchor(job: Understood) -> Sequence[str]:
    """The compound, for a text whose road and house number found nothing sure."""
    return ("compound",) if anchor_values(job, "road") else ()


def _all_anchors(_: Understood) -> Sequence[str]:
    return tuple(ANCHORS)


# --- entry points -------------------------------------------------------------------------------


def _matched(
    session: Session,
    library: Library,
    jobs: Sequence[tuple[int, Understood]],
    area: AreaFilter | None,
) -> dict[int, list[Draft]]:
    """Step 2 for a batch of readings (text index, reading): drafts of the stored addresses
    they match exactly, by text, in up to three statements for the whole batch: road and house
    number (or the compound, when the text has no road); then, for texts with nothing sure yet,
    the compound; then, for those that named a district and still have nothing sure, the other
    districts that have their road or compound (the first two readings of a text only: rival
    corrections are told apart by the exact match alone)."""
    drafts: dict[int, list[Draft]] = {i: [] for i, _ in jobs}
    numbered = list(enumerate(jobs))

    def look_up(
        chosen: list[tuple[int, tuple[int, Understood]]],
        anchors: Callable[[Understood], Sequence[str]],
        second: bool = False,
    ) -> None:
        keyed = [(k, job) for k, (_, job) in chosen]
        rows = _exact_pass(session, library, keyed, area, anchors, second)
        for k, (i, job) in chosen:
            drafts[i].extend(address_drafts(session, job, rows.get(k, ())))

    look_up(numbered, _first_anchor)
    look_up([n for n in numbered if not _sure(drafts[n[1][0]])], _second_anchor)
    counted: dict[int, int] = {}
    retry = []
    for k, (i, job) in numbered:
        counted[i] = counted.get(i, 0) + 1
        if counted[i] <= 2 and not _sure(drafts[i]) and job.wanted.areas.get("district"):
            retry.append((k, (i, job)))
    look_up(retry, _all_anchors, second=True)
    return drafts


def _with_places(drafts: list[Draft], found: list[Draft]) -> list[Draft]:
    """The drafts with the named places the text names. A place named surely explains the text
    better than a centroid some of its words lead to (花园路社区居委会 is the office, not the
    community; 友谊路小雪 the misspelt school, not 友谊路 and a word not understood): only
    stored addresses stay beside it."""
    if _sure(found):
        drafts = [d for d in drafts if d.place[0] == "address"]
    return drafts + found


def _sure(drafts: Iterable[Draft]) -> bool:
    return any(d.verdict.score >= scoring.CONFIDENT for d in drafts)


@GEOCODE_SECONDS.time()
def geocode_many(
    session: Session, texts: Sequence[str], limit: int = 1, area: str | None = None
) -> list[list[Candidate]]:
    """Candidates for each text, best first (at most `limit`); empty for empty text, text longer
    than MAX_TEXT, text about another city, and text with nothing the library knows. The exact
    matches of the whole batch are looked up together (see `matching.exact`); the slower steps
    run only for the texts that found nothing sure, on their own parse, their best correction
    and their reading without unknown words."""
    library = gazetteer.current(session)
    scope = area_filter(library, area)
    readings = {
        i: [r for r in understand(t, library) if not r.foreign]
        for i, t in enumerate(texts)
        if t.strip() and len(t.strip()) <= MAX_TEXT
    }
    jobs = standardise(session, library, [(i, r) for i, rs in readings.items() for r in rs])
    drafts = _matched(session, library, jobs, scope)
    unsure = [i for i, found in drafts.items() if not _sure(found)]
    named = {i: place for i in unsure if (place := named_place(library, texts[i]))}
    # A text read as naming another city (泰和都市工业园社区居委会: 泰和都市) may still be,
    # as a whole, a place's name.
    for i in (i for i, rs in readings.items() if not rs):
        if (place := named_place(library, texts[i])) and not place.rest:
            named[i] = place
    for i in named:
        drafts.setdefault(i, [])
    stripped = [(i, r) for i in unsure if (r := without_unknown_words(readings[i][0], library))]
    # A place's name beside an address (南开大学卫津路94号): the address without the name.
    stripped += [
        (i, reading)
        for i, place in named.items()
        if place.rest and not place.corrected
        for reading in understand(place.rest, library)[:1]
        if not reading.foreign
    ]
    extra = standardise(session, library, stripped)
    for i, found in _matched(session, library, extra, scope).items():
        drafts[i].extend(found)
    principal = [(i, job) for i, job in jobs if i in unsure] + extra
    seen: dict[int, int] = {}
    for i, job in principal:
        seen[i] = seen.get(i, 0) + 1
        if (seen[i] <= 2 or job.ignored) and not _sure(drafts[i]):
            drafts[i].extend(fallback(session, library, job, scope))
    for i, named_here in named.items():
        drafts[i] = _with_places(drafts[i], place_drafts(library, named_here, scope))
    own = {i: job for i, job in reversed(jobs)}  # each text's own reading comes first
    for i in unsure:
        if needs_similarity(own[i], drafts[i]):
            drafts[i].extend(similar_drafts(session, own[i], scope))
    results: list[list[Candidate]] = [[] for _ in texts]
    for i, found in drafts.items():
        results[i] = finish(session, library, found, limit, scope)
    return results


def geocode(
    session: Session, text: str, limit: int = 1, area: str | None = None
) -> list[Candidate]:
    """Ranked candidates for one free-text address (see the module docstring)."""
    return geocode_many(session, [text], limit=limit, area=area)[0]

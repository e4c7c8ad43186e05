"""Candidates of the geocoder: each stored address, aggregate, name or area a reading of a text
led to, judged against what the text asks for (geocoding.scoring), the relaxed, name, area,
named place and similarity fallbacks (steps 3 to 6 of geocoding.geocoder), and the ranked
answers with their standard forms and the ambiguity check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from addressbook.geocoding import matching, places, scoring
from addressbook.geocoding.gazetteer import Library
from addressbook.geocoding.matching import ANCHORS, Aggregate, AreaFilter, Row
from addressbook.geocoding.normalize import fold
from addressbook.geocoding.parsed import Level
from addressbook.geocoding.parser import parse
from addressbook.geocoding.places import PlaceEntry
from addressbook.geocoding.readings import Understood
from addressbook.models import ELEMENTS


@dataclass(frozen=True)
class Candidate:
    """One answer. `lon`/`lat` are EPSG:4490; `address_id` and `code` are None when the answer is
    a place above the stored addresses (a road, the centroid of a building's rooms...)."""

    score: float
    level: str
    lon: float
    lat: float
    address_id: int | None
    standard: str
    code: str | None
    elements: dict[str, str | None]
    confident: bool
    status: str | None = None
    # The retired address the text names, when this candidate is its successor.
    replaces: int | None = None
    notes: tuple[str, ...] = ()
    # The named place the text names (level `place`; `address_id` is its standard address's).
    place: PlaceEntry | None = None


def allowed_districts(library: Library, area: AreaFilter | None) -> set[str] | None:
    """Districts an `area=` allows (None: all)."""
    if area is None:
        return None
    return {library.areas[area.code].district_code or area.code}


def anchor_districts(
    job: Understood, library: Library, anchor: str, allowed: set[str] | None
) -> tuple[list[str], list[str]]:
    """Districts to look in for this anchor: first those the text names (else those that have
    the name), then, if the text named districts, the others that have the name."""
    kind = "road" if anchor == "road" else "compound"
    known = [s.district_code for s in library.streets(kind, job.wanted.elements.get(kind))]
    named = list(job.wanted.areas.get("district", ()))
    first = named or known
    second = [d for d in known if d not in named] if named else []
    if allowed is not None:
        first = [d for d in first if d in allowed]
        second = [d for d in second if d in allowed]
    return first, second


def anchor_values(job: Understood, anchor: str) -> tuple[str | None, ...] | None:
    """The anchor's elements from the text, or None when the text lacks what the anchor needs
    (road and house number; compound)."""
    values = tuple(job.wanted.elements.get(c) for c in ANCHORS[anchor])
    needed = 2 if anchor == "road" else 1
    return values if all(values[:needed]) else None


# --- building and scoring candidates ------------------------------------------------------------


def _names(library: Library, elements: dict[str, str | None]) -> dict[str, str | None]:
    """The candidate's elements with the names of its admin areas."""
    out: dict[str, str | None] = {}
    for level in ("district", "subdistrict", "community"):
        code = elements.get(f"{level}_code")
        area = library.areas.get(code) if code else None
        out[level] = area.name if area else None
        out[f"{level}_code"] = code
    out["grid_code"] = elements.get("grid_code")
    out.update({c: elements.get(c) for c in ELEMENTS})
    return out


def _row_level(row: Row) -> Level:
    deepest = [c for c in ELEMENTS if getattr(row, c) is not None]
    return Level[deepest[-1].upper()] if deepest else Level.DISTRICT


@dataclass
class Draft:
    """A candidate before the ambiguity check: where, what, and its verdict."""

    place: tuple[Any, ...]
    verdict: scoring.Verdict
    level: Level
    lon: float
    lat: float
    standard: str
    elements: dict[str, str | None]
    address_id: int | None = None
    code: str | None = None
    status: str | None = None
    replaces: int | None = None
    weight: int = 0
    # A named place: reported with level `place` (ranked among the others as a compound).
    named_place: PlaceEntry | None = None


def _judged(
    job: Understood, elements: dict[str, str | None], notes: Iterable[str]
) -> scoring.Verdict:
    verdict = scoring.judge(job.wanted, elements)
    verdict.notes[:0] = [*job.wanted.notes, *notes]
    for fix in job.fixes:
        verdict.score *= scoring.CORRECTED
        verdict.notes.append(f"read {fix.typed} as {fix.name}")
    if job.parsed.unparsed:
        verdict.score *= scoring.NOT_UNDERSTOOD
        verdict.notes.append(f"not understood: {job.parsed.unparsed}")
    for word in job.ignored:
        verdict.score *= scoring.IGNORED
        verdict.notes.append(f"ignored {word}: not in the library")
    return verdict


def _row_draft(
    job: Understood, row: Row, successor: Row | None = None, similarity: float | None = None
) -> Draft:
    shown = successor or row
    verdict = _judged(job, row.elements(), ())
    level = verdict.level or _row_level(row)
    if similarity is not None:
        if row.full_address == job.parsed.normalized:
            # The text is this address's standard form, whatever elements the row lacks.
            level = job.parsed.level or level
            verdict = scoring.Verdict(1.0, level, ["the text is this address's standard form"])
        else:
            # Text similarity is the only evidence (the parse found nothing of the row's).
            notes = [f"only similar text ({similarity:.2f})"]
            verdict = scoring.Verdict(scoring.SIMILARITY_CAP * similarity, level, notes)
    if row.status != "active":
        if successor is not None:
            verdict.score *= scoring.SUCCESSOR
            verdict.notes.append(f"address {row.id} was retired; this is its successor")
        else:
            verdict.score *= scoring.RETIRED
            verdict.notes.append(f"address {row.id} is retired and has no successor")
    return Draft(
        place=("address", shown.id),
        verdict=verdict,
        lon=shown.lon,
        lat=shown.lat,
        standard=shown.full_address,
        elements=shown.elements(),
        address_id=shown.id,
        code=shown.code,
        status=shown.status,
        replaces=row.id if successor is not None else None,
        level=level,
    )


def _aggregate_draft(job: Understood, found: Aggregate) -> Draft:
    elements = {
        "district_code": found.district_code,
        "subdistrict_code": found.subdistrict_code,
        "community_code": found.community_code,
        **found.elements,
    }
    level = max(Level[c.upper()] for c, v in found.elements.items() if v is not None)
    note = f"centroid of the {found.count} addresses below this {level.name.lower()}"
    return Draft(
        place=("level", found.standard),
        verdict=_judged(job, elements, (note,)),
        lon=found.lon,
        lat=found.lat,
        standard=found.standard,
        elements=elements,
        weight=found.count,
        level=level,
    )


def _relaxed_drafts(
    session: Session, library: Library, job: Understood, area: AreaFilter | None
) -> tuple[list[Draft], list[int]]:
    """The deepest level each anchor matches, as aggregates, and ids of addresses stored at
    exactly that level (to be fetched and answered as addresses)."""
    drafts, exact_ids = [], []
    allowed = allowed_districts(library, area)
    for anchor in ANCHORS:
        values = anchor_values(job, anchor)
        if values is None:
            continue
        districts = [d for part in anchor_districts(job, library, anchor, allowed) for d in part]
        deepest = max(i for i, v in enumerate(values) if v is not None)
        for depth in (d for d in range(deepest, 0, -1) if values[d] is not None):
            found = matching.relaxed(session, anchor, districts, values, depth, area)
            for aggregate in found:
                if aggregate.exact_id is not None:
                    exact_ids.append(aggregate.exact_id)
                else:
                    drafts.append(_aggregate_draft(job, aggregate))
            if found:
                break
    return drafts, exact_ids


def _place_draft(
    job: Understood,
    place: tuple[Any, ...],
    elements: dict[str, str | None],
    level: Level,
    lon: float,
    lat: float,
    weight: int = 0,
    note: str | None = None,
) -> Draft:
    return Draft(
        place=place,
        verdict=_judged(job, elements, (note,) if note else ()),
        lon=lon,
        lat=lat,
        standard="",  # filled in by finish, with the library's full-form function
        elements=elements,
        weight=weight,
        level=level,
    )


def _name_drafts(library: Library, job: Understood) -> list[Draft]:
    """The compound or road of the text as a whole, in each district that has it."""
    for kind in ("compound", "road"):
        drafts = [
            _place_draft(
                job,
                (kind, street.name, street.district_code),
                {"district_code": street.district_code, kind: street.name},
                Level[kind.upper()],
                street.lon,
                street.lat,
                weight=street.weight,
                note=f"centroid of the {kind}",
            )
            for street in library.streets(kind, job.wanted.elements.get(kind))
            if street.lon is not None and street.lat is not None
        ]
        if drafts:
            return drafts
    return []


def _area_drafts(library: Library, job: Understood) -> list[Draft]:
    """The deepest admin area the text names."""
    for level in ("community", "subdistrict", "district"):
        drafts = []
        for code in job.wanted.areas.get(level, ()):
            area = library.areas[code]
            if area.lon is None or area.lat is None:
                continue
            elements = {
                "district_code": area.district_code,
                "subdistrict_code": {"subdistrict": code, "community": area.parent_code}.get(level),
                "community_code": code if level == "community" else None,
            }
            drafts.append(
                _place_draft(
                    job,
                    ("area", code),
                    elements,
                    Level[level.upper()],
                    area.lon,
                    area.lat,
                    note=f"centroid of the {level}",
                )
            )
        if drafts:
            return drafts
    return []


def address_drafts(
    session: Session,
    job: Understood,
    rows: Iterable[Row],
    similarity: dict[int, float] | None = None,
) -> list[Draft]:
    """Drafts for stored addresses, retired ones answered by their successors."""
    rows = list(rows)
    successors = matching.successors(session, [r.id for r in rows if r.status != "active"])
    return [_row_draft(job, r, successors.get(r.id), (similarity or {}).get(r.id)) for r in rows]


def similar_drafts(session: Session, job: Understood, area: AreaFilter | None) -> list[Draft]:
    """Stored full forms like the text, reached through library names like its road, compound
    and unparsed words: in the districts it names, else anywhere."""
    districts = list(job.wanted.areas.get("district", ()))
    parsed = job.parsed
    pieces = [w for w in (parsed.road, parsed.compound, *parsed.unparsed.split()) if w]
    elements = job.wanted.elements
    found = matching.similar(session, parsed.normalized, pieces, elements, districts, area)
    if not found and districts:
        found = matching.similar(session, parsed.normalized, pieces, elements, [], area)
    return address_drafts(session, job, (r for r, _ in found), {r.id: s for r, s in found})


def fallback(
    session: Session, library: Library, job: Understood, area: AreaFilter | None
) -> list[Draft]:
    """Steps 3 and 4 of the module docstring, for one reading of a text that had no sure exact
    match."""
    drafts, exact_ids = _relaxed_drafts(session, library, job, area)
    drafts += address_drafts(session, job, matching.rows_by_id(session, exact_ids).values())
    return drafts or _name_drafts(library, job) or _area_drafts(library, job)


def _place_wanted(library: Library, rest: str) -> tuple[scoring.Wanted, str]:
    """What the text says besides the place's name, as the scorer compares it, and what of it
    was not understood."""
    if not rest:
        return scoring.Wanted(), ""
    parsed = parse(rest, library.gazetteer)
    areas, notes = library.named_areas(parsed.district, parsed.subdistrict, parsed.community)
    elements = {c: v for c in ELEMENTS if (v := getattr(parsed, c)) is not None}
    return scoring.Wanted(areas, elements, notes), parsed.unparsed


def named_place(library: Library, text: str) -> places.Found | None:
    """The named place a text names (geocoding.places.find)."""
    typed = fold(text).strip()
    return places.find(library.places, typed, library.peel(typed)[0])


def place_drafts(library: Library, found: places.Found, area: AreaFilter | None) -> list[Draft]:
    """Drafts for a named place a text names, judged like any candidate on the rest of the
    text: a district that differs lowers it, and so does every element the place lacks (a road
    and house number beside the name: the address, when the library has it, is the better
    answer)."""
    wanted, unparsed = _place_wanted(library, found.rest)
    drafts = []
    for entry in found.entries:
        codes = places.area_codes(entry)
        if area is not None and area.code not in codes.values():
            continue
        verdict = scoring.judge(wanted, codes)
        verdict.notes[:0] = list(wanted.notes)
        if found.corrected:
            verdict.score *= scoring.CORRECTED
            verdict.notes.append(f"read {found.typed} as {entry.name}")
        if unparsed:
            verdict.score *= scoring.NOT_UNDERSTOOD
            verdict.notes.append(f"not understood: {unparsed}")
        district = library.areas.get(entry.district_code or "")
        written = places.label(entry.name, district.name if district else None)
        drafts.append(
            Draft(
                place=("place", entry.id),
                verdict=verdict,
                level=Level.COMPOUND,
                lon=entry.lon,
                lat=entry.lat,
                standard=written if written.startswith("天津") else "天津市" + written,
                elements=codes,
                address_id=entry.address_id,
                code=entry.address_code,
                status="active",
                named_place=entry,
            )
        )
    return drafts


def needs_similarity(job: Understood, drafts: Sequence[Draft]) -> bool:
    """Step 6, for a text that found nothing down to a road: unless it holds nothing but admin
    areas (their centroid is the answer, and their trigrams are in every address there)."""
    beyond_areas = any(getattr(job.parsed, c) for c in ELEMENTS) or job.parsed.unparsed
    return bool(beyond_areas) and not any(d.level >= Level.ROAD for d in drafts)


# --- finishing ----------------------------------------------------------------------------------


def finish(
    session: Session,
    library: Library,
    drafts: list[Draft],
    limit: int,
    area: AreaFilter | None,
) -> list[Candidate]:
    """Standard forms for places that are not stored addresses (dropping those outside `area`),
    one draft per place, the ambiguity check, best first."""
    unnamed = [d for d in drafts if not d.standard]
    if unnamed:
        described = matching.describe_places(
            session,
            [
                matching.Place(
                    _area_name(library, d.elements.get("district_code")),
                    _area_name(library, d.elements.get("subdistrict_code")),
                    {c: d.elements.get(c) for c in ELEMENTS},
                    d.lon,
                    d.lat,
                )
                for d in unnamed
            ],
            area,
        )
        for draft, (standard, inside) in zip(unnamed, described, strict=True):
            draft.standard = standard if inside else ""
        drafts = [d for d in drafts if d.standard]
    best: dict[tuple[Any, ...], Draft] = {}
    for draft in drafts:
        kept = best.get(draft.place)
        if kept is None or draft.verdict.score > kept.verdict.score:
            best[draft.place] = draft
    ranked = sorted(best.values(), key=lambda d: (-d.verdict.score, -d.weight))
    scores = [d.verdict.score for d in ranked]
    if scoring.ambiguity(scores):
        for draft in ranked:
            if draft.verdict.score >= scores[0] - scoring.AMBIGUITY_MARGIN:
                draft.verdict.score *= scoring.AMBIGUOUS
                draft.verdict.notes.append("another place matches the text as well")
    return [_candidate(library, d) for d in ranked[:limit]]


def _area_name(library: Library, code: str | None) -> str | None:
    area = library.areas.get(code) if code else None
    return area.name if area else None


def _candidate(library: Library, draft: Draft) -> Candidate:
    score = round(max(0.0, min(1.0, draft.verdict.score)), 3)
    return Candidate(
        score=score,
        level="place" if draft.named_place else draft.level.name.lower(),
        lon=draft.lon,
        lat=draft.lat,
        address_id=draft.address_id,
        standard=draft.standard,
        code=draft.code,
        elements=_names(library, draft.elements),
        confident=score >= scoring.CONFIDENT,
        status=draft.status,
        replaces=draft.replaces,
        notes=tuple(draft.verdict.notes),
        place=draft.named_place,
    )

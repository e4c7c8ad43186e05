"""The four classes of a quality report, decided from what the geocoder returns for a row.

The rule, on the top candidate (its score already lowered by every doubt: scoring.py):

- ``exact``: a stored address (``address_id`` set: an address of the library, or the standard
  address of a named place), confident, score 1.0: everything the text says agrees with it and
  nothing had to be read differently.
- ``corrected``: a stored address, confident (score >= scoring.CONFIDENT) but below 1.0: the
  match needed the geocoder's help (a name one character away read as the library's, a part of
  the text not understood, a retired address's successor); the reason lists those notes.
- ``ambiguous``: a stored address, not confident, scoring at least FLOOR: the library has an
  address close to the text but not surely this one (another place scores as well, or the text
  names a level the library does not reach).
- ``not_found``: no candidate, an empty address cell, only a place above the addresses (a road,
  an area: the library does not have this address), or a stored address scoring below FLOOR (it
  contradicts the text: another house number, road or district).

FLOOR is the score of an otherwise confident answer that another place matches as well
(CONFIDENT x AMBIGUOUS): below it the candidate is not a near miss but another address.
"""

from __future__ import annotations

from typing import Any, Final

from addressbook.geocoding import batch, scoring
from addressbook.geocoding.candidates import Candidate

CLASSES: Final = ("exact", "corrected", "ambiguous", "not_found")
FLOOR: Final = round(scoring.CONFIDENT * scoring.AMBIGUOUS, 3)
# What the report adds beside the batch's match columns.
REPORT_COLUMNS: Final = ("quality", "reason")
MAX_REASON: Final = 300


def classify(text: str, best: Candidate | None) -> tuple[str, str]:
    """The row's class and, for any class but exact, the reason in words."""
    if not text.strip():
        return "not_found", "the address cell is empty"
    if best is None:
        return "not_found", "nothing in the library matches the text"
    notes = "; ".join(best.notes)
    if best.address_id is None:
        return "not_found", f"the library knows only the {best.level} {best.standard!r}"
    if best.confident:
        if best.score >= 1.0:
            return "exact", ""
        return "corrected", (notes or f"score {best.score}")[:MAX_REASON]
    because = f" ({notes})" if notes else ""
    said = f"best {best.standard!r}, score {best.score}{because}"
    if best.score >= FLOOR:
        return "ambiguous", f"not confident: {said}"[:MAX_REASON]
    return "not_found", f"no address agrees with the text: {said}"[:MAX_REASON]


def assess(texts: list[str], area: str | None, crs: str) -> list[dict[str, Any]]:
    """The batch's match columns for each text, with its class, the reason, and the areas of
    its top candidate (for the counts by district and subdistrict). Module-level: the batch's
    worker processes are sent it (geocoding.batch.matched)."""
    best = batch.best_candidates(texts, area)
    rows = batch.match_columns(best, crs)
    for text, candidate, row in zip(texts, best, rows, strict=True):
        row["quality"], row["reason"] = classify(text, candidate)
        elements = candidate.elements if candidate else {}
        row["district"] = elements.get("district")
        row["subdistrict"] = elements.get("subdistrict")
    return rows

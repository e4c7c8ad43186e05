"""One version of one admin area while an import assembles the admin area table.

Its own module because two steps of the import work on it: reading the divisions and their code
history (import_areas) and deriving the polygons the public data lacks (import_derived), which
import_areas runs; neither needs to import the other for the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data"
DIVISIONS = DATA / "divisions_2016.csv"
VALID_2016 = date(2016, 7, 31)


@dataclass
class Area:
    """One version of one admin area (valid from `valid_from` until `valid_to`)."""

    code: str
    name: str
    level: str
    parent_code: str | None
    official_name: str
    kind: str | None = None
    urban_rural: str | None = None
    valid_from: date = VALID_2016
    valid_to: date | None = None
    successor_code: str | None = None
    geom: Any = None
    centroid: Any = None
    source: str = DIVISIONS.name
    # Derived outlines only: drawn around a location on record ("recorded") or, where the
    # records give none, around a generated point ("spread"): the latter is an estimate.
    placement: str | None = None

    @property
    def current(self) -> bool:
        return self.valid_to is None

"""What a parse finds: the elements of an address (`ParsedAddress`) and how deep it goes
(`Level`), the vocabulary the geocoder and the scorer speak.

Level ordering: district < subdistrict < community < road < house_number < compound < building <
unit < room. Road and compound are siblings in practice (a compound is reached from its road and
house number, or on its own); the compound is ranked deeper because its buildings, units and
rooms hang below it, so `level` names the most precise element that was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    """Depth of a parse; comparable, so `parsed.level >= Level.BUILDING` reads naturally."""

    DISTRICT = 1
    SUBDISTRICT = 2
    COMMUNITY = 3
    ROAD = 4
    HOUSE_NUMBER = 5
    COMPOUND = 6
    BUILDING = 7
    UNIT = 8
    ROOM = 9


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """Hierarchy elements of one address: canonical names for dictionary hits, the typed text
    for names recognised by suffix only, digit strings for numbers.

    `city` is 天津市 for Tianjin text and the other city when the text names one (上海市天津路
    must not be geocoded in Tianjin). `notes` holds removed noise (bracketed remarks, 附近, floors,
    cross streets, phases), `unparsed` what was neither understood nor noise.
    """

    normalized: str
    city: str | None = None
    district: str | None = None
    subdistrict: str | None = None
    community: str | None = None
    road: str | None = None
    house_number: str | None = None
    compound: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    notes: tuple[str, ...] = ()
    unparsed: str = ""

    @property
    def level(self) -> Level | None:
        """The deepest element found, or None when not even the district is known."""
        for level in reversed(Level):
            if getattr(self, level.name.lower()) is not None:
                return level
        return None

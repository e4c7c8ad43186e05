"""Is a house number where its number says it should be along its road?

Numbers run along a road, odd on one side and even on the other (the demo generator lays them
out the same way). The rule, kept simple on purpose:

1. The road's numbers on the same side (same parity) in the same district, each at the mean
   point of its active addresses, the proposed number itself left out (a room in an existing
   house is checked against its neighbours, not against itself). Only plain numbers (``31号``)
   count; ``31-1号`` or ``甲3号`` are not checked.
2. The road's direction is the line from its lowest to its highest number on that side;
   every point is placed along it by projection (metres, a local flat approximation).
3. The nearest lower number L and the nearest higher number H: the proposed point must lie
   between them along the road, within ``TOLERANCE_M``; past L when there is no H (a new
   number at the end), before H when there is no L.

Fewer than two numbers on that side, or a road whose lowest and highest numbers stand at the
same place, tell nothing: no finding. A curved road can mislead the straight direction; the
finding is a warning for the reviewer, never a refusal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.orm import Session

# How far (metres, along the road) a point may stand outside its neighbours' span: a door is
# placed by hand, and a number's mean point sits in its compound, behind the road.
TOLERANCE_M: Final = 25.0
# Numbers read per road: a long road has a few hundred; more than this is not a road.
MAX_NUMBERS: Final = 5000
_PLAIN: Final = re.compile(r"(\d{1,6})号")  # fullmatch
_METRES_PER_DEGREE: Final = 111_320.0

# ix_addresses_structured (district_code, road, house_number, ...) finds the road's rows.
_NUMBERS_SQL: Final = """
SELECT a.house_number, avg(ST_X(a.geom)) AS lon, avg(ST_Y(a.geom)) AS lat
FROM addresses a
WHERE a.district_code = :district AND a.road = :road AND a.status = 'active'
  AND a.house_number IS NOT NULL
GROUP BY a.house_number
LIMIT :limit
"""


@dataclass(frozen=True)
class Numbered:
    number: int
    lon: float
    lat: float


def plain_number(house_number: str | None) -> int | None:
    """31 for 31号; None for anything else."""
    found = _PLAIN.fullmatch(house_number or "")
    return int(found.group(1)) if found else None


def road_numbers(session: Session, district_code: str, road: str) -> list[Numbered]:
    rows = session.execute(
        text(_NUMBERS_SQL), {"district": district_code, "road": road, "limit": MAX_NUMBERS}
    ).tuples()
    found = []
    for house_number, lon, lat in rows:
        number = plain_number(house_number)
        if number is not None:
            found.append(Numbered(number, float(lon), float(lat)))
    return found


def out_of_sequence(
    numbers: list[Numbered], number: int, lon: float, lat: float
) -> dict[str, Any] | None:
    """Why `number` at (lon, lat) is out of sequence among `numbers` (the road's), or None."""
    side = [n for n in numbers if n.number % 2 == number % 2 and n.number != number]
    if len(side) < 2:
        return None
    scale = math.cos(math.radians(lat))

    def metres(n: Numbered | tuple[float, float]) -> tuple[float, float]:
        x, y = (n.lon, n.lat) if isinstance(n, Numbered) else n
        return x * _METRES_PER_DEGREE * scale, y * _METRES_PER_DEGREE

    low = min(side, key=lambda n: n.number)
    high = max(side, key=lambda n: n.number)
    (x0, y0), (x1, y1) = metres(low), metres(high)
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 1.0:
        return None

    def along(point: Numbered | tuple[float, float]) -> float:
        x, y = metres(point)
        return ((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / length

    here = along((lon, lat))
    lower = max((n for n in side if n.number < number), key=lambda n: n.number, default=None)
    higher = min((n for n in side if n.number > number), key=lambda n: n.number, default=None)
    start = along(lower) if lower is not None else -math.inf  # none lower: anywhere before
    end = along(higher) if higher is not None else math.inf  # none higher: anywhere past
    start, end = min(start, end), max(start, end)
    if start - TOLERANCE_M <= here <= end + TOLERANCE_M:
        return None
    return {
        "side": "odd" if number % 2 else "even",
        "between": [f"{n.number}号" if n else None for n in (lower, higher)],
        "metres_outside": round(start - here if here < start else here - end, 1),
    }

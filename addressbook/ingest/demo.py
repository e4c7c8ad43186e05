"""Plausible generated addresses and grids for demos, samples and benchmarks.

Real district, subdistrict and community names and (derived) polygons from the admin areas;
synthetic roads and compounds laid out inside each community (in `make run`'s sample the first
roads of the central districts and Binhai take real main road names, MAIN_ROADS): roads cross
the community, house numbers increase along each road (odd on one side, even on the other), each
house number fronts a compound whose buildings stand in rows behind it, every building has units
and rooms (floor * 100 + n). Villages get house numbers along their roads and nothing deeper.

Everything is vectorised over the whole city with numpy and shapely, so three million addresses
take seconds, and everything comes from one seeded generator: the same seed over the same admin
areas gives the same file, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import shapely
from numpy.dtypes import StringDType
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook.ingest.demo_words import (
    COMPOUND_STEMS,
    COMPOUND_SUFFIXES,
    CORE_DISTRICTS,
    CORE_SUFFIXES,
    GIVEN,
    OUTER_SUFFIXES,
    ROAD_DIRECTIONS,
    ROAD_STEMS,
    SURNAMES,
    VILLAGE_LANES,
)
from addressbook.models import ELEMENTS

COLUMNS = ("lon", "lat", "district", "subdistrict", "community", *ELEMENTS)
GRID_SIZE_M = 500.0
GRID_SOURCE = "demo"  # grids.source of generated grids: regenerating replaces exactly them
METRES_PER_DEGREE = 111_320.0
_S = StringDType()


@dataclass
class Communities:
    """The current communities that have a polygon, with their parents' names."""

    code: np.ndarray
    name: np.ndarray
    district: np.ndarray
    subdistrict: np.ndarray
    village: np.ndarray  # bool: rural (村) communities get house numbers only
    urban_core: np.ndarray  # bool: main urban area (统计用城乡分类代码 111)
    geom: np.ndarray

    def __len__(self) -> int:
        return len(self.code)

    def where(self, mask: np.ndarray) -> Communities:
        """Some of the communities (tests and partial demos use one district, say)."""
        return Communities(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})


def load_communities(session: Session) -> Communities:
    rows = session.execute(
        text(
            """
            SELECT c.code, c.name, d.name, s.name, c.kind, c.urban_rural, ST_AsBinary(c.geom)
            FROM current_admin_areas c
            JOIN current_admin_areas s ON s.code = c.parent_code
            JOIN current_admin_areas d ON d.code = s.parent_code
            WHERE c.level = 'community' AND c.geom IS NOT NULL
            ORDER BY c.code
            """
        )
    ).all()
    if not rows:
        from geo.errors import ApiError

        raise ApiError(409, "NoAreas", "no admin areas with polygons: run `geo areas import` first")
    code, name, district, subdistrict, kind, ur, wkb = (list(c) for c in zip(*rows, strict=True))
    ur_codes = np.array([u or "" for u in ur])
    return Communities(
        code=np.array(code, dtype=object),
        name=np.array(name, dtype=object),
        district=np.array(district, dtype=object),
        subdistrict=np.array(subdistrict, dtype=object),
        village=(np.array(kind) == "村") | np.char.startswith(ur_codes, "2"),
        urban_core=ur_codes == "111",
        geom=shapely.from_wkb(np.array([bytes(w) for w in wkb], dtype=object)),
    )


# --- names --------------------------------------------------------------------------------------


def _name_pool(rng: np.random.Generator, stems: tuple[str, ...], middles, suffixes) -> np.ndarray:
    combos = [s + m + x for s in stems for m in middles for x in suffixes if s != m]
    pool = np.array(sorted(set(combos)), dtype=object)
    return pool[rng.permutation(len(pool))]


def _district_names(
    rng: np.random.Generator,
    districts: np.ndarray,
    slots: np.ndarray,
    kind: str,
    main_roads: Mapping[str, tuple[str, ...]] | None = None,
) -> np.ndarray:
    """A name for each slot, unique within its district while the district's pool lasts; the
    district's `main_roads` (roads only) take its first slots."""
    names = np.empty(len(slots), dtype=object)
    for district in sorted(set(districts.tolist())):
        mask = districts == district
        if kind == "road":
            suffixes = CORE_SUFFIXES if district in CORE_DISTRICTS else OUTER_SUFFIXES
            pool = _name_pool(rng, tuple(ROAD_STEMS), ROAD_DIRECTIONS, suffixes)
            main = (main_roads or {}).get(district, ())
            # Drawn before filtering, so every later draw of the generator stays the same.
            pool = np.concatenate([np.array(main, dtype=object), pool[~np.isin(pool, main)]])
        else:
            stems = tuple(COMPOUND_STEMS)
            pool = _name_pool(rng, stems, stems, COMPOUND_SUFFIXES)
        names[mask] = pool[slots[mask] % len(pool)]
    return names


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each run of equal group labels (labels must be sorted)."""
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, lengths)


# --- layout -------------------------------------------------------------------------------------


@dataclass
class Plan:
    """How each community's addresses are arranged: counts per level (all arrays per community)."""

    count: np.ndarray
    roads: np.ndarray
    houses: np.ndarray  # per road
    buildings: np.ndarray  # per compound
    units: np.ndarray  # per building
    floors: np.ndarray
    per_floor: np.ndarray


def _plan(rng: np.random.Generator, areas: Communities, count: int) -> Plan:
    weight = np.where(areas.village, 1.0, np.where(areas.urban_core, 4.0, 2.0))
    n = rng.multinomial(count, weight / weight.sum())
    size = len(areas)
    floors = np.where(areas.village, 1, rng.integers(6, 19, size))
    per_floor = np.where(areas.village, 1, rng.integers(2, 5, size))
    units = np.where(areas.village, 1, rng.integers(1, 7, size))
    buildings = np.where(areas.village, 1, rng.integers(1, 31, size))
    per_building = floors * per_floor * units
    houses_needed = np.maximum(1, -(-n // (per_building * buildings)))
    roads = np.clip(np.ceil(np.sqrt(houses_needed / 3)), 1, 12).astype(np.int64)
    houses = -(-houses_needed // roads)
    return Plan(n, roads, houses, buildings, units, floors, per_floor)


def _road_segments(areas: Communities, road_comm: np.ndarray, road_index: np.ndarray, plan: Plan):
    """Start and end of each road: a line across its community, clipped to the polygon."""
    bounds = shapely.bounds(areas.geom)[road_comm]
    minx, miny, maxx, maxy = bounds.T
    horizontal = (maxx - minx) * np.cos(np.radians(miny)) >= (maxy - miny)
    frac = (road_index + 0.5) / plan.roads[road_comm]
    y = miny + frac * (maxy - miny)
    x = minx + frac * (maxx - minx)
    coords = np.where(
        horizontal[:, None, None],
        np.stack([np.c_[minx - 1e-3, y], np.c_[maxx + 1e-3, y]], axis=1),
        np.stack([np.c_[x, miny - 1e-3], np.c_[x, maxy + 1e-3]], axis=1),
    )
    inside = shapely.intersection(shapely.linestrings(coords), areas.geom[road_comm])
    parts, owner = shapely.get_parts(inside, return_index=True)
    lines = (shapely.get_type_id(parts) == 1) & ~shapely.is_empty(parts)  # lines only
    parts, owner = parts[lines], owner[lines]
    start = np.repeat(
        shapely.get_coordinates(shapely.point_on_surface(areas.geom[road_comm])), 2, 0
    )
    start = start.reshape(-1, 2, 2)
    if len(parts):
        lengths = shapely.length(parts)
        order = np.lexsort((-lengths, owner))
        first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
        ends = np.stack(
            [shapely.get_coordinates(shapely.get_point(parts[first], i)) for i in (0, -1)], axis=1
        )
        start[owner[first]] = ends
    return start[:, 0], start[:, 1]


def generate(
    areas: Communities,
    count: int,
    seed: int,
    main_roads: Mapping[str, tuple[str, ...]] | None = None,
) -> pd.DataFrame:
    """`count` addresses as a frame of building-level rows plus room counts (see :func:`rows`);
    `main_roads` (MAIN_ROADS for the sample) name the first roads of their districts."""
    rng = np.random.default_rng(seed)
    plan = _plan(rng, areas, count)
    comm = np.repeat(np.arange(len(areas)), plan.count)
    k = np.arange(count) - np.repeat(np.cumsum(plan.count) - plan.count, plan.count)
    per_unit = (plan.floors * plan.per_floor)[comm]
    room_index = k % per_unit
    t = k // per_unit
    unit = t % plan.units[comm]
    t //= plan.units[comm]
    building = t % plan.buildings[comm]
    t //= plan.buildings[comm]
    house = t % plan.houses[comm]
    road = t // plan.houses[comm]
    floor = room_index // plan.per_floor[comm] + 1
    room = floor * 100 + room_index % plan.per_floor[comm] + 1
    frame = pd.DataFrame(
        {
            "comm": comm,
            "road": road,
            "house": house,
            "building": building,
            "unit": unit + 1,
            "room": room,
        }
    )
    return _locate(rng, areas, plan, frame, main_roads)


def _locate(
    rng: np.random.Generator,
    areas: Communities,
    plan: Plan,
    frame: pd.DataFrame,
    main_roads: Mapping[str, tuple[str, ...]] | None,
) -> pd.DataFrame:
    # Roads: one row per (community, road) that has addresses.
    road_key = frame["comm"].to_numpy() * 16 + frame["road"].to_numpy()  # roads <= 12
    road_ids, road_of_row = np.unique(road_key, return_inverse=True)
    road_comm, road_index = road_ids // 16, road_ids % 16
    start, end = _road_segments(areas, road_comm, road_index, plan)
    district_of_road = areas.district[road_comm]
    town = ~areas.village[road_comm]
    road_names = np.empty(len(road_ids), dtype=object)
    road_names[town] = _district_names(
        rng,
        district_of_road[town],
        _rank_within_district(district_of_road[town]),
        "road",
        main_roads,
    )
    # Village lanes are named after the village: 季家庄东街, 季家庄后街...
    stems = np.array([n.removesuffix("村") for n in areas.name[road_comm[~town]]], dtype=object)
    road_names[~town] = stems + np.array(VILLAGE_LANES, dtype=object)[road_index[~town]]
    # A name met again in the same district continues the numbering a thousand further on.
    road_round = _rank_within_district(district_of_road + "|" + road_names)
    first_number = road_round * 1000 + 1 + 2 * rng.integers(0, 40, len(road_ids))
    # Houses (and their compounds): one per (road, house).
    house_key = road_of_row.astype(np.int64) * (1 << 24) + frame["house"].to_numpy()
    house_ids, house_of_row = np.unique(house_key, return_inverse=True)
    house_road, house_index = house_ids // (1 << 24), house_ids % (1 << 24)
    positions = -(-plan.houses[road_comm[house_road]] // 2)
    frac = (house_index // 2 + 0.5) / positions
    side = np.where(house_index % 2 == 0, 1.0, -1.0)  # odd numbers on the left of the road
    base = start[house_road] + frac[:, None] * (end[house_road] - start[house_road])
    direction = end[house_road] - start[house_road]
    direction /= np.maximum(np.hypot(direction[:, 0], direction[:, 1]), 1e-12)[:, None]
    normal = np.c_[-direction[:, 1], direction[:, 0]]
    house_comm = road_comm[house_road]
    compound_slot = _rank_within_district(areas.district[house_comm])
    compounds = _district_names(rng, areas.district[house_comm], compound_slot, "compound")
    compounds = np.where(areas.village[house_comm], "", compounds)
    # Buildings stand in rows of four behind the house, 25 m apart.
    building = frame["building"].to_numpy()
    village = areas.village[frame["comm"].to_numpy()]
    along = np.where(village, 0.0, (building % 4 - 1.5) * 25.0)
    across = np.where(village, 12.0, 30.0 + (building // 4) * 25.0) * side[house_of_row]
    metres = np.c_[along, across]
    scale = 1.0 / METRES_PER_DEGREE
    lat0 = base[house_of_row, 1]
    offset = (
        direction[house_of_row] * metres[:, :1] + normal[house_of_row] * metres[:, 1:]
    ) * scale
    offset[:, 0] /= np.cos(np.radians(lat0))
    xy = base[house_of_row] + offset
    # Behind the house may be outside an odd-shaped community: stand on the road instead.
    comm = frame["comm"].to_numpy()
    shapely.prepare(areas.geom)
    outside = ~shapely.contains_xy(areas.geom[comm], xy[:, 0], xy[:, 1])
    xy[outside] = base[house_of_row[outside]]
    frame["lon"] = np.round(xy[:, 0], 7)
    frame["lat"] = np.round(xy[:, 1], 7)
    frame["road_name"] = road_names[road_of_row]
    frame["house_number"] = first_number[road_of_row] + frame["house"]
    frame["compound"] = compounds[house_of_row]
    return frame


def _rank_within_district(districts: np.ndarray) -> np.ndarray:
    """Running number of each item within its district, in the items' order."""
    order = np.argsort(districts, kind="stable")
    ranks = np.empty(len(districts), dtype=np.int64)
    ranks[order] = _rank_within(districts[order])
    return ranks


# --- CSV ----------------------------------------------------------------------------------------


def _csv_field(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\n') else value


def _strings(values: Any) -> np.ndarray:
    return np.asarray(values).astype(_S)


def _join(*parts: np.ndarray | str) -> np.ndarray:
    out = parts[0]
    for part in parts[1:]:
        out = np.strings.add(out, part)
    return np.asarray(out)


def csv_chunks(
    areas: Communities,
    count: int,
    seed: int,
    chunk: int = 250_000,
    main_roads: Mapping[str, tuple[str, ...]] | None = None,
) -> Iterator[bytes]:
    """The import CSV (header first), in chunks of encoded lines. Rows of one building are
    consecutive and share its point, so the building part of each line is formatted once."""
    frame = generate(areas, count, seed, main_roads)
    yield (",".join(COLUMNS) + "\n").encode()
    if not len(frame):
        return
    keys = frame[["comm", "road", "house", "building"]].to_numpy()
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)])
    lengths = np.diff(np.r_[starts, len(frame)])
    block = frame.iloc[starts]
    comm = block["comm"].to_numpy()
    village = areas.village[comm]
    quoted = {
        name: _strings([_csv_field(v) for v in getattr(areas, name)])
        for name in ("district", "subdistrict", "name")
    }
    head = _join(
        _strings(block["lon"].to_numpy()),
        ",",
        _strings(block["lat"].to_numpy()),
        ",",
        quoted["district"][comm],
        ",",
        quoted["subdistrict"][comm],
        ",",
        quoted["name"][comm],
        ",",
        _strings(block["road_name"].to_numpy()),
        ",",
        _strings(block["house_number"].to_numpy()),
        ",",
        _strings(block["compound"].to_numpy()),
        ",",
        np.where(village, "", _strings(block["building"].to_numpy() + 1)).astype(_S),
    )
    unit_room = _join(
        ",", _strings(frame["unit"].to_numpy()), ",", _strings(frame["room"].to_numpy())
    )
    tail = np.where(np.repeat(village, lengths), ",,", unit_room).astype(_S)
    lines = _join(np.repeat(head, lengths), tail)
    for begin in range(0, len(lines), chunk):
        part = lines[begin : begin + chunk].tolist()
        yield ("\n".join(part) + "\n").encode()


def write_csv(
    out: IO[bytes] | Path,
    areas: Communities,
    count: int,
    seed: int,
    main_roads: Mapping[str, tuple[str, ...]] | None = None,
) -> int:
    if isinstance(out, Path):
        with out.open("wb") as handle:
            return write_csv(handle, areas, count, seed, main_roads)
    for chunk in csv_chunks(areas, count, seed, main_roads=main_roads):
        out.write(chunk)
    return count


# --- grids --------------------------------------------------------------------------------------


def _as_multipolygons(pieces: np.ndarray) -> np.ndarray:
    """Polygonal parts of each geometry as one MultiPolygon each (vectorised)."""
    parts, owner = shapely.get_parts(pieces, return_index=True)
    polygonal = shapely.get_type_id(parts) == 3
    return np.asarray(shapely.multipolygons(parts[polygonal], indices=owner[polygonal]))


def generate_grids(areas: Communities, seed: int, size_m: float = GRID_SIZE_M) -> pd.DataFrame:
    """Each community cut by a city-wide lattice of ~size_m squares; slivers under a tenth of a
    cell join their community's largest piece. Codes `<community>-G01`... north-west first.
    All communities are cut in one vectorised intersection."""
    rng = np.random.default_rng(seed)
    dlat = size_m / METRES_PER_DEGREE
    dlon = size_m / (METRES_PER_DEGREE * math.cos(math.radians(39.1)))
    bounds = shapely.bounds(areas.geom)
    col0, col1 = np.floor(bounds[:, 0] / dlon), np.ceil(bounds[:, 2] / dlon)
    row0, row1 = np.floor(bounds[:, 1] / dlat), np.floor(bounds[:, 3] / dlat)
    ncols, nrows = (col1 - col0).astype(np.int64), (row1 - row0 + 1).astype(np.int64)
    owner = np.repeat(np.arange(len(areas)), ncols * nrows)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(ncols * nrows) - ncols * nrows, ncols * nrows)
    cx = col0[owner] + k % ncols[owner]
    cy = row1[owner] - k // ncols[owner]  # north first, then west to east
    boxes = shapely.box(cx * dlon, cy * dlat, (cx + 1) * dlon, (cy + 1) * dlat)
    # Only the cells on a community's edge need cutting: prepared predicates sort them out.
    shapely.prepare(areas.geom)
    inside = shapely.contains(areas.geom[owner], boxes)
    edge = ~inside & shapely.intersects(areas.geom[owner], boxes)
    pieces = np.full(len(boxes), None, dtype=object)
    pieces[inside] = boxes[inside]
    pieces[edge] = shapely.intersection(boxes[edge], areas.geom[owner[edge]])
    area = shapely.area(pieces)
    area[np.isnan(area)] = 0
    keep = area > 0
    pieces, owner, area = _as_multipolygons(pieces[keep]), owner[keep], area[keep]
    small = area < 0.1 * dlon * dlat
    # Slivers join the largest piece of their community (or, if all are slivers, one grid).
    frame = pd.DataFrame({"owner": owner, "area": area, "small": small})
    largest = frame.groupby("owner")["area"].transform("max") == frame["area"]
    largest &= ~frame.duplicated(["owner", "area"])
    largest = largest.to_numpy()
    order = np.argsort(owner, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(owner[order])) + 1):
        if small[group].any():
            members = group[small[group] | largest[group]]
            into = group[largest[group]][0]
            pieces[into] = _as_multipolygons(np.array([shapely.union_all(pieces[members])]))[0]
    kept = ~small | largest
    pieces, owner = pieces[kept], owner[kept]
    number = _rank_within(owner) + 1
    codes = areas.code[owner]
    records = {
        "code": [f"{c}-G{n:02d}" for c, n in zip(codes, number, strict=True)],
        "name": [f"{m}第{n}网格" for m, n in zip(areas.name[owner], number, strict=True)],
        "community_code": codes,
        "geom": pieces,
    }
    frame = pd.DataFrame(records)
    surnames = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), len(frame))]
    given = np.array(GIVEN)[rng.integers(0, len(GIVEN), (len(frame), 2))]
    frame["staff_name"] = (
        surnames + given[:, 0] + np.where(rng.random(len(frame)) < 0.5, "", given[:, 1])
    )
    frame["staff_phone"] = [
        f"1{p:010d}" for p in rng.integers(3_000_000_000, 9_999_999_999, len(frame))
    ]
    return frame

"""Plausible named places for the demo library: well-known Tianjin places where they are (each
checked against its district's outline, and moved onto it if the outline does not hold it), and
generated ones in every district: a district hospital (河西区人民医院), per subdistrict its
office (友谊路街道办事处), a primary school (友谊路小学) and, for every third, a park, and per
urban community its residents' committee office (花园路社区居委会). Written as the CSV an
operator imports (addressbook.places.read), with a fixed seed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Final

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from addressbook.ingest.demo import Communities

PLACE_SOURCE: Final = "demo"
# name, aliases, category, district, lon, lat (EPSG:4490, near enough to WGS 84 for a demo).
REAL_PLACES: Final = (
    ("天津站", "天津火车站|天津东站", "station", "河东区", 117.2105, 39.1362),
    ("天津西站", "西站", "station", "红桥区", 117.1638, 39.1578),
    ("天津南站", "", "station", "西青区", 117.0634, 39.0570),
    ("天津北站", "", "station", "河北区", 117.2096, 39.1650),
    ("天津滨海国际机场", "滨海机场|天津机场", "station", "东丽区", 117.3540, 39.1300),
    ("于家堡站", "", "station", "滨海新区", 117.6950, 39.0140),
    ("南开大学", "南大", "school", "南开区", 117.1700, 39.1030),
    ("天津大学", "天大", "school", "南开区", 117.1730, 39.1080),
    ("天津医科大学", "医科大", "school", "和平区", 117.1930, 39.1250),
    ("天津市南开中学", "南开中学", "school", "南开区", 117.1790, 39.1390),
    ("天津市耀华中学", "耀华中学", "school", "和平区", 117.2040, 39.1130),
    ("天津医科大学总医院", "总医院", "hospital", "和平区", 117.1890, 39.1255),
    ("天津市第一中心医院", "一中心医院", "hospital", "南开区", 117.1635, 39.1135),
    ("天津市人民医院", "", "hospital", "红桥区", 117.1500, 39.1660),
    ("天津市肿瘤医院", "肿瘤医院", "hospital", "河西区", 117.1880, 39.0960),
    ("水上公园", "天津水上公园", "park", "南开区", 117.1640, 39.0910),
    ("人民公园", "", "park", "河西区", 117.2120, 39.1110),
    ("中山公园", "", "park", "河北区", 117.2005, 39.1530),
    ("北宁公园", "", "park", "河北区", 117.2115, 39.1700),
    ("长虹公园", "", "park", "南开区", 117.1520, 39.1280),
    ("天津市人民政府", "市政府", "government", "和平区", 117.2020, 39.1230),
    ("天津之眼", "永乐桥摩天轮", "other", "红桥区", 117.1810, 39.1530),
    ("古文化街", "", "commercial", "南开区", 117.1870, 39.1440),
    ("意式风情区", "意式风情街", "commercial", "河北区", 117.1975, 39.1385),
    ("五大道", "", "other", "和平区", 117.1980, 39.1120),
    ("天津博物馆", "", "other", "河西区", 117.2150, 39.0850),
    ("天津奥林匹克中心体育场", "水滴体育场|奥体中心", "other", "南开区", 117.1620, 39.0820),
    ("天津文化中心", "文化中心", "other", "河西区", 117.2140, 39.0880),
)
COLUMNS: Final = ("category", "name", "aliases", "lon", "lat")
_SUBDISTRICT_SUFFIX: Final = re.compile(r"(?:街道办事处|街道|镇|乡)$")
_COMMUNITY: Final = re.compile(r"社区(?:居民委员会|居委会)?$")


def _inside(rng: np.random.Generator, shape: BaseGeometry) -> tuple[float, float]:
    """A random point of the polygon (its representative point if a few draws miss it)."""
    minx, miny, maxx, maxy = shape.bounds
    for _ in range(20):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shape.contains(shapely.Point(x, y)):
            return round(float(x), 7), round(float(y), 7)
    point = shape.representative_point()
    return round(point.x, 7), round(point.y, 7)


def _districts(areas: Communities) -> dict[str, BaseGeometry]:
    return {
        name: shapely.union_all(areas.geom[areas.district == name])
        for name in sorted(set(areas.district))
    }


def _real(rng: np.random.Generator, districts: dict[str, BaseGeometry]) -> Iterator[tuple]:
    for name, aliases, category, district, lon, lat in REAL_PLACES:
        shape = districts.get(district)
        if shape is None:
            continue
        if not shape.contains(shapely.Point(lon, lat)):
            lon, lat = _inside(rng, shape)
        yield category, name, aliases, lon, lat


def _generated(rng: np.random.Generator, areas: Communities) -> Iterator[tuple]:
    for district in sorted(set(areas.district)):
        chosen = np.flatnonzero((areas.district == district) & ~areas.village)
        chosen = chosen if len(chosen) else np.flatnonzero(areas.district == district)
        hospital = areas.geom[chosen[rng.integers(len(chosen))]]
        yield ("hospital", f"{district}人民医院", "", *_inside(rng, hospital))
    for number, subdistrict in enumerate(
        sorted(set(zip(areas.district, areas.subdistrict, strict=True)))
    ):
        district, name = subdistrict
        members = np.flatnonzero((areas.district == district) & (areas.subdistrict == name))
        stem = _SUBDISTRICT_SUFFIX.sub("", name)
        shape = areas.geom[members[rng.integers(len(members))]]
        if name.endswith("街道"):
            yield ("government", f"{name}办事处", f"{name}办", *_inside(rng, shape))
        else:
            yield ("government", f"{name}人民政府", "", *_inside(rng, shape))
        if len(stem) >= 2:
            school = areas.geom[members[rng.integers(len(members))]]
            yield ("school", f"{stem}小学", "", *_inside(rng, school))
            if number % 3 == 0:
                park = areas.geom[members[rng.integers(len(members))]]
                yield ("park", f"{stem}公园", "", *_inside(rng, park))
    for index in np.flatnonzero(~areas.village):
        name = str(areas.name[index])
        if _COMMUNITY.search(name):
            office = _COMMUNITY.sub("社区居委会", name)
            yield ("government", office, "", *_inside(rng, areas.geom[index]))


def places_csv(areas: Communities, seed: int) -> bytes:
    """The demo places as an import file (UTF-8 CSV); the same seed gives the same places. A
    generated name that a real place or an earlier generated one already has is left out."""
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    seen: set[str] = set()
    for row in (*_real(rng, _districts(areas)), *_generated(rng, areas)):
        if row[1] not in seen:
            seen.add(row[1])
            writer.writerow(row)
    return out.getvalue().encode()

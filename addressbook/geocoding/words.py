"""Tianjin's address words: what the kinds of names are, the suffixes that make a word a name
of a kind (…街道, …路, …里, …花园), the district names of earlier years, and the patterns of
numbers (号楼, 单元, 室, 18-3-502) and noise (附近, 交口, other cities).

Data and the small word scanner built on it, shared by the parser and its dictionary: neither
the lists nor the scanner depend on the library's content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Kind(StrEnum):
    """What a gazetteer name denotes; declaration order is the order of the hierarchy."""

    DISTRICT = "district"
    SUBDISTRICT = "subdistrict"
    COMMUNITY = "community"
    ROAD = "road"
    COMPOUND = "compound"


KIND_ORDER: Final = {kind: rank for rank, kind in enumerate(Kind)}


# Old district names (county-to-district conversions, the 2009 merger into 滨海新区, 蓟县 ->
# 蓟州区 in 2016). Historical facts rather than library content, hence a default for `build`.
TIANJIN_HISTORICAL_ALIASES: Final[Mapping[str, tuple[str, Kind]]] = MappingProxyType(
    {
        "蓟县": ("蓟州区", Kind.DISTRICT),
        "塘沽区": ("滨海新区", Kind.DISTRICT),
        "汉沽区": ("滨海新区", Kind.DISTRICT),
        "大港区": ("滨海新区", Kind.DISTRICT),
        "宁河县": ("宁河区", Kind.DISTRICT),
        "静海县": ("静海区", Kind.DISTRICT),
        "武清县": ("武清区", Kind.DISTRICT),
        "宝坻县": ("宝坻区", Kind.DISTRICT),
        "西郊区": ("西青区", Kind.DISTRICT),
        "东郊区": ("东丽区", Kind.DISTRICT),
        "南郊区": ("津南区", Kind.DISTRICT),
        "北郊区": ("北辰区", Kind.DISTRICT),
    }
)
# An alias table: alias -> (canonical name, kind as `Kind` or its value, e.g. "road").
Aliases = Mapping[str, tuple[str, str]]

# --- suffix rules -------------------------------------------------------------------------

# (suffix, kind, shortest stem): the suffixes that make a word a name of that kind.
_SUFFIX_TABLE: Final = (
    ("街道办事处 街道 镇 乡", Kind.SUBDISTRICT, 1),
    ("办事处", Kind.SUBDISTRICT, 2),
    ("社区居委会 居委会 村委会 社区 村", Kind.COMMUNITY, 1),
    ("大街 大道 公路 胡同 路 道 街 巷", Kind.ROAD, 1),
    ("线", Kind.ROAD, 2),
    (
        "小区 花园 家园 公寓 大厦 商厦 大楼 新村 新城 小镇 广场 酒店 别墅 园区"
        " 里 苑 园 庄 城 院 府 湾 郡 居 轩 庭 阁",
        Kind.COMPOUND,
        1,
    ),
    ("中心 楼 区", Kind.COMPOUND, 2),
)
_SUFFIXES: Final = tuple(
    sorted(
        ((suffix, kind, stem) for names, kind, stem in _SUFFIX_TABLE for suffix in names.split()),
        key=lambda item: -len(item[0]),
    )
)
_SUFFIXES_BY_LAST: Final = {
    last: tuple(item for item in _SUFFIXES if item[0][-1] == last)
    for last in {item[0][-1] for item in _SUFFIXES}
}
# After the first suffix a name may go on: 林苑+西里, 平安里+小区, 梅苑+路, 华明街+道, 汪庄+园,
# 金融街+中心.
EXTENSION: Final = re.compile(
    r"[东西南北中]?(?:大街|大道|里|区|院|路|道|街)|小区|公寓|花园|家园|新村|中心|大厦|广场"
    r"|社区|居委会|村委会"
    r"|村|镇|乡|办事处|楼(?!\d)|园|苑|(?<=庄)子"
)
SUFFIX_NAMES: Final = frozenset(item[0] for item in _SUFFIXES)
_DIRECTIONS: Final = frozenset("东西南北中")
_MAX_WORD: Final = 14
# A shortened name is part of a road name when a road tail follows: 河北+路, 南开+三马路, 海滨+大道.
ROAD_TAIL: Final = re.compile(
    r"[东西南北中]?[一二三四五六七八九十\d]*[马经纬]?(?:大街|大道|公路|支路|路|道|街|巷|线)"
)
ZONE: Final = re.compile(r"(?:区|工业园|产业园|科技园|创业园|基地)$")


def is_cjk(ch: str) -> bool:
    """CJK ideographs, including the supplementary planes that some village names need."""
    return (
        "\u3400" <= ch <= "\u9fff"
        or "\uf900" <= ch <= "\ufaff"
        or "\U00020000" <= ch <= "\U0003ffff"
    )


def suffix_of(word: str) -> tuple[str, Kind] | None:
    """The suffix that classifies `word`, if its stem is long enough to be a name."""
    for suffix, kind, min_stem in _SUFFIXES_BY_LAST.get(word[-1:], ()):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= min_stem and stem not in _DIRECTIONS:
            return suffix, kind
    return None


def kind_of(word: str) -> Kind | None:
    found = suffix_of(word)
    return found[1] if found else None


def starts_with_suffix(text: str, position: int) -> bool:
    return any(text.startswith(suffix, position) for suffix in SUFFIX_NAMES)


def scan_word(segment: str, start: int, stops: frozenset[int]) -> tuple[int, Kind] | None:
    """The shortest name from `start` that ends in a suffix, extended by chained suffixes.

    Stops at non-CJK characters and where a dictionary name begins, so that a known name is
    never swallowed into an unknown one.
    """
    end = start
    limit = min(len(segment), start + _MAX_WORD)
    while end < limit and is_cjk(segment[end]) and (end == start or end not in stops):
        end += 1
        if kind_of(segment[start:end]):
            while match := EXTENSION.match(segment, end):
                end = match.end()
            kind = kind_of(segment[start:end])
            return (end, kind) if kind else None
    return None


# --- numbers and noise -------------------------------------------------------------------------

NUMBER: Final = re.compile(
    r"(?<![A-Za-z])"  # not inside a word such as MSD
    r"(?:(?P<building>[A-Za-z]?\d+[A-Za-z]?(?:-\d+)?|[A-Za-z])号楼"
    r"|(?P<unit>\d+)单元"
    r"|(?P<room>[A-Za-z\d]*\d[A-Za-z\d]*(?:-[A-Za-z\d]+)?)室"
    r"|(?P<house>增?\d+(?:-\d+)?)号(?:(?P<annex>增\d+)号)?"
    r"|(?P<floor>[A-Za-z]?\d+(?:-\d+)?(?:层|楼|F(?![A-Za-z\d])))"
    r"|(?P<zone>(?:[A-Za-z]\d*|\d+)(?:期|区))"
    r"|(?P<dash>(?:[A-Za-z]|[A-Za-z]?\d+[A-Za-z]?)(?:-[A-Za-z]?\d+[A-Za-z]?)+)(?![A-Za-z\d])室?"
    r"|(?P<bare>[A-Za-z]?\d+[A-Za-z]?)(?![A-Za-z\d]))"
)
NUMBER_GROUPS: Final = ("building", "unit", "room", "house", "floor", "zone", "dash", "bare")
GLUED_ROAD: Final = re.compile(r"(?:大街|大道|支路|路|道|街)")  # 海泰发展6道, 渤海10路
HIGHWAY: Final = re.compile(r"[GSXY]\d{1,4}(?![A-Za-z\d号单室-])")  # S238 is a road
CROSSING: Final = re.compile(r"与|和")
ROAD_NOTE: Final = re.compile(r"交口|交叉口|交汇处|路口|之间|以[东西南北]|[东西南北]侧|延长线|一侧")
FILLER: Final = re.compile(r"院内|内|院|小高层|高层|多层|洋房")
ALTERNATIVES: Final = re.compile(r"\s*[/;]\s*")
# 上海市, 山东省威海市, 浙江杭州市 -- but not 超市, 城市 or a Tianjin street name ending in 市.
OTHER_CITY: Final = re.compile(
    r"(?:[\u4e00-\u9fff]{2,3}省)?(?:(?![区县路街道镇乡里])[\u4e00-\u9fff]){2,4}"
    r"(?<![超城门夜菜股花鱼集])市(?!场)"
)

"""Messy variants of library addresses, as people type them, each with the address it came from.

The geocoding benchmark draws addresses from the library and derives from each the kinds of text
the issue names (and real_addresses.txt shows): a typo (one character of the road or compound
replaced), missing levels (district and/or subdistrict dropped), Chinese numerals (32号 ->
三十二号, 2单元 -> 二单元), full-width digits, 楼-门-户 dashes (18号楼3单元502室 -> 18-3-502),
and noise (天津市天津市 prefixes, (附近) suffixes, brackets, spaces). One or two of them per text,
from a seeded generator, so every run sees the same texts.

A typo that turns the name into another name of the same district is not a typo but another
address; such draws are redrawn.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Characters typed by mistake: common in addresses, so a substitution looks plausible.
TYPO_POOL = "东西南北中新华光明和平安康泰福兴盛宏达利民建设胜阳春园林花苑景丽山水海河"
CN_DIGITS = "零一二三四五六七八九"
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
NOISE_PREFIXES = ("天津市天津市", "天津天津", "中国天津", "天津市 ")
NOISE_SUFFIXES = ("(附近)", "（小区门口）", " 附近", "【送货上门】")


@dataclass(frozen=True)
class Source:
    """A library address, by its elements as stored (32号, 1号楼, 2单元, 301室)."""

    id: int
    district: str
    subdistrict: str | None
    road: str | None
    house_number: str | None
    compound: str | None
    building: str | None
    unit: str | None
    room: str | None


@dataclass(frozen=True)
class Variant:
    source: Source
    text: str
    kinds: tuple[str, ...]


def chinese_numeral(number: int) -> str:
    """三十二 for 32 (positional up to 9999), as people write house numbers and units."""
    if number < 10:
        return CN_DIGITS[number]
    out = ""
    for value, unit in ((1000, "千"), (100, "百"), (10, "十")):
        digit, number = divmod(number, value)
        if digit:
            out += ("" if (unit == "十" and not out and digit == 1) else CN_DIGITS[digit]) + unit
        elif out and number:
            out += "" if out.endswith("零") else "零"
    return out + (CN_DIGITS[number] if number else "")


class _Parts:
    """The text being built: admin prefix, street part and number part, edited in place."""

    def __init__(self, s: Source) -> None:
        self.source = s
        self.city = "天津市"
        self.district: str = s.district
        self.subdistrict = s.subdistrict or ""
        self.road = s.road or ""
        self.house = s.house_number or ""
        self.compound = s.compound or ""
        self.building = s.building or ""
        self.unit = s.unit or ""
        self.room = s.room or ""
        self.prefix = ""
        self.suffix = ""

    def text(self) -> str:
        return (
            self.prefix
            + self.city
            + self.district
            + self.subdistrict
            + self.road
            + self.house
            + self.compound
            + self.building
            + self.unit
            + self.room
            + self.suffix
        )


Transform = Callable[[_Parts, random.Random], bool]


def _typo(known: Callable[[str, str], bool]) -> Transform:
    def apply(p: _Parts, rng: random.Random) -> bool:
        fields = [f for f in ("road", "compound") if len(getattr(p, f)) >= 3]
        if not fields:
            return False
        field = rng.choice(fields)
        name = getattr(p, field)
        for _ in range(20):
            i = rng.randrange(len(name))
            typed = name[:i] + rng.choice(TYPO_POOL) + name[i + 1 :]
            if typed != name and not known(p.source.district, typed):
                setattr(p, field, typed)
                return True
        return False

    return apply


def _missing(p: _Parts, rng: random.Random) -> bool:
    choice = rng.choice(("district", "subdistrict", "both"))
    if choice in ("district", "both"):
        p.district = ""
    if choice in ("subdistrict", "both"):
        p.subdistrict = ""
    if rng.random() < 0.5:
        p.city = ""
    return True


def _numerals(p: _Parts, rng: random.Random) -> bool:
    done = False
    for field, marker in (("house", "号"), ("unit", "单元"), ("building", "号楼")):
        value = getattr(p, field)
        digits = value.removesuffix(marker)
        if value.endswith(marker) and digits.isdigit() and int(digits) < 10000:
            setattr(p, field, chinese_numeral(int(digits)) + marker)
            done = True
    if p.room.endswith("室") and p.room[:-1].isdigit() and rng.random() < 0.5:
        p.room = "".join(CN_DIGITS[int(d)] for d in p.room[:-1]) + "室"
        done = True
    return done


def _full_width(p: _Parts, rng: random.Random) -> bool:
    for field in ("house", "building", "unit", "room"):
        setattr(p, field, getattr(p, field).translate(FULL_WIDTH))
    return any(getattr(p, f) for f in ("house", "building", "unit", "room"))


def _dashes(p: _Parts, rng: random.Random) -> bool:
    if not (p.building.endswith("号楼") and p.unit.endswith("单元") and p.room.endswith("室")):
        return False
    b, u, r = p.building[:-2], p.unit[:-2], p.room[:-1]
    if not (b.isdigit() and u.isdigit() and r.isdigit()):  # 一-一-一零二 is nobody's spelling
        return False
    p.building, p.unit, p.room = f"{b}-{u}-{r}", "", ""
    return True


def _noise(p: _Parts, rng: random.Random) -> bool:
    kind = rng.randrange(4)
    if kind == 0:
        p.prefix = rng.choice(NOISE_PREFIXES)
    elif kind == 1:
        p.suffix = rng.choice(NOISE_SUFFIXES)
    elif kind == 2 and p.compound:
        p.compound = f"【{p.compound}】"
    else:
        p.road = p.road + " "
        p.prefix = rng.choice(NOISE_PREFIXES)
    return True


def standard(sources: Sequence[Source]) -> list[Variant]:
    """Each source in the library's own standard form, untouched."""
    return [Variant(s, _Parts(s).text(), ("standard",)) for s in sources]


def variants(
    sources: Sequence[Source], known: Callable[[str, str], bool], seed: int
) -> list[Variant]:
    """One variant per source, with one or two transforms (see the module docstring);
    `known(district, name)` says whether a name already exists in a district."""
    rng = random.Random(seed)
    transforms: dict[str, Transform] = {
        "typo": _typo(known),
        "missing": _missing,
        "numerals": _numerals,
        "full-width": _full_width,
        "dashes": _dashes,
        "noise": _noise,
    }
    out = []
    for source in sources:
        parts = _Parts(source)
        kinds: list[str] = []
        for name in rng.sample(list(transforms), k=rng.choice((1, 2))):
            if transforms[name](parts, rng):
                kinds.append(name)
        if not kinds:
            _noise(parts, rng)
            kinds.append("noise")
        out.append(Variant(source, parts.text(), tuple(kinds)))
    return out

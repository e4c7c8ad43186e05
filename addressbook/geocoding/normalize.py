"""Normalisation of free-typed Tianjin addresses before parsing and matching.

People type the same address in many spellings: full-width digits, five kinds of dash, Chinese
numerals, 栋/幢/座 for 号楼, 门 for 单元, 户 for 室, delivery-system prefixes repeated twice
(`天津天津河西区中国天津天津河西区...`) and notes in brackets ("...附近"). The parser and the
library both match on one canonical spelling, so everything is rewritten here, once, with
precompiled patterns. Names are left alone: Chinese numerals become digits only in front of a
marker that makes them a number (三十二号, 一单元), never inside names such as 十四经路 or 六里台.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# --- character folding --------------------------------------------------------------------

_NON_BMP: Final = re.compile(r"([\U00010000-\U0010FFFF]+)")

# A small traditional -> simplified table for characters that occur in addresses: addresses
# copied from traditional-script pages (天津市濱海新區經濟技術開發區) must still match.
_TRADITIONAL: Final = str.maketrans(
    "區號樓門單層園廣場東濱經濟術開發華灣鎮鄉縣莊裡衛寧興陽陳國際業醫寶豐雲長連達產麗龍線"
    "會慶鐵橋勝紅黃雙齊楊劉張倉廈館義後圍輕環寬遠運聯電農貿華務蘭鳳",
    "区号楼门单层园广场东滨经济术开发华湾镇乡县庄里卫宁兴阳陈国际业医宝丰云长连达产丽龙线"
    "会庆铁桥胜红黄双齐杨刘张仓厦馆义后围轻环宽远运联电农贸华务兰凤",
)

# Dashes become "-", every bracket style becomes ASCII parentheses, separators become spaces;
# "/" and ";" are kept because they separate alternative addresses.
_PUNCTUATION: Final = str.maketrans(
    {
        **dict.fromkeys("—–―‐‑‒−~⁓〜", "-"),
        **dict.fromkeys("【〔〖「『《〈[{", "("),
        **dict.fromkeys("】〕〗」』》〉]}", ")"),
        **dict.fromkeys("，,、。:！!？?·…\t\r\n", " "),
        **dict.fromkeys("“”‘’\"'", ""),
    }
)
_DASH_RUN: Final = re.compile(r"-{2,}")


def fold(text: str) -> str:
    """Fold width, script and punctuation variants, so that library names and typed text compare.

    NFKC is applied to BMP text only: it would remap some CJK compatibility ideographs outside the
    BMP, and several village names use characters there that must survive unchanged.
    """
    if _NON_BMP.search(text):
        parts = _NON_BMP.split(text)
        text = "".join(
            part if i % 2 else unicodedata.normalize("NFKC", part) for i, part in enumerate(parts)
        )
    else:
        text = unicodedata.normalize("NFKC", text)
    text = text.translate(_TRADITIONAL).translate(_PUNCTUATION)
    return _DASH_RUN.sub("-", text)


# --- notes --------------------------------------------------------------------------------

_BRACKETED: Final = re.compile(r"\(([^()]*)\)")
# Bracket content that describes surroundings rather than the address itself.
_NOTE_CONTENT: Final = re.compile(
    r"附近|对面|门口|旁|隔壁|以[东西南北]|[东西南北]侧|之间|交口|交汇|交叉|方位|地图|搜索|所示"
    r"|总部|分公司|环外|环内|联系|电话|^\s*(?:近|原|即|位于)"
)
# Phrases that are noise wherever they stand.
# Bracket content with a building-unit-room group is address, even with a note attached
# (【9区71-105 帝城大酒店附近】); the inline pass below drops the note words from it.
_ADDRESS_CONTENT: Final = re.compile(r"\d+-\d+|\d+(?:号楼|单元|室)")
_INLINE_NOTE: Final = re.compile(
    r"附近|旁边|斜对面|对面|隔壁|全境|全区|其[它他]地区|外环[内外]|去前联系"
)


def _drop_bracket_notes(text: str, notes: list[str]) -> str:
    """Remove bracketed notes but keep bracketed address parts, innermost brackets first."""

    def replace(match: re.Match[str]) -> str:
        content = match.group(1)
        if _NOTE_CONTENT.search(content) and not _ADDRESS_CONTENT.search(content):
            notes.append(content.strip())
            return " "
        return f" {content} "

    if "(" not in text and ")" not in text:
        return text
    previous = None
    while previous != text:
        previous, text = text, _BRACKETED.sub(replace, text)
    return text.replace("(", " ").replace(")", " ")


def _drop_inline_notes(text: str, notes: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        notes.append(match.group())
        return " "

    return _INLINE_NOTE.sub(replace, text)


# --- repeated city / district prefixes ------------------------------------------------------

# A district-like token: 河西区, 滨海新区, 蓟县, 宁河县, 塘沽区. Deliberately generic (no list
# of names), so it only ever deduplicates and reorders tokens that are already in the text.
_DISTRICT: Final = r"[\u4e00-\u9fff]{1,2}?(?:新区|区|县)"
_PREFIX_TOKEN: Final = re.compile(
    rf"\s*(?:(?P<country>中国)|(?P<city>天津\s*市|天津(?=\s*(?:天津|中国|{_DISTRICT}|$)))"
    rf"|(?P<district>{_DISTRICT})|(?P<zip>\d{{6}}(?!\d)))"
)
_REPEATED_PREFIX: Final = re.compile(rf"(?:中国\s*)?天津\s*市?\s*(?P<district>{_DISTRICT})")
_COUNTRY: Final = re.compile(r"中国\s*(?=天津)")


def _collapse_prefix(text: str, notes: list[str]) -> str:
    """Turn a run of 中国/天津/district tokens into one `天津市<district...>` prefix.

    Delivery systems prepend their own area picker to what the user typed, so the same city and
    district appear two or three times; later repetitions of a district already named are dropped.
    """
    position, has_city = 0, False
    districts: list[str] = []
    while match := _PREFIX_TOKEN.match(text, position):
        position = match.end()
        if match.group("city"):
            has_city = True
        elif district := match.group("district"):
            if district not in districts:
                districts.append(district)
        elif match.group("zip"):
            notes.append(match.group("zip"))
    if position == 0:
        return _COUNTRY.sub("", text)
    rest = text[position:]

    def drop_repeat(match: re.Match[str]) -> str:
        return "" if match.group("district") in districts else match.group().replace("中国", "")

    rest = _COUNTRY.sub("", _REPEATED_PREFIX.sub(drop_repeat, rest))
    return ("天津市" if has_city else "") + "".join(districts) + rest.lstrip()


# --- numbers ------------------------------------------------------------------------------

_CN_DIGITS: Final = {
    **dict.fromkeys("零〇", 0),
    **dict.fromkeys("一壹", 1),
    **dict.fromkeys("二贰两", 2),
    **dict.fromkeys("三叁", 3),
    **dict.fromkeys("四肆", 4),
    **dict.fromkeys("五伍", 5),
    **dict.fromkeys("六陆", 6),
    **dict.fromkeys("七柒", 7),
    **dict.fromkeys("八捌", 8),
    **dict.fromkeys("九玖", 9),
}
_CN_UNITS: Final = {
    **dict.fromkeys("十拾", 10),
    **dict.fromkeys("百佰", 100),
    **dict.fromkeys("千仟", 1000),
}
_CN_CHARS: Final = "".join(_CN_DIGITS) + "".join(_CN_UNITS)
# A numeral run is a number only in front of these markers; 号 is not one before 路/道/桥
# (二号路, 二号桥街道 are names) and 门 only before a room number or the end (八门城镇 is a name).
_CN_NUMBER: Final = re.compile(
    rf"[{_CN_CHARS}]+(?=号(?![路道街巷桥])|单元|栋|幢|座|室|层|楼|期|区"
    rf"|门(?=\s*[\d{_CN_CHARS}]|\s|$))"
)
_CN_DASH: Final = re.compile(r"(?<=\d)一(?=\d)")


def chinese_number(numeral: str) -> str:
    """Digits for a Chinese numeral: positional (三十二 -> 32) or digit-wise (二〇一 -> 201)."""
    if not any(ch in _CN_UNITS for ch in numeral):
        return "".join(str(_CN_DIGITS[ch]) for ch in numeral)
    total = current = 0
    for ch in numeral:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        else:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
    return str(total + current)


def _numerals(text: str) -> str:
    if "一" in text:
        text = _CN_DASH.sub("-", text)  # 7一3一401: the character 一 typed as a dash
    return _CN_NUMBER.sub(lambda m: chinese_number(m.group()), text)


# --- variant markers ----------------------------------------------------------------------

_LABEL: Final = r"[A-Za-z]?\d+[A-Za-z]?|[A-Za-z]"
_BUILDING_VARIANT: Final = re.compile(rf"(?<![A-Za-z\d])({_LABEL})\s*(?:号\s*)?(?:栋|幢|座)")
_BUILDING_AS_FLOOR: Final = re.compile(r"(\d+)\s*楼(?=\s*\d+\s*(?:门|单元))")
_GATE_AFTER_BUILDING: Final = re.compile(r"(号楼\s*)(\d+)\s*门")
_GATE_BEFORE_ROOM: Final = re.compile(r"(\d+)\s*门(?=\s*\d)")
_HOUSEHOLD: Final = re.compile(r"(\d+[A-Za-z]?)\s*户")
_HASH: Final = re.compile(r"(\d+)\s*#")
# 42-3-602号 / 3-907号: 号 after a building-unit-room group is noise; 8-10号 is a house range.
_ROOM_HAO: Final = re.compile(r"(\d+(?:-\d+){2,}|\d+-\d{3,})号(?![楼院])")
_SPACES: Final = re.compile(r"\s+")


def _variants(text: str) -> str:
    # Each rewrite needs a marker character; most texts lack most of them, and a membership
    # test costs far less than running the expression.
    if "栋" in text or "幢" in text or "座" in text:
        text = _BUILDING_VARIANT.sub(r"\1号楼", text)
    if "楼" in text:
        text = _BUILDING_AS_FLOOR.sub(r"\1号楼", text)
    if "门" in text:
        text = _GATE_AFTER_BUILDING.sub(r"\1\2单元", text)
        text = _GATE_BEFORE_ROOM.sub(r"\1单元", text)
    if "户" in text:
        text = _HOUSEHOLD.sub(r"\1室", text)
    if "#" in text:
        text = _HASH.sub(r"\1号", text)
    if "-" in text:
        text = _ROOM_HAO.sub(r"\1", text)
    return text


# --- entry points -------------------------------------------------------------------------


def normalize_with_notes(text: str) -> tuple[str, tuple[str, ...]]:
    """Normalise `text` and return what was removed as noise, for the parser's `notes`."""
    notes: list[str] = []
    text = fold(text)
    text = _drop_bracket_notes(text, notes)
    text = _drop_inline_notes(text, notes)
    text = _SPACES.sub(" ", text).strip()
    text = _collapse_prefix(text, notes)
    text = _variants(_numerals(text))
    return _SPACES.sub(" ", text).strip(), tuple(note for note in notes if note)


def normalize(text: str) -> str:
    """Canonical spelling of a typed address (see the module docstring for what changes)."""
    return normalize_with_notes(text)[0]

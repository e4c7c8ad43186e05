"""Normalisation of typed Tianjin addresses: exact outputs for every rewrite, and the real
strings in tests/data as a regression set (idempotence)."""

from __future__ import annotations

from pathlib import Path

import pytest

from addressbook.geocoding.normalize import chinese_number, fold, normalize, normalize_with_notes

REAL_ADDRESSES = Path(__file__).resolve().parent / "data" / "real_addresses.txt"


def real_addresses() -> list[str]:
    lines = REAL_ADDRESSES.read_text(encoding="utf-8").splitlines()
    return [line for line in lines[1:] if line.strip()]  # line 1 states the provenance


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # width and dashes
        ("Ｓ２３８", "S238"),
        ("１８－３－５０２", "18-3-502"),
        ("18—3—502", "18-3-502"),
        ("W3——602", "W3-602"),
        ("1001~1005", "1001-1005"),
        ("1001～1005", "1001-1005"),
        ("大通花园7一3一401", "大通花园7-3-401"),
        # Chinese numerals that are numbers
        ("胜利街三十二号", "胜利街32号"),
        ("一单元", "1单元"),
        ("二〇一室", "201室"),
        ("十八号楼", "18号楼"),
        ("一号楼二单元", "1号楼2单元"),
        ("和远领居花园一号楼二单元", "和远领居花园1号楼2单元"),
        ("奥林新城3期11号楼一单元501", "奥林新城3期11号楼1单元501"),
        ("棉3创意街区肆号楼一层", "棉3创意街区4号楼1层"),
        ("华都大厦七层", "华都大厦7层"),
        ("欧美小镇四期", "欧美小镇4期"),
        # ... and numerals that are names
        ("十四经路", "十四经路"),
        ("十一经路", "十一经路"),
        ("六纬路", "六纬路"),
        ("六里台", "六里台"),
        ("三里屯", "三里屯"),
        ("一中心", "一中心"),
        ("八里台镇", "八里台镇"),
        ("八门城镇", "八门城镇"),
        ("二号桥街道", "二号桥街道"),
        ("北区二号路", "北区二号路"),
        ("五马路", "五马路"),
        ("第六大道", "第六大道"),
        ("南开三马路", "南开三马路"),
        ("五一阳光", "五一阳光"),
        # variant markers
        ("宝龙城24栋102", "宝龙城24号楼102"),
        ("6幢", "6号楼"),
        ("B座8层", "B号楼8层"),
        ("26号楼2门102", "26号楼2单元102"),
        ("4号楼 1门 4楼 中单", "4号楼 1单元 4楼 中单"),
        ("向荣里2门502室", "向荣里2单元502室"),
        ("泰安道三号院三号楼1门201", "泰安道3号院3号楼1单元201"),
        ("502户", "502室"),
        ("42-3-602号", "42-3-602"),
        ("3-907号", "3-907"),
        ("通庆里8-10号", "通庆里8-10号"),
        ("轻四街456#", "轻四街456号"),
        ("中山门", "中山门"),
        # repeated city and district prefixes
        (
            "天津天津东丽区天津天津东丽区天津东丽区东丽区【常熟南里 11-1-103",
            "天津市东丽区常熟南里 11-1-103",
        ),
        (
            "天津天津武清区天津 天津 武清区 杨村镇五一阳光24-1-1303",
            "天津市武清区杨村镇五一阳光24-1-1303",
        ),
        ("天津天津蓟县中国天津天津蓟县县政府【新城新源66-404】", "天津市蓟县县政府 新城新源66-404"),
        (
            "天津天津滨海新区中国天津天津滨海新区天津大道【迎宾大道亚泰津澜1-1-2503】",
            "天津市滨海新区天津大道 迎宾大道亚泰津澜1-1-2503",
        ),
        ("东丽区天津市特变电工变压器有限公司", "天津市东丽区特变电工变压器有限公司"),
        (
            "天津天津静海区天津天津市静海县静海镇天津市静海区团泊新城",
            "天津市静海区静海县静海镇团泊新城",
        ),
        ("中国 天津市 北辰区 双口镇工业园", "天津市北辰区双口镇工业园"),
        ("天津港保税区海滨八路11号", "天津港保税区海滨八路11号"),
        ("天津河西郁江道城市别墅150号", "天津河西郁江道城市别墅150号"),
        # traditional script; characters outside the BMP (even compatibility ideographs) survive
        ("天津市濱海新區經濟技術開發區三大街金融街", "天津市滨海新区经济技术开发区三大街金融街"),
        ("天津市蓟县\U0002003e村", "天津市蓟县\U0002003e村"),
        ("天津市蓟县\U0002f800庄村", "天津市蓟县\U0002f800庄村"),
        # alternative addresses stay for the parser to choose from
        (
            "天津市和平区滨江道1号金谷大厦1604-1607    /         天津市滨海新区",
            "天津市和平区滨江道1号金谷大厦1604-1607 / 天津市滨海新区",
        ),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected", "notes"),
    [
        (
            "天津天津河西区中国天津天津河西区黑牛城道【新世纪城18-3-502】(新世纪城北门附近)",
            "天津市河西区黑牛城道 新世纪城18-3-502",
            ("新世纪城北门附近",),
        ),
        # a bracket holding the address keeps it, minus the note words
        ("宾水东里【9区71-105  帝城大酒店附近】", "宾水东里 9区71-105 帝城大酒店", ("附近",)),
        ("新开路355号（近华北医院）1-5-502", "新开路355号 1-5-502", ("近华北医院",)),
        (
            "宝平线【河景园小区13-3-501】 (河景园小区（南区）附近)",
            "宝平线 河景园小区13-3-501",
            ("河景园小区 南区 附近",),
        ),
        (
            "天津市南开区西湖道85号（红旗路以西，咸阳路与西湖道交口之西南方位）",
            "天津市南开区西湖道85号",
            ("红旗路以西 咸阳路与西湖道交口之西南方位",),
        ),
        ("河北路附近向阳居2-1602", "河北路 向阳居2-1602", ("附近",)),
        (
            "天津天津北辰区天津北辰区外环内心泽园19-1-1102",
            "天津市北辰区心泽园19-1-1102",
            ("外环内",),
        ),
        (
            "天津天津东丽区天津市东丽区全区天津市东丽区丽新里3-5-602",
            "天津市东丽区丽新里3-5-602",
            ("全区",),
        ),
        (
            "天津天津河西区天津天津河西区000000友谊路街道德望理31-603",
            "天津市河西区友谊路街道德望理31-603",
            ("000000",),
        ),
    ],
)
def test_normalize_with_notes(text: str, expected: str, notes: tuple[str, ...]) -> None:
    assert normalize_with_notes(text) == (expected, notes)


@pytest.mark.parametrize(
    ("numeral", "digits"),
    [
        ("三十二", "32"),
        ("十八", "18"),
        ("十", "10"),
        ("一百零三", "103"),
        ("二〇一", "201"),
        ("五〇二", "502"),
        ("两", "2"),
        ("肆", "4"),
    ],
)
def test_chinese_number(numeral: str, digits: str) -> None:
    assert chinese_number(numeral) == digits


def test_fold_keeps_names_comparable_with_typed_text() -> None:
    assert fold("小（氵甸）村委会") == "小(氵甸)村委会"
    assert fold("ＡＢ１２　栋") == "AB12 栋"


def test_normalize_is_idempotent_on_real_addresses() -> None:
    """A normalised string is a fixed point: the library can store normalised names and
    normalise queries without drifting apart."""
    for text in real_addresses():
        once = normalize(text)
        assert normalize(once) == once, text

"""Parsing real Tianjin addresses into the hierarchy, against a gazetteer built from the 2016
statistical divisions plus a handful of roads, compounds and aliases written here."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from addressbook.geocoding.dictionary import Entry, Gazetteer
from addressbook.geocoding.parsed import Level, ParsedAddress
from addressbook.geocoding.parser import parse
from addressbook.geocoding.words import Kind

# The bundled copy of the shared data set (provenance: addressbook/data/README.md).
DIVISIONS = Path(__file__).resolve().parents[1] / "addressbook" / "data" / "divisions_2016.csv"
REAL_ADDRESSES = Path(__file__).resolve().parent / "data" / "real_addresses.txt"
LEVELS = ("district", "subdistrict", "community", "road", "house_number", "compound")
NUMBERS = ("building", "unit", "room")
ROADS = [
    ("黑牛城道", "河西区"),
    ("卫国道", "河东区"),
    ("卫国道", "东丽区"),
    ("十四经路", "河东区"),
    ("胜利街", "滨海新区"),
    ("新华北路", "宁河区"),
    ("南京路", "和平区"),
    ("南京路", "南开区"),
]
COMPOUNDS = [("新世纪城", "河西区"), ("万科水晶城", "河西区"), ("和远领居花园", "宝坻区")]
ALIASES = {
    "十四津路": ("十四经路", "road"),  # a common misspelling kept as an alias
    "水晶城": ("万科水晶城", "compound"),  # nickname
    "华苑产业区": ("新技术产业园区", "subdistrict"),
    "华苑产业园区": ("新技术产业园区", "subdistrict"),
}


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    with DIVISIONS.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return Gazetteer.build(
        districts=[row["name"] for row in rows if row["level"] == "county"],
        subdistricts=[(row["name"], row["county"]) for row in rows if row["level"] == "town"],
        communities=[
            (row["name"], row["town"], row["county"]) for row in rows if row["level"] == "village"
        ],
        roads=ROADS,
        compounds=COMPOUNDS,
        aliases=ALIASES,
    )


def real_addresses() -> list[str]:
    lines = REAL_ADDRESSES.read_text(encoding="utf-8").splitlines()
    return [line for line in lines[1:] if line.strip()]  # line 1 states the provenance


def elements(parsed: ParsedAddress) -> dict[str, str]:
    return {
        key: value for key in (*LEVELS, *NUMBERS) if (value := getattr(parsed, key)) is not None
    }


# Hand-checked: every hierarchy element (those not listed must be None). Subdistricts and
# communities that the text does not name come from the community found (和进里 -> 大直沽街道).
REAL_CASES = [
    (
        "天津天津河西区中国天津天津河西区黑牛城道【新世纪城18-3-502】(新世纪城北门附近)",
        {
            "district": "河西区",
            "road": "黑牛城道",
            "compound": "新世纪城",
            "building": "18",
            "unit": "3",
            "room": "502",
        },
    ),
    (
        "天津天津河东区天津河东区芳水河畔22-1-502",
        {
            "district": "河东区",
            "subdistrict": "上杭路街道",
            "community": "芳水河畔社区居委会",
            "compound": "芳水河畔",
            "building": "22",
            "unit": "1",
            "room": "502",
        },
    ),
    (
        "天津天津蓟县中国天津天津蓟县兴华大街【58间新区9-2-401】 (兴华大街附近)",
        {
            "district": "蓟州区",
            "road": "兴华大街",
            "compound": "58间新区",
            "building": "9",
            "unit": "2",
            "room": "401",
        },
    ),
    (
        "天津天津武清区中国天津天津武清区泉旺路【杨村镇平安里小区23-601】(平安里小区附近)",
        {
            "district": "武清区",
            "subdistrict": "杨村街道",
            "road": "泉旺路",
            "compound": "平安里小区",
            "building": "23",
            "room": "601",
        },
    ),
    (
        "天津天津河西区中国天津天津河西区曲江道【小海地 蓝江新园5-1-504 】 (小海地附近)",
        {
            "district": "河西区",
            "road": "曲江道",
            "compound": "蓝江新园",
            "building": "5",
            "unit": "1",
            "room": "504",
        },
    ),
    (
        "天津天津南开区中国天津天津南开区苑中路【王顶堤林苑西里26号楼2门102】(林苑西里附近)",
        {
            "district": "南开区",
            "subdistrict": "王顶堤街道",
            "community": "林苑西里社区居委会",
            "road": "苑中路",
            "compound": "林苑西里",
            "building": "26",
            "unit": "2",
            "room": "102",
        },
    ),
    (
        "天津天津河西区中国天津天津河西区宾友道【向荣里2门502室】 (宾友大厦附近)",
        {"district": "河西区", "road": "宾友道", "compound": "向荣里", "unit": "2", "room": "502"},
    ),
    (
        "天津天津红桥区中国天津天津红桥区芥园道【明华里】 (明华里附近)",
        {
            "district": "红桥区",
            "subdistrict": "铃铛阁街道",
            "community": "明华里社区居委会",
            "road": "芥园道",
            "compound": "明华里",
        },
    ),
    (
        "天津天津和平区中国天津天津和平区保安大街【长寿公寓1-4-310】(长寿公寓附近)",
        {
            "district": "和平区",
            "road": "保安大街",
            "compound": "长寿公寓",
            "building": "1",
            "unit": "4",
            "room": "310",
        },
    ),
    (
        "天津天津宁河区天津天津市宁河县芦台镇芦台农场场部新华北路奥林新城3期11号楼一单元501",
        {
            "district": "宁河区",
            "subdistrict": "芦台镇",
            "road": "新华北路",
            "compound": "奥林新城",
            "building": "11",
            "unit": "1",
            "room": "501",
        },
    ),
    (
        "天津天津津南区中国天津天津津南区咸水沽镇【金才园  12-2301】 (咸水沽镇附近)",
        {
            "district": "津南区",
            "subdistrict": "咸水沽镇",
            "compound": "金才园",
            "building": "12",
            "room": "2301",
        },
    ),
    (
        "天津天津西青区中国天津天津西青区外环线【中北镇 溪清苑23号楼2-11-3号】"
        " (中北镇溪清苑社区门诊附近)",
        {
            "district": "西青区",
            "subdistrict": "中北镇",
            "community": "溪清苑社区",
            "road": "外环线",
            "compound": "溪清苑",
            "building": "23",
            "unit": "2",
            "room": "11-3",
        },
    ),
    (
        "天津天津河东区中国天津天津河东区河东区【上杭路 第六大道 大洋嘉园37号楼2门502】"
        " (大洋嘉园附近)",
        {
            "district": "河东区",
            "subdistrict": "上杭路街道",
            "community": "大洋嘉园社区居委会",
            "road": "上杭路",
            "compound": "大洋嘉园",
            "building": "37",
            "unit": "2",
            "room": "502",
        },
    ),
    (
        "天津天津河东区天津河东区全境新开路英禧里1号楼1-401",
        {
            "district": "河东区",
            "road": "新开路",
            "compound": "英禧里",
            "building": "1",
            "unit": "1",
            "room": "401",
        },
    ),
    (
        "天津天津东丽区天津天津市东丽区华明街道东丽华明镇弘泽大街与杨北公路交口华润橡树湾芳润轩1号楼1204",
        {
            "district": "东丽区",
            "subdistrict": "华明街道",
            "road": "弘泽大街",
            "compound": "华润橡树湾芳润轩",
            "building": "1",
            "room": "1204",
        },
    ),
    (
        "天津天津东丽区天津天津东丽区空港经济区东七道津悦华庭7-1-103",
        {
            "district": "东丽区",
            "subdistrict": "天津空港经济区",
            "road": "东七道",
            "compound": "津悦华庭",
            "building": "7",
            "unit": "1",
            "room": "103",
        },
    ),
    (
        "天津天津滨海新区中国天津天津滨海新区胜利街【胜利街651号有谊商厦】 (国美电器附近)",
        {"district": "滨海新区", "road": "胜利街", "house_number": "651", "compound": "有谊商厦"},
    ),
    (
        "天津天津红桥区中国天津天津红桥区红旗北路【益鑫里小区 6-2-402】(益鑫里小区附近)",
        {
            "district": "红桥区",
            "road": "红旗北路",
            "compound": "益鑫里小区",
            "building": "6",
            "unit": "2",
            "room": "402",
        },
    ),
    (
        "天津天津滨海新区中国天津天津滨海新区天津大道【迎宾大道亚泰津澜1-1-2503】(亚泰津澜附近)",
        {
            "district": "滨海新区",
            "road": "天津大道",
            "compound": "亚泰津澜",
            "building": "1",
            "unit": "1",
            "room": "2503",
        },
    ),
    (
        "天津天津河东区中国天津天津河东区十四经路【丰盈花园公寓11-3-302】 (丰盈花园公寓附近)",
        {
            "district": "河东区",
            "road": "十四经路",
            "compound": "丰盈花园公寓",
            "building": "11",
            "unit": "3",
            "room": "302",
        },
    ),
    (
        "天津天津滨海新区天津天津市滨海新区开发区融科瀚棠泰怡园6号楼2单元101室",
        {
            "district": "滨海新区",
            "subdistrict": "开发区",
            "compound": "融科瀚棠泰怡园",
            "building": "6",
            "unit": "2",
            "room": "101",
        },
    ),
    (
        "天津天津河东区中国天津天津河东区津塘路【和进里20-1-210】 (和进里附近)",
        {
            "district": "河东区",
            "subdistrict": "大直沽街道",
            "community": "和进里社区居委会",
            "road": "津塘路",
            "compound": "和进里",
            "building": "20",
            "unit": "1",
            "room": "210",
        },
    ),
    (
        "天津天津滨海新区天津塘沽区全境滨海生态城旅游区宝龙城24栋102",
        {"district": "滨海新区", "compound": "宝龙城", "building": "24", "room": "102"},
    ),
    (
        "天津天津津南区中国天津天津津南区建国大街【咸水沽镇 沽上江南11-906】(沽上江南附近)",
        {
            "district": "津南区",
            "subdistrict": "咸水沽镇",
            "road": "建国大街",
            "compound": "沽上江南",
            "building": "11",
            "room": "906",
        },
    ),
    (
        "天津天津南开区中国天津天津南开区士英路【宁乐里小区19-401】(宁乐里小区附近)",
        {
            "district": "南开区",
            "road": "士英路",
            "compound": "宁乐里小区",
            "building": "19",
            "room": "401",
        },
    ),
    (
        "天津天津南开区天津天津市南开区 天津市 南开区 天拖南 保山道 昌宁北里 4号楼 1门 4楼 中单",
        {
            "district": "南开区",
            "road": "保山道",
            "compound": "昌宁北里",
            "building": "4",
            "unit": "1",
        },
    ),
    (
        "天津天津北辰区中国天津天津北辰区环瑞北路【秋瑞家园  7号楼1门603 】 (秋瑞家园附近)",
        {
            "district": "北辰区",
            "road": "环瑞北路",
            "compound": "秋瑞家园",
            "building": "7",
            "unit": "1",
            "room": "603",
        },
    ),
    (
        "天津天津宝坻区天津天津市宝坻区海滨街道宝坻区和远领居花园一号楼二单元",
        {
            "district": "宝坻区",
            "subdistrict": "海滨街道",
            "compound": "和远领居花园",
            "building": "1",
            "unit": "2",
        },
    ),
    (
        "天津天津静海县中国天津天津静海县中旺镇【搬高庄村】 (中旺镇附近)",
        {"district": "静海区", "subdistrict": "中旺镇", "community": "搬高庄村"},
    ),
    (
        "天津天津宝坻区中国天津天津宝坻区宝平线【河景园小区13-3-501】 (河景园小区（南区）附近)",
        {
            "district": "宝坻区",
            "road": "宝平线",
            "compound": "河景园小区",
            "building": "13",
            "unit": "3",
            "room": "501",
        },
    ),
    (
        "天津天津河西区天津天津河西区000000友谊路街道德望理31-603",
        {
            "district": "河西区",
            "subdistrict": "友谊路街道",
            "compound": "德望理",
            "building": "31",
            "room": "603",
        },
    ),
    (
        "天津天津武清区天津天津武清区梅厂镇灰锅口村",
        {"district": "武清区", "subdistrict": "梅厂镇", "community": "灰锅口村委会"},
    ),
    (
        "天津天津静海县天津天津市静海县静海镇天津市静海县静海镇胜利大街31号",
        {"district": "静海区", "subdistrict": "静海镇", "road": "胜利大街", "house_number": "31"},
    ),
    (
        "天津天津西青区中国天津天津西青区津港线【大寺新家园 】(大寺新家园附近)",
        {"district": "西青区", "road": "津港线", "compound": "大寺新家园"},
    ),
    (
        "天津天津津南区中国天津天津津南区咸水沽镇【左岸明帝1-3-101 】 (咸水沽镇附近)",
        {
            "district": "津南区",
            "subdistrict": "咸水沽镇",
            "compound": "左岸明帝",
            "building": "1",
            "unit": "3",
            "room": "101",
        },
    ),
    (
        "天津天津武清区中国天津天津武清区泉达路【翠亨花园南里9-2-101】 (翠亨花园南里附近)",
        {
            "district": "武清区",
            "road": "泉达路",
            "compound": "翠亨花园南里",
            "building": "9",
            "unit": "2",
            "room": "101",
        },
    ),
    (
        "天津天津宝坻区天津宝坻区其它地区天津市宝坻区大唐庄镇运家庄村",
        {"district": "宝坻区", "subdistrict": "大唐庄镇", "community": "运家庄村委会"},
    ),
    (
        "天津天津静海县中国天津天津静海县津文线【顺纺楼8-1-501】 (静海县交通局附近)",
        {
            "district": "静海区",
            "road": "津文线",
            "compound": "顺纺楼",
            "building": "8",
            "unit": "1",
            "room": "501",
        },
    ),
    (
        "天津天津武清区天津武清区杨村镇、下朱庄内天津市武清区杨村镇颐安花园西区4号5门102",
        {
            "district": "武清区",
            "subdistrict": "杨村街道",
            "compound": "颐安花园西区",
            "building": "4",
            "unit": "5",
            "room": "102",
        },
    ),
    (
        "天津天津津南区中国天津天津津南区体育场北路【咸水沽光明北里2-5-601】(光明北里附近)",
        {
            "district": "津南区",
            "subdistrict": "咸水沽镇",
            "road": "体育场北路",
            "compound": "光明北里",
            "building": "2",
            "unit": "5",
            "room": "601",
        },
    ),
    (
        "天津天津武清区中国天津天津武清区Ｓ２３８【翡翠半岛1-1-403  】(翡翠半岛附近)",
        {
            "district": "武清区",
            "road": "S238",
            "compound": "翡翠半岛",
            "building": "1",
            "unit": "1",
            "room": "403",
        },
    ),
    (
        "天津天津南开区中国天津天津南开区密云一支路【燕宇小区42-3-602号】 (燕宇小区附近)",
        {
            "district": "南开区",
            "road": "密云一支路",
            "compound": "燕宇小区",
            "building": "42",
            "unit": "3",
            "room": "602",
        },
    ),
    (
        "天津天津武清区天津天津武清区白古屯乡小赵庄村",
        {"district": "武清区", "subdistrict": "白古屯镇", "community": "小赵庄村委会"},
    ),
    (
        "天津天津宝坻区中国天津天津宝坻区开元路【宝平景苑57-301】 (宝平景苑东区附近)",
        {
            "district": "宝坻区",
            "road": "开元路",
            "compound": "宝平景苑",
            "building": "57",
            "room": "301",
        },
    ),
    (
        "天津天津河东区天津天津市河东区春华街道天津市河东区育才路4号内2号楼1-501",
        {
            "district": "河东区",
            "subdistrict": "春华街道",
            "road": "育才路",
            "house_number": "4",
            "building": "2",
            "unit": "1",
            "room": "501",
        },
    ),
    (
        "天津天津河西区中国天津天津河西区黑牛城道【柳江里3号楼11门201】 (黑牛城长途汽车站附近)",
        {
            "district": "河西区",
            "subdistrict": "友谊路街道",
            "community": "柳江里社区居委会",
            "road": "黑牛城道",
            "compound": "柳江里",
            "building": "3",
            "unit": "11",
            "room": "201",
        },
    ),
    (
        "天津天津西青区中国天津天津西青区御河道【杨柳青英伦名苑雅庭苑28-5-202】 (英伦名苑附近)",
        {
            "district": "西青区",
            "subdistrict": "杨柳青镇",
            "community": "英伦名苑社区居委会",
            "road": "御河道",
            "compound": "英伦名苑雅庭苑",
            "building": "28",
            "unit": "5",
            "room": "202",
        },
    ),
    (
        "天津天津东丽区中国天津天津东丽区景然路【万科新里程16-2-804】(万科新里程家园附近)",
        {
            "district": "东丽区",
            "road": "景然路",
            "compound": "万科新里程",
            "building": "16",
            "unit": "2",
            "room": "804",
        },
    ),
    (
        "天津天津西青区中国天津天津西青区梨双路【梅江康城15-4-301】 (梅江康城附近)",
        {
            "district": "西青区",
            "road": "梨双路",
            "compound": "梅江康城",
            "building": "15",
            "unit": "4",
            "room": "301",
        },
    ),
    (
        "天津天津滨海新区天津天津市塘沽区中心北路与京山道交口毓园6栋",
        {
            "district": "滨海新区",
            "subdistrict": "杭州道街道",
            "community": "毓园社区居委会",
            "road": "中心北路",
            "compound": "毓园",
            "building": "6",
        },
    ),
    (
        "天津天津滨海新区天津塘沽区全境莱茵春天48栋5门301室",
        {
            "district": "滨海新区",
            "compound": "莱茵春天",
            "building": "48",
            "unit": "5",
            "room": "301",
        },
    ),
    (
        "天津天津西青区中国天津天津西青区泰华路【辛口镇  泰裕园 3-2】 (泰裕园附近)",
        {
            "district": "西青区",
            "subdistrict": "辛口镇",
            "road": "泰华路",
            "compound": "泰裕园",
            "building": "3",
            "unit": "2",
        },
    ),
    (
        "天津天津河东区中国天津天津东丽区卫国道【康泽雅园3-907号】"
        " (家世界大型综合超市卫国道店附近)",
        {
            "district": "东丽区",
            "road": "卫国道",
            "compound": "康泽雅园",
            "building": "3",
            "room": "907",
        },
    ),
    (
        "天津天津河东区中国天津天津河东区六纬路【六纬路1号院高层2-508】 (苏宁电器六纬路店附近)",
        {
            "district": "河东区",
            "road": "六纬路",
            "house_number": "1",
            "building": "2",
            "room": "508",
        },
    ),
    (
        "天津天津静海区天津天津静海区团泊镇团泊湖庭院香湖院23号",
        {
            "district": "静海区",
            "subdistrict": "团泊镇",
            "compound": "团泊湖庭院香湖院",
            "building": "23",
        },
    ),
    (
        "天津天津武清区杨村街道盛世郦园11号楼1门2903",
        {
            "district": "武清区",
            "subdistrict": "杨村街道",
            "compound": "盛世郦园",
            "building": "11",
            "unit": "1",
            "room": "2903",
        },
    ),
    ("天津天津蓟县天津天津蓟县下窝头", {"district": "蓟州区", "subdistrict": "下窝头镇"}),
    (
        "天津天津河西区中国天津天津河西区宾水东里【9区71-105  帝城大酒店附近】"
        " (清真又一顺火锅城附近)",
        {
            "district": "河西区",
            "subdistrict": "天塔街道",
            "community": "宾水东里社区居委会",
            "compound": "宾水东里",
            "building": "71",
            "room": "105",
        },
    ),
    (
        "天津天津武清区天津 天津 武清区 杨村镇五一阳光24-1-1303",
        {
            "district": "武清区",
            "subdistrict": "杨村街道",
            "compound": "五一阳光",
            "building": "24",
            "unit": "1",
            "room": "1303",
        },
    ),
    (
        "天津天津静海区天津天津市静海县静海镇天津市静海区团泊新城健康大道西侧洪湖路北侧依云郡14号楼1门1001",
        {
            "district": "静海区",
            "subdistrict": "静海镇",
            "road": "健康大道",
            "compound": "依云郡",
            "building": "14",
            "unit": "1",
            "room": "1001",
        },
    ),
    (
        "天津天津北辰区中国天津天津北辰区普济河东道【5号楼5门401】 (安悦园附近)",
        {"district": "北辰区", "road": "普济河东道", "building": "5", "unit": "5", "room": "401"},
    ),
    (
        "天津天津河东区天津天津河东区大通花园7一3一401",
        {"district": "河东区", "compound": "大通花园", "building": "7", "unit": "3", "room": "401"},
    ),
    (
        "天津天津河东区天津天津河东区新开路355号（近华北医院）1-5-502",
        {
            "district": "河东区",
            "road": "新开路",
            "house_number": "355",
            "building": "1",
            "unit": "5",
            "room": "502",
        },
    ),
    (
        "天津天津蓟县中国天津天津蓟县刘相营村【穿芳峪乡】 (刘相营村附近)",
        {"district": "蓟州区", "subdistrict": "穿芳峪镇", "community": "刘相营村委会"},
    ),
    (
        "天津天津东丽区天津天津东丽区天津东丽区东丽区【常熟南里 11-1-103",
        {
            "district": "东丽区",
            "compound": "常熟南里",
            "building": "11",
            "unit": "1",
            "room": "103",
        },
    ),
    (
        "天津天津津南区天津天津市津南区海河教育园区融创中央学府29号楼1504",
        {
            "district": "津南区",
            "subdistrict": "海河教育园区",
            "compound": "融创中央学府",
            "building": "29",
            "room": "1504",
        },
    ),
    (
        "天津天津河东区中国天津天津河东区十四经路【十四津路林兴里1号楼3门401 】"
        " (东瀛海鲜十四经路店附近)",
        {
            "district": "河东区",
            "road": "十四经路",
            "compound": "林兴里",
            "building": "1",
            "unit": "3",
            "room": "401",
        },
    ),
    (
        "天津空港经济区环河北路80号空港商务园东区",
        {
            "district": "东丽区",
            "subdistrict": "天津空港经济区",
            "road": "环河北路",
            "house_number": "80",
            "compound": "空港商务园东区",
        },
    ),
    (
        "天津保税区天保大道188号开利大厦",
        {
            "district": "滨海新区",
            "subdistrict": "保税区",
            "road": "天保大道",
            "house_number": "188",
            "compound": "开利大厦",
        },
    ),
    ("天津市塘沽区", {"district": "滨海新区"}),
    (
        "天津市河西区马场道59号增1号平安大厦B座8层",
        {
            "district": "河西区",
            "road": "马场道",
            "house_number": "59增1",
            "compound": "平安大厦",
            "building": "B",
        },
    ),
    (
        "天津市经济技术开发区第四大街5号A座704-707",
        {
            "district": "滨海新区",
            "subdistrict": "开发区",
            "road": "第四大街",
            "house_number": "5",
            "building": "A",
            "room": "704-707",
        },
    ),
    (
        "上海市天津路155号名人商业大厦12层",
        {"road": "天津路", "house_number": "155", "compound": "名人商业大厦"},
    ),
    (
        "天津市南开区红旗南路263号尚8文化创意产业园A座707室",
        {
            "district": "南开区",
            "road": "红旗南路",
            "house_number": "263",
            "compound": "尚8文化创意产业园",
            "building": "A",
            "room": "707",
        },
    ),
    ("中新天津生态城", {"district": "滨海新区", "subdistrict": "中新天津生态城"}),
    (
        "天津市南开区黄河道与广开四马路交口津通格调大厦10层1001-1005",
        {"district": "南开区", "road": "黄河道", "compound": "津通格调大厦", "room": "1001-1005"},
    ),
    (
        "天津市河西区围堤道53丽晶大厦",
        {"district": "河西区", "road": "围堤道", "house_number": "53", "compound": "丽晶大厦"},
    ),
    (
        "天津市和平区泰安道三号院三号楼1门201",
        {
            "district": "和平区",
            "road": "泰安道",
            "house_number": "3",
            "building": "3",
            "unit": "1",
            "room": "201",
        },
    ),
    (
        "天津空港经济区融和广场6号2门702",
        {
            "district": "东丽区",
            "subdistrict": "天津空港经济区",
            "compound": "融和广场",
            "building": "6",
            "unit": "2",
            "room": "702",
        },
    ),
    (
        "天津河西区友谊路友谊大厦A座1005",
        {
            "district": "河西区",
            "road": "友谊路",
            "compound": "友谊大厦",
            "building": "A",
            "room": "1005",
        },
    ),
    ("天津市滨海新区塘沽开发区", {"district": "滨海新区", "subdistrict": "开发区"}),
    (
        "天津开发区信环西路19号1号楼1602-4室",
        {
            "district": "滨海新区",
            "subdistrict": "开发区",
            "road": "信环西路",
            "house_number": "19",
            "building": "1",
            "room": "1602-4",
        },
    ),
    (
        "天津市和平区滨江道1号金谷大厦1604-1607    /"
        "         天津市滨海新区开发区第三大街金融街E6B508",
        {
            "district": "和平区",
            "road": "滨江道",
            "house_number": "1",
            "compound": "金谷大厦",
            "room": "1604-1607",
        },
    ),
    (
        "天津市河西区宾水道增9号 环渤海发展中心",
        {
            "district": "河西区",
            "road": "宾水道",
            "house_number": "增9",
            "compound": "环渤海发展中心",
        },
    ),
    (
        "和平区南京路219号天津中心22层2201",
        {
            "district": "和平区",
            "road": "南京路",
            "house_number": "219",
            "compound": "天津中心",
            "room": "2201",
        },
    ),
    (
        "天津市南开区长江道与南丰路交口博朗园1号楼1门1401-1407（宝利国际广场14层）",
        {
            "district": "南开区",
            "road": "长江道",
            "compound": "博朗园",
            "building": "1",
            "unit": "1",
            "room": "1401-1407",
        },
    ),
    (
        "津河西区友谊路41号中乒公寓3-1-102 （天津珠宝街对面）",
        {
            "district": "河西区",
            "road": "友谊路",
            "house_number": "41",
            "compound": "中乒公寓",
            "building": "3",
            "unit": "1",
            "room": "102",
        },
    ),
    (
        "天津市河西区友谊路与黑牛城道交口友谊大厦B座2门8楼",
        {
            "district": "河西区",
            "road": "友谊路",
            "compound": "友谊大厦",
            "building": "B",
            "unit": "2",
        },
    ),
    (
        "天津市南开区白堤路馨达园6号楼1门402室",
        {
            "district": "南开区",
            "road": "白堤路",
            "compound": "馨达园",
            "building": "6",
            "unit": "1",
            "room": "402",
        },
    ),
    (
        "天津华苑产业区海泰创新六路华鼎新区1号21号楼3门",
        {
            "district": "西青区",
            "subdistrict": "新技术产业园区",
            "road": "海泰创新六路",
            "house_number": "1",
            "compound": "华鼎新区",
            "building": "21",
            "unit": "3",
        },
    ),
    (
        "天津西青区兴华七支路一号/天津空港开发区航天路100号",
        {"district": "西青区", "road": "兴华七支路", "house_number": "1"},
    ),
]


@pytest.mark.parametrize(("text", "expected"), REAL_CASES)
def test_real_addresses(text: str, expected: dict[str, str], gazetteer: Gazetteer) -> None:
    assert elements(parse(text, gazetteer)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the structural patterns on their own, after a known compound
        ("天津市河西区新世纪城18-3-502", {"building": "18", "unit": "3", "room": "502"}),
        ("天津市河西区新世纪城22-1-502", {"building": "22", "unit": "1", "room": "502"}),
        ("天津市河西区新世纪城23-601", {"building": "23", "room": "601"}),
        ("天津市河西区新世纪城12-2301", {"building": "12", "room": "2301"}),
        ("天津市河西区新世纪城9-2-401", {"building": "9", "unit": "2", "room": "401"}),
        ("天津市河西区新世纪城3-2", {"building": "3", "unit": "2"}),
        ("天津市河西区新世纪城26号楼2门102", {"building": "26", "unit": "2", "room": "102"}),
        ("天津市河西区新世纪城11号楼1-401", {"building": "11", "unit": "1", "room": "401"}),
        ("天津市河西区新世纪城3期11号楼一单元501", {"building": "11", "unit": "1", "room": "501"}),
        ("天津市河西区新世纪城1号楼1204", {"building": "1", "room": "1204"}),
        ("天津市河西区新世纪城7号楼1门603", {"building": "7", "unit": "1", "room": "603"}),
        ("天津市河西区新世纪城4号楼 1门 4楼 中单", {"building": "4", "unit": "1"}),
        ("天津市河西区新世纪城2门502室", {"unit": "2", "room": "502"}),
        ("天津市河西区新世纪城24栋102", {"building": "24", "room": "102"}),
        ("天津市河西区新世纪城五号楼二单元二〇一室", {"building": "5", "unit": "2", "room": "201"}),
        ("天津市河西区新世纪城8号楼3单元502户", {"building": "8", "unit": "3", "room": "502"}),
        ("天津市河西区新世纪城A座1001-1005", {"building": "A", "room": "1001-1005"}),
    ],
)
def test_building_unit_room(text: str, expected: dict[str, str], gazetteer: Gazetteer) -> None:
    parsed = parse(text, gazetteer)
    assert {key: value for key in NUMBERS if (value := getattr(parsed, key))} == expected
    assert (parsed.district, parsed.compound) == ("河西区", "新世纪城")


def test_floor_and_side_are_notes(gazetteer: Gazetteer) -> None:
    parsed = parse("天津市南开区天拖南 保山道 昌宁北里 4号楼 1门 4楼 中单", gazetteer)
    assert parsed.notes == ("4楼", "中单")
    assert parsed.unparsed == "天拖南"
    assert parsed.level is Level.UNIT


def test_intersection_keeps_the_first_road(gazetteer: Gazetteer) -> None:
    parsed = parse("天津市东丽区华明街道弘泽大街与杨北公路交口华润橡树湾1号楼1204", gazetteer)
    assert (parsed.road, parsed.compound) == ("弘泽大街", "华润橡树湾")
    assert "与杨北公路交口" in parsed.notes


def test_old_and_short_district_names(gazetteer: Gazetteer) -> None:
    cases = {
        "天津蓟县中昌南大道2号": "蓟州区",
        "天津市宁河县经济开发区五纬路22号": "宁河区",
        "天津天津静海县梁头镇": "静海区",
        "天津市大港区新天地大厦302室": "滨海新区",
        "天津市汉沽区旅游区凤凰苑17-1-602": "滨海新区",
        "天津河西郁江道城市别墅150号": "河西区",
        "天津西青李七庄四新高科技产业园6号": "西青区",
        "天津滨海新区三大街": "滨海新区",
    }
    assert {text: parse(text, gazetteer).district for text in cases} == cases


def test_short_names_inside_road_names_are_not_districts(gazetteer: Gazetteer) -> None:
    parsed = parse("天津市滨海新区河北路向阳居2-1602", gazetteer)
    assert (parsed.district, parsed.road, parsed.compound) == ("滨海新区", "河北路", "向阳居")
    parsed = parse("天津市南开区长江道与南开三马路交口博朗园2-1607", gazetteer)
    assert (parsed.district, parsed.road, parsed.compound) == ("南开区", "长江道", "博朗园")
    assert parse("天津市红桥区西青道千禧园23-3-402", gazetteer).road == "西青道"


def test_dictionary_takes_precedence_over_suffix_rules(gazetteer: Gazetteer) -> None:
    parsed = parse("天津市河西区友谊南路万科水晶城皓石园19-1-506", gazetteer)
    assert parsed.compound == "万科水晶城"
    assert "皓石园" in parsed.notes
    parsed = parse("天津市宁河区芦台镇场部新华北路奥林新城11号楼", gazetteer)
    assert (parsed.road, parsed.compound, parsed.unparsed) == ("新华北路", "奥林新城", "场部")


def test_aliases_give_canonical_names(gazetteer: Gazetteer) -> None:
    assert parse("天津市河东区十四津路林兴里1号楼", gazetteer).road == "十四经路"
    assert parse("天津市河西区水晶城19-1-506", gazetteer).compound == "万科水晶城"


def test_a_name_is_recognised_as_soon_as_it_is_added(gazetteer: Gazetteer) -> None:
    text = "天津市津南区左岸明帝"
    before = parse(text, gazetteer)
    assert (before.compound, before.unparsed) == (None, "左岸明帝")
    extended = gazetteer.extended(compounds=[("左岸明帝", "津南区")])
    assert parse(text, extended).compound == "左岸明帝"
    assert parse(text, gazetteer).compound is None  # the original is unchanged
    assert len(extended) > len(gazetteer)


def test_characters_outside_the_bmp_survive(gazetteer: Gazetteer) -> None:
    village = "\U0002003e庄村委会"
    extended = gazetteer.extended(communities=[(village, "梅厂镇", "武清区")])
    parsed = parse("天津市武清区梅厂镇\U0002003e庄村", extended)
    assert (parsed.subdistrict, parsed.community) == ("梅厂镇", village)


def test_parents_are_inferred_from_children(gazetteer: Gazetteer) -> None:
    parsed = parse("天津空港经济区环河北路80号", gazetteer)
    assert (parsed.district, parsed.subdistrict) == ("东丽区", "天津空港经济区")
    parsed = parse("天津市和平区南京路75号", gazetteer)
    assert parsed.district == "和平区"  # 南京路 exists in two districts: the text decides
    assert parse("天津市南京路75号", gazetteer).district is None


def test_a_later_district_replaces_the_area_picker(gazetteer: Gazetteer) -> None:
    parsed = parse("天津天津河东区中国天津天津东丽区卫国道【康泽雅园3-907号】", gazetteer)
    assert (parsed.district, parsed.road) == ("东丽区", "卫国道")
    assert "河东区" in parsed.notes


def test_other_cities_are_not_tianjin(gazetteer: Gazetteer) -> None:
    parsed = parse("上海市天津路155号名人商业大厦12层", gazetteer)
    assert (parsed.city, parsed.district, parsed.road) == ("上海市", None, "天津路")
    parsed = parse("北京市朝阳区/ 天津市华苑产业区海泰华科", gazetteer)
    assert (parsed.city, parsed.district) == ("天津市", "西青区")
    assert "北京市朝阳区" in parsed.notes


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("天津市河西区", Level.DISTRICT),
        ("天津天津蓟县杨津庄镇", Level.SUBDISTRICT),
        ("天津天津武清区梅厂镇灰锅口村", Level.COMMUNITY),
        ("天津市和平区睦南道", Level.ROAD),
        ("天津市河西区黑牛城道268号", Level.HOUSE_NUMBER),
        ("天津市和平区南京路129号万科世贸广场", Level.COMPOUND),
        ("天津市河西区新世纪城6号楼", Level.BUILDING),
        ("天津市河西区新世纪城6号楼2单元", Level.UNIT),
        ("天津市河西区新世纪城6-2-301", Level.ROOM),
        ("天津学子悠悠网络科技有限公司", None),
    ],
)
def test_level(text: str, level: Level | None, gazetteer: Gazetteer) -> None:
    assert parse(text, gazetteer).level is level


def test_gazetteer_lookup_and_longest_match(gazetteer: Gazetteer) -> None:
    assert Entry(Kind.DISTRICT, "蓟州区") in gazetteer.lookup("蓟县")
    assert Entry(Kind.DISTRICT, "滨海新区", weak=True) in gazetteer.lookup("滨海")
    assert {e.name for e in gazetteer.lookup("杨村镇")} == {"杨村街道"}  # 2016: a 街道 now
    lengths = [length for length, _ in gazetteer.matches_at("天津市滨海新区", 3)]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] == 4


# A compound word or building group in the normalised text: the string clearly names one.
BUILDING_GROUP = re.compile(r"\d+号楼|\d+-\d+-\d+")
COMPOUND_BEFORE_BUILDING = re.compile(
    r"(?:小区|花园|家园|公寓|大厦|广场|里|苑|园)\s?(?:\d+-\d+|\d+号楼)"
)


def test_all_real_addresses(gazetteer: Gazetteer) -> None:
    """Every real string parses; the district is found for at least 95 % of them (the rest are
    company names, other cities or bare "天津"); a building is found for at least 98 % of the
    strings with a building group (号楼 or a-b-c), and a compound for every string that names
    one right before its building numbers."""
    results = [parse(text, gazetteer) for text in real_addresses()]
    assert len(results) == 486
    with_district = sum(1 for r in results if r.district)
    assert with_district / len(results) >= 0.95
    with_group = [r for r in results if BUILDING_GROUP.search(r.normalized)]
    assert len(with_group) >= 120
    assert sum(1 for r in with_group if r.building) / len(with_group) >= 0.98
    with_compound = [r for r in results if COMPOUND_BEFORE_BUILDING.search(r.normalized)]
    assert len(with_compound) >= 90
    assert all(r.compound for r in with_compound), [
        r.normalized for r in with_compound if not r.compound
    ]


def test_parse_is_pure(gazetteer: Gazetteer) -> None:
    text = "天津天津河西区中国天津天津河西区黑牛城道【新世纪城18-3-502】(新世纪城北门附近)"
    first, second = parse(text, gazetteer), parse(text, gazetteer)
    assert first == second
    assert first.normalized == "天津市河西区黑牛城道 新世纪城18-3-502"
    assert first.notes == ("新世纪城北门附近",)
    assert first.city == "天津市"

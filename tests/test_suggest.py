"""Suggestions while typing: Chinese prefixes, pinyin, initials, one typo, numbers, scope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from addressbook.geocoding.names import pinyin
from addressbook.geocoding.suggest import suggest
from geo.db import session_scope
from tests.address_library import ROOMS, Stored, fresh_names, load, pick, plans, statements


@pytest.fixture(scope="module")
def room(database_url: str) -> Iterator[Stored]:
    load()
    with session_scope() as session:
        # A compound of at least five characters, for the trigram typo test.
        (found,) = pick(session, ROOMS + " AND length(a.compound) >= 5")
    with fresh_names():
        yield found


def labels(q: str, **kwargs: object) -> list[str]:
    with session_scope() as session:
        return [s.label for s in suggest(session, q, **kwargs)]  # type: ignore[arg-type]


def kinds(q: str, **kwargs: object) -> dict[str, str]:
    with session_scope() as session:
        return {s.label: s.match for s in suggest(session, q, **kwargs)}  # type: ignore[arg-type]


def test_chinese_prefix(room: Stored) -> None:
    assert room.road is not None
    found = kinds(room.road[:2], limit=50)
    assert found.get(room.district + room.road) == "prefix"


def test_district_prefix_narrows_to_the_district(room: Stored) -> None:
    assert room.road is not None
    found = labels(f"天津市{room.district}{room.road[:2]}", limit=50)
    assert room.district + room.road in found
    assert all(label.startswith(room.district) for label in found)


def test_full_pinyin_partial_pinyin_and_initials(room: Stored) -> None:
    assert room.road is not None
    full, initials = pinyin(room.road)
    target = room.district + room.road
    assert kinds(full, limit=50).get(target) == "pinyin"
    assert kinds(full[:-1], limit=50).get(target) == "pinyin"
    assert kinds(initials, limit=50, area=room.district_code).get(target) == "initials"
    assert kinds(full.upper(), limit=50).get(target) == "pinyin"


def test_one_pinyin_typo(room: Stored) -> None:
    assert room.compound is not None
    full, _ = pinyin(room.compound)
    swapped = full[0] + full[2] + full[1] + full[3:8]
    replaced = full[:2] + ("z" if full[2] != "z" else "q") + full[3:8]
    target = room.district + room.compound
    assert kinds(swapped, limit=50, area=room.district_code).get(target) == "typo"
    assert kinds(replaced, limit=50, area=room.district_code).get(target) == "typo"


def test_a_homophone_typo(room: Stored) -> None:
    """Pinyin input methods offer the wrong character of the right sound: 湘江 typed 相江."""
    assert room.road is not None
    homophones = dict(
        zip(
            "湘江南北东西平山中道路街里胡同大花园新村",
            "相将难背冬希评珊忠到露接理湖铜达华圆心存",
            strict=True,
        )
    )
    first = next(i for i, ch in enumerate(room.road) if ch in homophones)
    typed = room.road[:first] + homophones[room.road[first]] + room.road[first + 1 :]
    assert pinyin(typed) == pinyin(room.road)
    found = kinds(typed, limit=50, area=room.district_code)
    assert found.get(room.district + room.road) == "homophone"


def test_a_substituted_character_in_a_longer_name(room: Stored) -> None:
    assert room.compound is not None
    typed = room.compound[:2] + "鑫" + room.compound[3:]
    found = kinds(typed, limit=50, area=room.district_code)
    assert found.get(room.district + room.compound) == "typo"


def test_house_numbers_once_the_road_is_complete(room: Stored) -> None:
    assert room.road is not None and room.house_number is not None
    number = room.house_number.removesuffix("号")
    found = labels(f"{room.district}{room.road}{number[0]}", limit=50)
    assert room.district + room.road + room.house_number in found
    exact = labels(f"{room.district}{room.road}{number}", limit=5)
    assert exact[0] == room.district + room.road + room.house_number


def test_buildings_once_the_compound_is_complete(room: Stored) -> None:
    found = labels(f"{room.district}{room.compound}", limit=50)
    assert room.district + f"{room.compound}{room.building}" in found


def test_area_scope(room: Stored) -> None:
    assert room.road is not None
    target = room.district + room.road
    assert target in labels(room.road, area=room.district_code, limit=50)
    assert target in labels(room.road, area=room.subdistrict_code, limit=50)
    other = "120101000000" if room.district_code != "120101000000" else "120102000000"
    assert target not in labels(room.road, area=other, limit=50)


def test_suggest_endpoint(client: TestClient, room: Stored) -> None:
    assert room.road is not None
    response = client.get("/addresses/suggest", params={"q": room.road[:2], "limit": 50})
    assert response.status_code == 200, response.text
    items = response.json()["suggestions"]
    mine = next(i for i in items if i["label"] == room.district + room.road)
    assert mine["kind"] == "road" and mine["district_code"] == room.district_code
    assert mine["location"]["type"] == "Point"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"q": ""}, "EmptyQuery"),
        ({"q": "路" * 201}, "QueryTooLong"),
        ({"q": "友谊", "area": "12"}, "UnknownArea"),
        ({"q": "友谊", "limit": 500}, "InvalidParameterValue"),
        ({"q": "友谊", "size": 5}, "UnknownParameter"),
    ],
)
def test_suggest_rejects_bad_input(
    client: TestClient, room: Stored, params: dict[str, object], code: str
) -> None:
    response = client.get("/addresses/suggest", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code


def test_every_suggest_statement_uses_an_index(room: Stored) -> None:
    assert room.road is not None and room.compound is not None
    full, initials = pinyin(room.road)
    typed = [
        room.road[:2],
        full,
        initials,
        full[0] + full[2] + full[1] + full[3:],
        room.compound[:2] + "鑫" + room.compound[3:],
        f"{room.road}{room.house_number}",
    ]
    with session_scope() as session, statements() as seen:
        for q in typed:
            suggest(session, q, area=room.subdistrict_code)
    queries = [(sql, p) for sql, p in seen if "FROM address" in sql]
    used = set()
    for sql, params in queries:
        plan = plans(sql, params)
        assert "Seq Scan on address" not in plan, f"{sql}\n{plan}"
        used |= {name for name in INDEXES if name in plan}
    assert used == set(INDEXES)


INDEXES = (
    "ix_address_names_name_prefix",
    "ix_address_names_pinyin_prefix",
    "ix_address_names_initials_prefix",
    "ix_address_names_name_trgm",
    "ix_addresses_structured",
)

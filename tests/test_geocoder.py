"""Geocoding against a real library: exact matches, messy variants, typos, honest fallbacks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from addressbook.geocoding import gazetteer, matching, scoring
from addressbook.geocoding.geocoder import MAX_TEXT, geocode, geocode_many
from geo.db import session_scope
from tests.address_library import HOUSES, ROOMS, Stored, pick, plans, statements

# Every test here geocodes against the generated library.
pytestmark = pytest.mark.usefixtures("generated_library")


@pytest.fixture(scope="module")
def room() -> Stored:
    with session_scope() as session:
        return pick(session, ROOMS)[0]


@pytest.fixture(scope="module")
def house() -> Stored:
    with session_scope() as session:
        return pick(session, HOUSES)[0]


def top(q: str, **kwargs: object) -> object:
    with session_scope() as session:
        found = geocode(session, q, **kwargs)  # type: ignore[arg-type]
    assert found, f"no candidate for {q!r}"
    return found[0]


def digits(value: str | None) -> str:
    return "".join(ch for ch in value or "" if ch.isdigit())


def test_the_standard_form_is_an_exact_confident_match(room: Stored) -> None:
    best = top(room.full_address)
    assert best.address_id == room.id
    assert best.code == room.code
    assert best.standard == room.full_address
    assert (best.level, best.score, best.confident) == ("room", 1.0, True)
    assert (best.lon, best.lat) == pytest.approx((room.lon, room.lat))
    assert best.elements["district"] == room.district
    assert best.elements["house_number"] == room.house_number


def test_a_village_house_is_matched_at_house_number_level(house: Stored) -> None:
    best = top(house.full_address)
    assert (best.address_id, best.level, best.confident) == (house.id, "house_number", True)


def variants(a: Stored) -> dict[str, str]:
    """The spellings people type for the same address."""
    b, u, r = digits(a.building), digits(a.unit), digits(a.room)
    street = f"{a.road}{a.house_number}{a.compound}"
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    return {
        "no district": f"{a.subdistrict}{street}{a.building}{a.unit}{a.room}",
        "no admin areas": f"{street}{a.building}{a.unit}{a.room}",
        "dashes": f"天津市{a.district}{street}{b}-{u}-{r}",
        "gate and household": f"{a.district}{street}{b}栋{u}门{r}户",
        "full width": f"{a.district}{street}{a.building}{a.unit}{a.room}".translate(full_width),
        "noise": f"天津市天津市{a.district}{a.road} {a.house_number}【{a.compound}】"
        f"{a.building}{a.unit}{a.room}(附近)",
        "compound only": f"{a.district}{a.compound}{b}-{u}-{r}",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "no district",
        "no admin areas",
        "dashes",
        "gate and household",
        "full width",
        "noise",
        "compound only",
    ],
)
def test_variants_find_the_same_address(room: Stored, kind: str) -> None:
    best = top(variants(room)[kind])
    assert best.address_id == room.id, (kind, best)
    assert best.level == "room"


def test_chinese_numerals(database_url: str) -> None:
    with session_scope() as session:
        (a,) = pick(
            session, ROOMS + " AND a.house_number ~ '^[1-9][0-9]号$' AND a.unit = '2单元'"
        ) or pick(session, ROOMS + " AND a.house_number ~ '^[1-9][0-9]号$'")
    tens, ones = divmod(int(digits(a.house_number)), 10)
    numeral = (
        ("" if tens == 1 else "零一二三四五六七八九"[tens])
        + "十"
        + ("零一二三四五六七八九"[ones] if ones else "")
    )
    unit = "零一二三四五六七八九"[int(digits(a.unit))]
    text_ = f"{a.district}{a.road}{numeral}号{a.compound}{a.building}{unit}单元{a.room}"
    assert top(text_).address_id == a.id


def replace_char(name: str, index: int, by: str) -> str:
    return name[:index] + by + name[index + 1 :]


def test_a_misspelt_road_is_corrected(room: Stored) -> None:
    assert room.road is not None
    typo = replace_char(room.road, 1, "葫" if room.road[1] != "葫" else "芦")
    best = top(room.full_address.replace(room.road, typo, 1))
    assert best.address_id == room.id
    assert best.score < 1.0 and best.confident  # one corrected name, everything else agrees
    assert any(f"read {typo} as {room.road}" in note for note in best.notes)


def test_a_misspelt_compound_is_corrected(room: Stored) -> None:
    assert room.compound is not None
    typo = replace_char(room.compound, 2, "葫" if room.compound[2] != "葫" else "芦")
    best = top(room.full_address.replace(room.compound, typo, 1))
    assert best.address_id == room.id and best.confident


def test_a_misspelt_village_lane_is_confirmed_by_its_house_number(house: Stored) -> None:
    assert house.road is not None
    typo = replace_char(house.road, 0, "葫")
    best = top(f"{house.district}{typo}{house.house_number}")
    assert best.address_id == house.id


def test_a_room_the_library_lacks_gives_its_unit_not_a_guess(room: Stored) -> None:
    street = f"{room.road}{room.house_number}{room.compound}"
    text_ = f"{room.district}{street}{room.building}{room.unit}9999室"
    best = top(text_)
    assert best.address_id is None and best.level == "unit"
    assert not best.confident and best.score < scoring.CONFIDENT
    assert best.standard.endswith(f"{room.building}{room.unit}")
    assert abs(best.lon - room.lon) < 0.001 and abs(best.lat - room.lat) < 0.001


def test_a_house_number_the_road_lacks_gives_the_road(house: Stored) -> None:
    best = top(f"{house.district}{house.road}99999号")
    assert (best.level, best.address_id, best.confident) == ("road", None, False)
    assert best.elements["road"] == house.road


def test_an_unknown_road_gives_the_district_centroid_with_a_low_score(house: Stored) -> None:
    best = top(f"天津市{house.district}子虚乌有大街12号")
    assert best.level == "district" and best.elements["district"] == house.district
    assert best.score < 0.5 and not best.confident


def test_the_road_alone_is_a_road_level_match(house: Stored) -> None:
    best = top(f"{house.district}{house.road}")
    assert best.level == "road" and best.elements["road"] == house.road
    assert best.address_id is None


def test_another_city_gets_no_candidates(room: Stored) -> None:
    with session_scope() as session:
        assert geocode(session, f"上海市{room.road}{room.house_number}") == []
        assert geocode(session, "") == []
        assert geocode(session, "天" * (MAX_TEXT + 1)) == []


def test_the_same_road_and_number_in_two_districts_is_not_confident(
    client: TestClient, make_department
) -> None:
    """Without a district, 同名路5号 could be either: both candidates, neither confident."""
    dept = make_department(address_authority=True)
    with session_scope() as session:
        districts = session.execute(
            text(
                "SELECT name, ST_X(centroid), ST_Y(centroid) FROM current_admin_areas "
                "WHERE level = 'district' AND centroid IS NOT NULL "
                "AND name IN ('河西区', '南开区') ORDER BY name"
            )
        ).all()
    for name, lon, lat in districts:
        body = {"district": name, "road": "同名测试路", "house_number": "5", "lon": lon, "lat": lat}
        response = client.post("/addresses", json=body, headers=dept.editor)
        assert response.status_code == 201, response.text
    with session_scope() as session:
        found = geocode(session, "同名测试路5号", limit=5)
        named = geocode(session, "南开区同名测试路5号")
    assert len(found) == 2 and not any(c.confident for c in found)
    assert {c.elements["district"] for c in found} == {"河西区", "南开区"}
    assert named[0].confident and named[0].elements["district"] == "南开区"


def test_area_restricts_the_search(room: Stored, house: Stored) -> None:
    assert top(room.full_address, area=room.district_code).address_id == room.id
    assert top(room.full_address, area=room.subdistrict_code).address_id == room.id
    other = "120101000000" if room.district_code != "120101000000" else "120102000000"
    with session_scope() as session:
        assert geocode(session, room.full_address, area=other) == []


def test_many_texts_at_once(room: Stored, house: Stored) -> None:
    with session_scope() as session:
        found = geocode_many(session, [room.full_address, "", house.full_address, "上海市南京路"])
    assert [c[0].address_id if c else None for c in found] == [room.id, None, house.id, None]


def test_a_new_road_is_recognised_as_soon_as_it_is_imported(
    client: TestClient, make_department, house: Stored
) -> None:
    with session_scope() as session:
        before = gazetteer.current(session)
        assert gazetteer.current(session) is before  # nothing changed: the same snapshot
    dept = make_department(address_authority=True)
    body = {
        "district": house.district,
        "road": "新开测试大道",
        "house_number": "18",
        "lon": house.lon + 0.0005,
        "lat": house.lat,
    }
    created = client.post("/addresses", json=body, headers=dept.editor).json()
    with session_scope() as session:
        assert gazetteer.current(session) is not before
        best = geocode(session, f"{house.district}新开测试大道十八号")[0]
    assert best.address_id == created["id"] and best.confident


# --- the HTTP endpoints -----------------------------------------------------------------------


def test_geocode_endpoint(client: TestClient, room: Stored) -> None:
    response = client.get("/addresses/geocode", params={"q": room.full_address, "limit": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["crs"] == "CRS84" and body["confident_threshold"] == scoring.CONFIDENT
    best = body["candidates"][0]
    assert best["id"] == room.id and best["code"] == room.code and best["confident"] is True
    assert best["location"]["coordinates"] == pytest.approx([room.lon, room.lat])
    assert best["elements"]["room"] == room.room

    projected = client.get(
        "/addresses/geocode", params={"q": room.full_address, "crs": "EPSG:3857"}
    ).json()
    x, y = projected["candidates"][0]["location"]["coordinates"]
    assert 1.2e7 < x < 1.4e7 and 4.5e6 < y < 5e6


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"q": ""}, 400, "EmptyQuery"),
        ({"q": "   "}, 400, "EmptyQuery"),
        ({"q": "天" * 201}, 400, "QueryTooLong"),
        ({"q": "友谊路", "area": "999999999999"}, 400, "UnknownArea"),
        ({"q": "友谊路", "crs": "EPSG:9999999"}, 400, "UnknownCRS"),
        ({"q": "友谊路", "limit": 0}, 400, "InvalidParameterValue"),
        ({"q": "友谊路", "lmit": 3}, 400, "UnknownParameter"),
        ({}, 400, "InvalidParameterValue"),
    ],
)
def test_geocode_rejects_bad_input(
    client: TestClient, params: dict[str, object], status: int, code: str
) -> None:
    response = client.get("/addresses/geocode", params=params)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.json()["message"]


def test_parse_endpoint(client: TestClient, room: Stored) -> None:
    b, u, r = digits(room.building), digits(room.unit), digits(room.room)
    q = f"天津市天津市{room.district}{room.road}{room.house_number}{room.compound}{b}-{u}-{r}(附近)"
    body = client.get("/addresses/parse", params={"q": q}).json()
    assert body["level"] == "room" and body["city"] == "天津市"
    assert body["elements"]["road"] == room.road
    assert (body["elements"]["building"], body["elements"]["unit"]) == (b, u)
    assert "附近" in body["notes"]
    assert client.get("/addresses/parse", params={"q": ""}).json()["code"] == "EmptyQuery"


# --- no scans ------------------------------------------------------------------------------------


def test_no_geocoding_statement_scans_the_address_table(room: Stored, house: Stored) -> None:
    texts = [
        room.full_address,  # exact, both anchors
        f"{room.road}{room.house_number}{room.compound}{room.building}{room.unit}9999室",
        f"{house.district}{house.road}99999号",  # relaxed and name-level
        f"天津市{house.district}子虚乌有大街12号",  # down to the text similarity
    ]
    with session_scope() as session, statements() as seen:
        for q in texts:
            geocode(session, q)
    sent = [(sql, params) for sql, params in seen if "addresses" in sql]
    assert len(sent) >= 4
    for sql, params in sent:
        plan = plans(sql, params)
        assert "Seq Scan on addresses" not in plan, f"{sql}\n{plan}"
    exact = next(sql for sql, _ in sent if "UNION ALL" in sql or "LATERAL" in sql)
    assert "ix_addresses_structured" in plans(exact, next(p for s, p in sent if s == exact))


def test_text_similarity_goes_through_names(house: Stored) -> None:
    """The similarity step reaches stored addresses through library names like the text's
    words (the name dictionary by an index: its trigram index once it is large, its unique key
    here, where it is small; then a range of the structured index), not through an index of
    every full form, and never by scanning either table."""
    typed = f"{house.road}口"  # one more character: a name two trigrams away
    text_ = house.full_address.replace(house.road, typed)
    wanted = {"house_number": house.house_number or ""}
    with session_scope() as session, statements() as seen:
        found = matching.similar(session, text_, [typed], wanted, [house.district_code], None)
    assert found and found[0][0].id == house.id
    assert matching.SIMILAR_THRESHOLD <= found[0][1] < 1
    sql, params = next((sql, p) for sql, p in seen if "WITH names" in sql)
    plan = plans(sql, params)
    assert "ix_addresses_structured" in plan, plan
    assert "Seq Scan on addresses" not in plan and "Seq Scan on address_names" not in plan, plan


def test_text_similarity_finds_what_the_parser_cannot(room: Stored) -> None:
    """A row with nothing but a standard form and a point (as hand-made data may be): the
    exact text finds it confidently, a near text finds it without confidence."""
    form = f"天津市{room.district}自由格式测试地址8号"
    with session_scope() as session:
        made = session.execute(
            text(
                "INSERT INTO addresses (code, full_address, geom) VALUES "
                "('TEST-SIMILAR-1', :form, ST_SetSRID(ST_MakePoint(:x, :y), 4490)) RETURNING id"
            ),
            {"form": form, "x": room.lon, "y": room.lat},
        ).scalar_one()
    try:
        exact = top(form)
        assert exact.address_id == made and exact.confident and exact.score == 1.0
        near = top(form.replace("8号", "8号附近的门"))
        assert near.address_id == made
        assert not near.confident and near.score <= scoring.SIMILARITY_CAP
    finally:
        with session_scope() as session:
            session.execute(text("DELETE FROM addresses WHERE id = :id"), {"id": made})

"""Named places (issue 15 part 1): import all or nothing, each bad input refused with nothing
written, suggest and geocode finding places by name, alias, typo and without their city or
district, a place beside a house number preferring the address, the places collection's items
and tiles, and the plans of the search and nearby SQL. Real database, real importer."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from addressbook.cli import COMMANDS
from addressbook.geocoding import gazetteer, suggest
from addressbook.geocoding.geocoder import geocode
from addressbook.ingest import demo, demo_places
from addressbook.places import query
from addressbook.places.read import read_places
from addressbook.places.store import import_places
from geo.db import session_scope
from geo.errors import ApiError
from tests.address_library import CONSOLE, fresh_names, load
from tests.tiles_fixtures import decode, tile_at

SEED = 7


def _csv(*lines: str) -> bytes:
    return ("category,name,aliases,lon,lat,address_code\n" + "\n".join(lines) + "\n").encode()


def _import(data: bytes, source: str, skip_invalid: bool = False, name: str = "x.csv") -> Any:
    with session_scope() as session:
        rows = read_places(io.BytesIO(data), name)
        return import_places(session, rows, source, CONSOLE, skip_invalid=skip_invalid)


def _count(source: str) -> int:
    with session_scope() as session:
        return int(
            session.execute(
                text("SELECT count(*) FROM places WHERE source = :s"), {"s": source}
            ).scalar_one()
        )


@pytest.fixture(scope="module")
def library(database_url: str) -> Iterator[None]:
    load()
    with session_scope() as session:
        areas = demo.load_communities(session)
    _import(demo_places.places_csv(areas, SEED), demo_places.PLACE_SOURCE)
    with fresh_names():
        yield


def _top(q: str, **kwargs: Any) -> Any:
    with session_scope() as session:
        found = geocode(session, q, limit=3, **kwargs)
    assert found, q
    return found[0]


def _point_of(name: str) -> tuple[float, float, str]:
    with session_scope() as session:
        return session.execute(
            text(
                "SELECT ST_X(geom), ST_Y(geom), district_code FROM places "
                "WHERE name = :n AND source = 'demo'"
            ),
            {"n": name},
        ).one()


# --- the demo's places ---------------------------------------------------------------------------


def test_demo_places_lie_in_their_districts(library: None) -> None:
    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT p.name, d.name FROM places p "
                "JOIN current_admin_areas d ON d.code = p.district_code WHERE p.source = 'demo'"
            )
        ).tuples()
        districts = dict(list(rows))
        counts = dict(
            list(
                session.execute(
                    text("SELECT category, count(*) FROM places WHERE source = 'demo' GROUP BY 1")
                ).tuples()
            )
        )
    for name, _, _, district, _, _ in demo_places.REAL_PLACES:
        assert districts[name] == district, name
    assert districts["河西区人民医院"] == "河西区"
    assert any(n.endswith("社区居委会") for n in districts)
    assert set(counts) >= {"station", "school", "hospital", "park", "government", "commercial"}
    # Every place has its district and subdistrict, derived from its point.
    with session_scope() as session:
        assert (
            session.execute(
                text(
                    "SELECT count(*) FROM places WHERE source = 'demo' "
                    "AND (district_code IS NULL OR subdistrict_code IS NULL)"
                )
            ).scalar_one()
            == 0
        )


# --- search --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "name"),
    [
        ("天津站", "天津站"),
        ("南开大学", "南开大学"),
        ("河西区人民医院", "河西区人民医院"),
        ("水上公园", "水上公园"),
        ("南大", "南开大学"),  # alias (short name)
        ("天津火车站", "天津站"),  # alias (another name)
        ("南开大雪", "南开大学"),  # typo
        ("友谊路小雪", "友谊路小学"),  # typo after a road's name
        ("天津市第一中心医院", "天津市第一中心医院"),
        ("第一中心医院", "天津市第一中心医院"),  # without 天津市
        ("天津市河西区人民医院", "河西区人民医院"),
        ("南开区南开大学", "南开大学"),
    ],
)
def test_geocode_finds_places(library: None, q: str, name: str) -> None:
    found = _top(q)
    assert found.level == "place", (q, found)
    assert found.place is not None and found.place.name == name
    assert found.confident
    x, y, district = _point_of(name)
    assert (found.lon, found.lat) == pytest.approx((x, y))
    assert found.elements["district_code"] == district


def test_residents_committee_office_is_the_place(library: None) -> None:
    with session_scope() as session:
        office = session.execute(
            text(
                "SELECT name FROM places WHERE source = 'demo' AND name LIKE '%社区居委会' "
                "ORDER BY name LIMIT 1"
            )
        ).scalar_one()
    found = _top(office)
    assert found.level == "place" and found.place is not None
    assert found.place.name == office and found.confident


def test_a_name_holding_its_subdistrict_with_the_district_before_it(library: None) -> None:
    """武清区泗村店镇人民政府: the peeled text (人民政府) is also a spelling (天津市人民政府's,
    without 天津市); the longer name in the text wins."""
    with session_scope() as session:
        name, district = session.execute(
            text(
                "SELECT p.name, d.name FROM places p "
                "JOIN current_admin_areas d ON d.code = p.district_code "
                "WHERE p.source = 'demo' AND p.name LIKE '%镇人民政府' ORDER BY p.name LIMIT 1"
            )
        ).one()
    found = _top(district + name)
    assert found.level == "place" and found.place is not None and found.place.name == name


def test_a_place_name_read_as_another_city_is_still_the_place(library: None) -> None:
    """泰和都市... reads as a city (…都市) to the parser, which refuses other cities' texts; the
    whole name is still the place. Another city's station is not Tianjin's."""
    found = _top("泰和都市工业园社区居委会")
    assert found.level == "place" and found.place is not None
    with session_scope() as session:
        assert all(c.level != "place" for c in geocode(session, "上海西站", limit=5))


def test_a_place_and_a_house_number_prefer_the_address(library: None) -> None:
    """南开大学 beside a road and number of the library: the address, confidently; the place
    alone lacks the road and the number."""
    with session_scope() as session:
        road, number = session.execute(
            text(
                "SELECT a.road, a.house_number FROM addresses a "
                "JOIN current_admin_areas d ON d.code = a.district_code "
                "WHERE d.name = '南开区' AND a.road IS NOT NULL AND a.house_number IS NOT NULL "
                "AND a.status = 'active' ORDER BY a.id LIMIT 1"
            )
        ).one()
        found = geocode(session, f"南开区南开大学{road}{number}", limit=5)
        alone = geocode(session, f"南开区{road}{number}", limit=1)
    assert found[0].level != "place" and found[0].confident
    assert (found[0].elements["road"], found[0].elements["house_number"]) == (road, number)
    assert (found[0].lon, found[0].lat) == (alone[0].lon, alone[0].lat)
    places = [c for c in found if c.level == "place"]
    assert places and all(not c.confident for c in places)


def test_area_filter_applies_to_places(library: None) -> None:
    _, _, district = _point_of("南开大学")
    assert _top("南开大学", area=district).level == "place"
    with session_scope() as session:
        other = session.execute(
            text(
                "SELECT code FROM current_admin_areas WHERE level = 'district' AND code <> :d "
                "ORDER BY code LIMIT 1"
            ),
            {"d": district},
        ).scalar_one()
        found = geocode(session, "南开大学", limit=5, area=other)
    assert all(c.level != "place" for c in found)


@pytest.mark.parametrize(
    ("q", "name", "match"),
    [
        ("天津站", "天津站", "prefix"),
        ("南开大", "南开大学", "prefix"),
        ("南大", "南开大学", "prefix"),
        ("nankaidaxue", "南开大学", "pinyin"),
        ("nkdx", "南开大学", "initials"),
        ("南开大雪", "南开大学", "homophone"),
        ("第一中心", "天津市第一中心医院", "prefix"),
        ("河西区人民医", "河西区人民医院", "prefix"),
    ],
)
def test_suggest_finds_places(library: None, q: str, name: str, match: str) -> None:
    with session_scope() as session:
        found = suggest.suggest(session, q, limit=10)
    places = [s for s in found if s.kind == "place"]
    assert places, (q, found)
    hit = next(s for s in places if (s.canonical or s.name) == name)
    assert hit.match == match
    assert hit.category is not None
    assert hit.label.endswith(name)


def test_suggest_over_http_names_the_category(client: TestClient, library: None) -> None:
    response = client.get("/addresses/suggest", params={"q": "天津西"})
    assert response.status_code == 200
    found = [s for s in response.json()["suggestions"] if s["kind"] == "place"]
    assert found[0]["name"] == "天津西站" and found[0]["category"] == "station"
    response = client.get("/addresses/geocode", params={"q": "天津西站"})
    top = response.json()["candidates"][0]
    assert top["level"] == "place" and top["place"]["category"] == "station"


# --- import --------------------------------------------------------------------------------------

HEXI = "117.2050,39.1000"  # inside 河西区
NANKAI = "117.1700,39.1030"


def test_import_is_all_or_nothing(library: None) -> None:
    good = "school,测试第一小学,一小,117.2050,39.1000,"
    bad = "volcano,测试火山,,117.2050,39.1000,"
    with pytest.raises(ApiError) as caught:
        _import(_csv(good, bad), "all-or-nothing")
    assert caught.value.status == 400 and caught.value.code == "InvalidPlaces"
    errors = caught.value.details["errors"]
    assert errors == [
        {"line": 3, "field": "category", "message": errors[0]["message"]},
    ]
    assert "unknown category 'volcano'" in errors[0]["message"]
    assert _count("all-or-nothing") == 0
    report = _import(_csv(good, bad), "all-or-nothing", skip_invalid=True)
    assert (report.imported, report.skipped, report.rows) == (1, 1, 2)
    assert report.errors[0]["line"] == 3
    assert _count("all-or-nothing") == 1
    # Importing the source again replaces its places.
    report = _import(_csv(good), "all-or-nothing")
    assert (report.imported, report.replaced) == (1, 1)
    assert _count("all-or-nothing") == 1


@pytest.mark.parametrize(
    ("lines", "field", "words"),
    [
        (["museum,测试博物馆,,117.2,39.1,"], "category", "unknown category 'museum'"),
        (
            ["park,测试公园,,117.2050,39.1000,", "park,测试公园,,117.2050,39.1000,"],
            "name",
            "already at this point (line 3)",
        ),
        (["park,测试公园,,121.47,31.23,"], "lon", "outside the city extent"),
        (["park,测试公园,,117.0,38.3,"], "lon", "outside"),
        (["park,,,117.2050,39.1000,"], "name", "needs a name"),
        (["park,测试公园,,东经,39.1,"], "lon", "must be numbers"),
        (["park,测试公园,,117.2050,39.1000,NOSUCHCODE"], "address_code", "no address"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_written(
    library: None, lines: list[str], field: str, words: str
) -> None:
    before = _count("bad")
    with pytest.raises(ApiError) as caught:
        _import(_csv("school,测试好小学,,117.2050,39.1000,", *lines), "bad")
    assert caught.value.status == 400
    error = caught.value.details["errors"][-1]
    assert error["field"] == field and words in error["message"], error
    assert _count("bad") == before == 0


def test_a_name_already_at_the_point_in_another_source_is_a_duplicate(library: None) -> None:
    x, y, _ = _point_of("天津站")
    with pytest.raises(ApiError) as caught:
        _import(_csv(f"station,天津站,,{x},{y},"), "another")
    assert "another source" in caught.value.details["errors"][0]["message"]


def test_cli_import_all_or_nothing_and_skip_invalid(library: None, tmp_path: Path) -> None:
    """`geo places import FILE [--skip-invalid]`: the console's command on the same code."""
    path = tmp_path / "cli-places.csv"
    path.write_bytes(
        _csv("park,测试命令公园,,117.2050,39.1000,", "zoo,测试命令动物园,,117.2,39.1,")
    )
    geo_cli = typer.Typer()  # as `geo` adds the plugin's commands (geo.cli.main)
    geo_cli.add_typer(COMMANDS["places"], name="places")
    runner = CliRunner()
    refused = runner.invoke(geo_cli, ["places", "import", str(path)])
    assert refused.exit_code != 0 and isinstance(refused.exception, ApiError)
    assert refused.exception.code == "InvalidPlaces"
    assert _count("cli-places.csv") == 0
    done = runner.invoke(geo_cli, ["places", "import", str(path), "--skip-invalid"])
    assert done.exit_code == 0, done.output
    assert _count("cli-places.csv") == 1


def test_gb18030_csv_and_geojson_with_an_outline(library: None) -> None:
    data = _csv("park,测试编码公园,编码园,117.2050,39.1000,").decode().encode("gb18030")
    assert _import(data, "gb18030").imported == 1
    outline = [[117.20, 39.10], [117.21, 39.10], [117.21, 39.11], [117.20, 39.11], [117.20, 39.10]]
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [outline]},
                "properties": {"category": "park", "name": "测试轮廓公园", "aliases": ["轮廓园"]},
            }
        ],
    }
    report = _import(json.dumps(document).encode(), "outline", name="p.geojson")
    assert report.imported == 1
    with session_scope() as session:
        inside, aliases = session.execute(
            text(
                "SELECT ST_Contains(outline, geom), aliases FROM places WHERE name = '测试轮廓公园'"
            )
        ).one()
    assert inside and aliases == ["轮廓园"]


def test_import_links_the_standard_address(library: None) -> None:
    with session_scope() as session:
        code, x, y = session.execute(
            text(
                "SELECT code, ST_X(geom), ST_Y(geom) FROM addresses WHERE status = 'active' "
                "ORDER BY id LIMIT 1"
            )
        ).one()
    _import(_csv(f"commercial,测试链接商场,,{x},{y},{code}"), "linked")
    found = _top("测试链接商场")
    assert found.level == "place" and found.code == code and found.address_id is not None


def test_import_over_http(client: TestClient, admin_headers: dict[str, str], library: None) -> None:
    files = {"file": ("http.csv", _csv("park,测试接口公园,,117.2050,39.1000,"), "text/csv")}
    response = client.post("/places/import", files=files, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 1
    files = {"file": ("http.csv", _csv("lake,测试接口湖,,117.2050,39.1000,"), "text/csv")}
    response = client.post("/places/import", files=files, headers=admin_headers)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidPlaces"
    assert _count("http.csv") == 1  # the first import's place is still there, alone
    response = client.post("/places/import", files=files)
    assert response.status_code == 401


def test_an_editor_of_another_department_may_not_import(
    client: TestClient, make_department: Any, library: None
) -> None:
    other = make_department()
    files = {"file": ("dept.csv", _csv("park,测试部门公园,,117.2050,39.1000,"), "text/csv")}
    response = client.post("/places/import", files=files, headers=other.editor)
    assert response.status_code == 403
    assert response.json()["code"] == "NotAddressAuthority"
    assert _count("dept.csv") == 0


# --- collection, tiles, nearby ------------------------------------------------------------------


def test_places_collection_items_and_tile(
    client: TestClient, admin_headers: dict[str, str], library: None
) -> None:
    x, y, _ = _point_of("天津站")
    bbox = f"{x - 0.001},{y - 0.001},{x + 0.001},{y + 0.001}"
    response = client.get(
        "/collections/places/items", params={"bbox": bbox, "limit": 50}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    names = {f["properties"]["name"] for f in response.json()["features"]}
    assert "天津站" in names
    tile = tile_at(x, y, 15)
    response = client.get(f"/tiles/places/{tile.z}/{tile.x}/{tile.y}.mvt", headers=admin_headers)
    assert response.status_code == 200, response.text
    features = decode(response.content)["places"]["features"]
    assert "天津站" in {f["properties"]["name"] for f in features}


def test_nearby_places(client: TestClient, admin_headers: dict[str, str], library: None) -> None:
    x, y, _ = _point_of("南开大学")
    response = client.get(
        "/places/nearby", params={"lon": x, "lat": y, "limit": 3}, headers=admin_headers
    )
    assert response.status_code == 200
    first = response.json()["places"][0]
    assert first["name"] == "南开大学" and first["distance_m"] < 1
    response = client.get(
        "/places/nearby", params={"lon": x, "lat": y, "category": "zoo"}, headers=admin_headers
    )
    assert response.status_code == 400 and response.json()["code"] == "UnknownCategory"
    place = client.get(f"/places/{first['id']}", headers=admin_headers).json()
    assert place["name"] == "南开大学" and "南大" in place["aliases"]
    assert client.get("/places/999999999", headers=admin_headers).status_code == 404


# --- plans ---------------------------------------------------------------------------------------


def _plan(session: Any, sql: str, params: dict[str, Any]) -> str:
    rows = session.execute(text("EXPLAIN " + sql), params).scalars()
    return "\n".join(rows)


def test_nearby_uses_the_gist_index(library: None) -> None:
    with session_scope() as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = _plan(
            session,
            query.NEARBY_SQL,
            {"x": 117.17, "y": 39.10, "category": None, "limit": 10},
        )
    assert "idx_places_geom" in plan, plan


def test_place_suggestions_use_the_name_indexes(library: None) -> None:
    """The suggester's searches, which find the place spellings among the other names: the
    prefix search is a range of ix_address_names_name_prefix, the typo search reads
    ix_address_names_name_trgm."""
    prefix_sql = suggest._NAME_SQL.format(
        source="address_names", where="n.name LIKE :p", scope="", order="n.weight DESC, n.name"
    )
    trigram_sql = suggest._NAME_SQL.format(
        source=suggest._TRIGRAM_SOURCE,
        where="true",
        scope="",
        order="similarity(n.name, :q) DESC, n.weight DESC",
    )
    with session_scope() as session:
        prefix = _plan(session, prefix_sql, {"p": "南开大%", "limit": 10})
        trigram = _plan(session, trigram_sql, {"q": "南开大雪", "limit": 10})
    assert "ix_address_names_name_prefix" in prefix, prefix
    assert "ix_address_names_name_trgm" in trigram, trigram


def test_the_gazetteer_holds_the_places(library: None) -> None:
    with session_scope() as session:
        library_ = gazetteer.current(session)
    assert "南大" in library_.places.by_surface
    assert "第一中心医院" in library_.places.by_surface
    assert "站" not in library_.places.by_surface  # 天津站 keeps its city

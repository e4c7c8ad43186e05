"""One rule for naming admin areas: bulk import, single edits and the geocoder agree, and names
of the 2016 division set resolve to the area that carries the place today, with a note."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from addressbook import lifecycle
from addressbook.areas import resolver
from addressbook.areas.import_areas import import_areas
from addressbook.areas.resolver import Gone, Resolved
from addressbook.geocoding import gazetteer
from addressbook.geocoding.geocoder import geocode_many
from addressbook.geocoding.names import refresh_streets
from addressbook.ingest.importer import ImportReport, import_addresses
from geo.db import session_scope
from geo.errors import ApiError
from tests.address_library import CONSOLE, fresh_names

ROAD = "旧名测试路"  # no other test's data has it: the module removes what it adds
HEXI = "120103000000"
# 双环村街道 of 红桥区 (2016) is 双环邨街道 of 北辰区 since 2023.
OLD_SUBDISTRICT, OLD_CODE, OLD_DISTRICT = "双环村街道", "120106002000", "红桥区"
NEW_SUBDISTRICT, NEW_CODE, NEW_DISTRICT = "双环邨街道", "120113008000", "120113000000"


@pytest.fixture(scope="module", autouse=True)
def areas(database_url: str) -> Iterator[None]:
    with session_scope() as session:
        if not session.execute(
            text("SELECT count(*) FROM admin_areas WHERE source = 'derived-voronoi'")
        ).scalar_one():
            import_areas(session)
    with fresh_names():
        yield
    with session_scope() as session:
        session.execute(
            text(
                "CREATE TEMP TABLE _gone ON COMMIT DROP AS SELECT DISTINCT 'road' AS kind, "
                "road AS name, district_code FROM addresses WHERE road = :road"
            ),
            {"road": ROAD},
        )
        session.execute(
            text(
                "DELETE FROM address_history WHERE address_id IN "
                "(SELECT id FROM addresses WHERE road = :road)"
            ),
            {"road": ROAD},
        )
        session.execute(text("DELETE FROM addresses WHERE road = :road"), {"road": ROAD})
        refresh_streets(session, "_gone")
    gazetteer.expire()


def _centroid(session: Session, code: str) -> tuple[float, float]:
    x, y = session.execute(
        text("SELECT ST_X(centroid), ST_Y(centroid) FROM current_admin_areas WHERE code = :c"),
        {"c": code},
    ).one()
    return float(x), float(y)


def _import(rows: list[dict[str, Any]]) -> ImportReport:
    """Import the rows, skipping bad ones (so that the report lists them)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with session_scope() as session:
        report = import_addresses(
            session, io.BytesIO(out.getvalue().encode()), "t.csv", CONSOLE, skip_invalid=True
        )
    gazetteer.expire()
    return report


def _create(fields: dict[str, Any]) -> dict[str, Any]:
    with session_scope() as session:
        address_id = lifecycle.create(session, CONSOLE, fields, "EPSG:4490")
        record = lifecycle.record(session, address_id)
    with session_scope() as session:  # the entry as committed
        notes = session.execute(
            text(
                "SELECT details -> 'notes' FROM audit_log WHERE action = 'address.create' "
                "AND target = :t ORDER BY id DESC LIMIT 1"
            ),
            {"t": f"address/{address_id}"},
        ).scalar()
    gazetteer.expire()
    return {**record, "notes": notes}


def _edit_problem(fields: dict[str, Any]) -> str:
    with session_scope() as session, pytest.raises(ApiError) as caught:
        lifecycle.create(session, CONSOLE, fields, "EPSG:4490")
    assert caught.value.status == 400
    return caught.value.message


@pytest.mark.parametrize(
    ("level", "value", "scope", "code"),
    [
        ("district", "河西区", None, HEXI),
        ("district", HEXI, None, HEXI),
        ("district", "120103", None, HEXI),  # the 6-digit adcode
        ("subdistrict", "和苑街道办事处", "120106000000", "120106012000"),  # official name
        ("subdistrict", "120106012000", "120106000000", "120106012000"),
        ("subdistrict", "120106012", "120106000000", None),  # a 9-digit prefix names nothing
        ("subdistrict", "和苑街道", "120113000000", None),  # another district's
        ("district", "河西区办事处", None, None),
    ],
)
def test_the_keys(level: str, value: str, scope: str | None, code: str | None) -> None:
    with session_scope() as session:
        found = resolver.resolve(session, level, value, scope)
    if code is None:
        assert found is None
    else:
        assert isinstance(found, Resolved) and (found.code, found.note) == (code, None)


def test_import_and_edits_refuse_what_the_rule_refuses() -> None:
    """Bulk import used to take a 9-digit township prefix that single edits refused."""
    with session_scope() as session:
        lon, lat = _centroid(session, "120106012000")
    row = {"district": "红桥区", "subdistrict": "120106012", "road": ROAD, "house_number": "1"}
    report = _import([{**row, "lon": lon, "lat": lat}])
    assert report.created == 0 and report.error_count == 1
    assert report.errors[0]["problem"].startswith("unknown subdistrict '120106012' in 红桥区")
    message = _edit_problem({**row, "lon": lon, "lat": lat})
    assert message.startswith("subdistrict: unknown subdistrict '120106012'")


def test_a_community_named_without_its_subdistrict_must_be_unique_in_the_district() -> None:
    """Single edits used to take the lowest code of several communities of one name."""
    with session_scope() as session:
        shared = session.execute(
            text(
                "SELECT district_code, name FROM current_admin_area_tree "
                "WHERE level = 'community' GROUP BY district_code, name "
                "HAVING count(*) > 1 ORDER BY district_code, name LIMIT 1"
            )
        ).first()
        assert shared is not None, "the bundled data has communities sharing a name"
        lon, lat = _centroid(session, shared[0])
    fields = {"district": shared[0], "community": shared[1], "road": ROAD, "house_number": "2"}
    assert "needs the subdistrict" in _edit_problem({**fields, "lon": lon, "lat": lat})
    report = _import([{**fields, "lon": lon, "lat": lat}])
    assert report.created == 0
    assert report.errors[0]["problem"] == f"unknown community '{shared[1]}'"


def test_a_2016_subdistrict_resolves_to_its_successor_with_a_note() -> None:
    with session_scope() as session:
        lon, lat = _centroid(session, NEW_CODE)
        old = resolver.resolve(session, "subdistrict", OLD_SUBDISTRICT, "120106000000")
        by_code = resolver.resolve(session, "subdistrict", OLD_CODE, "120106000000")
    assert isinstance(old, Resolved) and (old.code, old.district_code) == (NEW_CODE, NEW_DISTRICT)
    assert old.note == "红桥区双环村街道 (until 2023-06-01) is now 北辰区双环邨街道"
    assert by_code == old
    row = {
        "district": OLD_DISTRICT,
        "subdistrict": OLD_SUBDISTRICT,
        "road": ROAD,
        "house_number": "3",
        "lon": lon,
        "lat": lat,
    }
    report = _import([row])
    assert (report.created, report.error_count) == (1, 0)
    assert report.notes == [{"line": 2, "note": old.note}]
    assert report.as_dict()["noteCount"] == 1
    with session_scope() as session:
        stored = session.execute(
            text(
                "SELECT district_code, subdistrict_code, full_address FROM addresses "
                "WHERE road = :road AND house_number = '3号'"
            ),
            {"road": ROAD},
        ).one()
    assert stored == (NEW_DISTRICT, NEW_CODE, f"天津市北辰区双环邨街道{ROAD}3号")

    created = _create({**row, "house_number": "4"})
    assert created["elements"]["district"] == "北辰区"
    assert created["elements"]["subdistrict_code"] == NEW_CODE
    assert created["standard"] == f"天津市北辰区双环邨街道{ROAD}4号"
    assert created["notes"] == [old.note]


def test_a_2016_community_resolves_by_its_old_subdistrict() -> None:
    """佳园东里社区 moved to 双环邨街道 with its township: named with the old subdistrict's
    code, or in the old district without a subdistrict, it is found, with a note."""
    with session_scope() as session:
        community = resolver.resolve(session, "community", "佳园东里社区", OLD_CODE)
        in_district = resolver.resolve(
            session, "community_in_district", "佳园东里社区", "120106000000"
        )
    assert isinstance(community, Resolved) and community.code == "120106002001"
    assert community.district_code == NEW_DISTRICT
    assert community.note and "北辰区双环邨街道佳园东里社区" in community.note
    assert in_district == community


def test_a_subdistrict_without_successor_is_refused_with_the_reason() -> None:
    with session_scope() as session:
        gone = session.execute(
            text(
                "SELECT o.name, o.parent_code, d.name FROM admin_areas o "
                "JOIN current_admin_areas d ON d.code = o.parent_code "
                "WHERE o.level = 'subdistrict' AND o.valid_to IS NOT NULL "
                "AND o.successor_code IS NULL ORDER BY o.code LIMIT 1"
            )
        ).first()
        assert gone is not None, "the bundled data has townships dissolved in 2023"
        found = resolver.resolve(session, "subdistrict", gone[0], gone[1])
        lon, lat = _centroid(session, gone[1])
    assert isinstance(found, Gone) and found.note.endswith("without a successor")
    row = {"district": gone[2], "subdistrict": gone[0], "road": ROAD, "house_number": "5"}
    report = _import([{**row, "lon": lon, "lat": lat}])
    assert report.created == 0
    assert report.errors[0]["problem"].endswith(found.note)
    assert _edit_problem({**row, "lon": lon, "lat": lat}).endswith(found.note)


def test_the_geocoder_reads_the_old_name_as_the_new_area() -> None:
    """Free text (one address or a batch) with the 2016 name finds the address in 北辰区,
    confident, and says why the district is not the one typed."""
    texts = [f"天津市{OLD_DISTRICT}{OLD_SUBDISTRICT}{ROAD}3号", f"{NEW_SUBDISTRICT}{ROAD}3号"]
    with session_scope() as session:
        old, new = geocode_many(session, texts)
    assert old and new
    assert old[0].address_id == new[0].address_id is not None
    assert old[0].elements["district_code"] == NEW_DISTRICT
    assert old[0].confident
    assert "红桥区双环村街道 (until 2023-06-01) is now 北辰区双环邨街道" in old[0].notes
    assert not any("until" in note for note in new[0].notes)

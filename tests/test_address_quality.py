"""Quality report of a department's own address list (issue 15 part 3).

Real database, real app, the tests' sample library: a department uploads a mixed list (exact,
corrected, ambiguous and not-found rows), the report runs as a job, and its counts, areas,
worst rows, annotated downloads and one-step proposals are read back through the routes.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections import Counter
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from addressbook.geocoding import batch
from addressbook.quality import downloads, jobs, table
from addressbook.quality.classes import REPORT_COLUMNS
from geo.db import session_scope
from tests.address_library import HOUSES, ROOMS, Stored, pick
from tests.conftest import Dept

HEADER = ["编号", "地址", "经度", "纬度"]
SAME = "质量同名测试路"


@pytest.fixture(scope="module")
def dept(generated_library: None, make_department) -> Dept:
    return make_department()


@pytest.fixture(scope="module")
def stored(generated_library: None) -> tuple[list[Stored], list[Stored]]:
    with session_scope() as session:
        return pick(session, HOUSES, 4), pick(session, ROOMS, 2)


@pytest.fixture(scope="module")
def twins(client: TestClient, generated_library: None, make_department) -> None:
    """The same road and number in two districts: without a district, the text is ambiguous."""
    authority = make_department(address_authority=True)
    for name, lon, lat in (("河西区", 117.2179, 39.1100), ("南开区", 117.1500, 39.1200)):
        body = {"district": name, "road": SAME, "house_number": "7", "lon": lon, "lat": lat}
        made = client.post("/addresses", json=body, headers=authority.editor)
        assert made.status_code == 201, made.text


def replace_char(name: str, index: int, by: str) -> str:
    return name[:index] + by + name[index + 1 :]


@pytest.fixture(scope="module")
def mixed(stored: tuple[list[Stored], list[Stored]], twins: None) -> list[dict[str, Any]]:
    """The rows, each with the class and district it should get."""
    houses, rooms = stored
    rows: list[dict[str, Any]] = []
    for h in houses[:3]:
        rows.append({"text": h.full_address, "quality": "exact", "at": h})
    for r in rooms:
        assert r.road is not None
        typo = replace_char(r.road, 1, "葫" if r.road[1] != "葫" else "芦")
        rows.append(
            {"text": r.full_address.replace(r.road, typo, 1), "quality": "corrected", "at": r}
        )
    rows.append({"text": f"{SAME}7号", "quality": "ambiguous", "at": None})
    h = houses[3]
    point = (f"{h.lon + 0.0002:.7f}", f"{h.lat + 0.0002:.7f}")
    rows.append(
        {"text": f"{h.district}{h.road}99999号", "quality": "not_found", "at": h, "point": point}
    )
    rows.append({"text": f"{h.district}{h.road}88888号", "quality": "not_found", "at": h})
    rows.append({"text": "", "quality": "not_found", "at": None})
    return rows


def csv_bytes(rows: list[dict[str, Any]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for i, row in enumerate(rows, 1):
        lon, lat = row.get("point", ("", ""))
        writer.writerow([f"A{i:03d}", row["text"], lon, lat])
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[dict[str, Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    for i, row in enumerate(rows, 1):
        lon, lat = row.get("point", (None, None))
        sheet.append(
            [f"A{i:03d}", row["text"], float(lon) if lon else None, float(lat) if lat else None]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def run_report(
    client: TestClient, headers: dict[str, str], content: bytes, name: str = "list.csv"
) -> dict[str, Any]:
    made = client.post("/addresses/quality", files={"file": (name, content)}, headers=headers)
    assert made.status_code == 202, made.text
    assert made.headers["Location"] == made.json()["links"]["self"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = client.get(made.headers["Location"], headers=headers).json()
        if state["status"] in ("done", "failed"):
            assert state["status"] == "done", state
            return state
        time.sleep(0.1)
    raise AssertionError("the report did not finish in two minutes")


@pytest.fixture(scope="module")
def done(client: TestClient, dept: Dept, mixed: list[dict[str, Any]]) -> dict[str, Any]:
    return run_report(client, dept.viewer, csv_bytes(mixed))


def summary_of(client: TestClient, headers: dict[str, str], state: dict[str, Any]) -> Any:
    response = client.get(state["links"]["summary"], headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_mixed_list_gets_the_right_counts_and_areas(
    client: TestClient, dept: Dept, mixed: list[dict[str, Any]], done: dict[str, Any]
) -> None:
    expected = Counter(r["quality"] for r in mixed)
    assert done["rows"] == done["done"] == len(mixed)
    assert done["counts"] == {
        c: expected[c] for c in ("exact", "corrected", "ambiguous", "not_found")
    }
    summary = summary_of(client, dept.viewer, done)
    assert summary["counts"] == done["counts"] and summary["rows"] == len(mixed)
    by_district = {d["district"]: d for d in summary["by_district"]}
    by_subdistrict = {(d["district"], d["subdistrict"]): d for d in summary["by_subdistrict"]}
    assert sum(d["total"] for d in summary["by_district"]) == len(mixed)
    assert sum(d["total"] for d in summary["by_subdistrict"]) == len(mixed)
    for quality in ("exact", "corrected"):
        wanted = Counter(r["at"].district for r in mixed if r["quality"] == quality)
        for district, n in wanted.items():
            assert by_district[district][quality] == n
        areas = Counter(
            (r["at"].district, r["at"].subdistrict) for r in mixed if r["quality"] == quality
        )
        for key, n in areas.items():
            assert by_subdistrict[key][quality] == n
    # The road-level not-found rows count in the road's district; the empty cell in none.
    assert by_district[mixed[-2]["at"].district]["not_found"] == 2
    assert by_district[None]["not_found"] == 1


def test_the_worst_rows_come_first_with_their_reason(
    client: TestClient, dept: Dept, mixed: list[dict[str, Any]], done: dict[str, Any]
) -> None:
    worst = summary_of(client, dept.viewer, done)["worst"]
    qualities = [w["quality"] for w in worst]
    assert qualities == ["not_found"] * 3 + ["ambiguous"] + ["corrected"] * 2
    by_row = {w["row"]: w for w in worst}
    assert by_row[len(mixed)]["reason"] == "the address cell is empty"
    assert "the library knows only the road" in by_row[len(mixed) - 1]["reason"]
    assert "another place matches the text as well" in by_row[6]["reason"]
    assert "read " in by_row[4]["reason"] and " as " in by_row[4]["reason"]


def test_the_annotated_rows_download_as_csv_and_xlsx(
    client: TestClient, dept: Dept, mixed: list[dict[str, Any]], done: dict[str, Any]
) -> None:
    response = client.get(done["links"]["csv"], headers=dept.viewer)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    header = [*HEADER, *batch.MATCH_COLUMNS, *REPORT_COLUMNS]
    assert rows[0] == header
    assert [r[0] for r in rows[1:]] == [f"A{i:03d}" for i in range(1, len(mixed) + 1)]
    assert [r[header.index("quality")] for r in rows[1:]] == [r["quality"] for r in mixed]
    for row, want in zip(rows[1:], mixed, strict=True):
        if want["quality"] == "exact":
            assert row[header.index("code")] == want["at"].code
            assert row[header.index("reason")] == ""
    response = client.get(done["links"]["xlsx"], headers=dept.viewer)
    assert response.status_code == 200, response.text
    sheet = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True).worksheets[0]
    cells = list(sheet.iter_rows(values_only=True))
    assert list(cells[0]) == header
    assert len(cells) == len(mixed) + 1
    first = cells[1]
    assert first[header.index("score")] == 1.0  # a number, not the text "1.0"
    assert first[header.index("code")] == mixed[0]["at"].code  # text: leading digits kept


def test_the_workbook_is_made_after_the_report_without_a_download(
    client: TestClient, dept: Dept, mixed: list[dict[str, Any]]
) -> None:
    """At 1,000,000 rows the workbook takes about 100 s, longer than a proxy waits for a first
    download: the report's worker makes it once the report is done."""
    state = run_report(client, dept.viewer, csv_bytes(mixed))
    workbook = jobs.root() / state["id"] / downloads.XLSX
    deadline = time.monotonic() + 60
    while not workbook.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workbook.exists(), "no workbook a minute after the report was done"
    response = client.get(state["links"]["xlsx"], headers=dept.viewer)
    assert response.status_code == 200 and response.content == workbook.read_bytes()


def test_gb18030_and_xlsx_read_alike(
    client: TestClient, dept: Dept, mixed: list[dict[str, Any]], done: dict[str, Any]
) -> None:
    expected = summary_of(client, dept.viewer, done)
    for content, name in (
        (csv_bytes(mixed, "gb18030"), "list.csv"),
        (b"\xef\xbb\xbf" + csv_bytes(mixed), "list.csv"),
        (xlsx_bytes(mixed), "list.xlsx"),
    ):
        state = run_report(client, dept.viewer, content, name)
        summary = summary_of(client, dept.viewer, state)
        assert summary["counts"] == expected["counts"], name
        assert summary["by_subdistrict"] == expected["by_subdistrict"], name


def test_a_file_over_the_row_limit_is_refused_and_nothing_is_kept(
    client: TestClient, dept: Dept
) -> None:
    before = set(jobs.root().iterdir()) if jobs.root().is_dir() else set()
    content = "地址\n".encode() + "某路1号\n".encode() * (table.MAX_ROWS + 1)
    response = client.post(
        "/addresses/quality", files={"file": ("big.csv", content)}, headers=dept.viewer
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "TooManyRows"
    assert response.json()["details"] == {"limit": table.MAX_ROWS}
    assert set(jobs.root().iterdir()) == before


@pytest.mark.parametrize(
    ("content", "name", "query", "code"),
    [
        (b"", "list.csv", {}, "EmptyFile"),
        ("名称\n某路1号\n".encode(), "list.csv", {}, "MissingColumn"),
        ("地址\n某路1号\n".encode(), "list.csv", {"column": "住址"}, "MissingColumn"),
        ("地址\n".encode(), "list.csv", {}, "EmptyFile"),
        (b"PK\x03\x04 not a workbook", "list.xlsx", {}, "InvalidFile"),
        ("地址,经度\n某路1号,117.2\n".encode(), "list.csv", {}, "MissingColumn"),
    ],
)
def test_bad_files_get_a_400_naming_the_problem(
    client: TestClient, dept: Dept, content: bytes, name: str, query: dict[str, str], code: str
) -> None:
    before = set(jobs.root().iterdir()) if jobs.root().is_dir() else set()
    response = client.post(
        "/addresses/quality", params=query, files={"file": (name, content)}, headers=dept.viewer
    )
    assert response.status_code == 400 and response.json()["code"] == code, response.text
    assert set(jobs.root().iterdir()) == before


def test_another_department_cannot_read_the_report(
    client: TestClient, make_department, done: dict[str, Any]
) -> None:
    other = make_department()
    links = done["links"]
    for url in (links["self"], links["summary"], links["csv"], links["xlsx"]):
        response = client.get(url, headers=other.viewer)
        assert response.status_code == 404 and response.json()["code"] == "NotFound", url
    response = client.post(f"{links['self']}/proposals", json={}, headers=other.editor)
    assert response.status_code == 404
    assert client.get(links["self"]).status_code == 401
    assert client.get("/addresses/quality/" + "0" * 32, headers=other.viewer).status_code == 404


def test_not_found_rows_become_proposals_in_one_step(
    client: TestClient, dept: Dept, mixed: list[dict[str, Any]], done: dict[str, Any]
) -> None:
    url = f"{done['links']['self']}/proposals"
    assert client.post(url, json={}, headers=dept.viewer).status_code == 403
    made = client.post(url, json={"note": "质量报告"}, headers=dept.editor)
    assert made.status_code == 200, made.text
    answer = made.json()
    located = len(mixed) - 2
    assert (answer["proposed"], answer["skipped"], answer["remaining"]) == (1, 2, 0)
    assert [p["row"] for p in answer["proposals"]] == [located]
    reasons = {s["row"]: s["reason"] for s in answer["skipped_rows"]}
    assert reasons[located + 1].startswith("no location")
    assert reasons[located + 2].startswith("no location")
    proposal = client.get(
        f"/addresses/proposals/{answer['proposals'][0]['proposal']}", headers=dept.editor
    ).json()
    h = mixed[located - 1]["at"]
    assert (proposal["kind"], proposal["status"], proposal["note"]) == (
        "create",
        "pending",
        "质量报告",
    )
    assert proposal["fields"]["road"] == h.road and proposal["fields"]["house_number"] == "99999"
    assert proposal["department_code"] == dept.code

    # Again: nothing proposed twice. Then the department's fix: a point for a row without one.
    again = client.post(url, json={}, headers=dept.editor).json()
    assert again["proposed"] == 0
    assert any(s["reason"].startswith("proposed already") for s in again["skipped_rows"])
    fix = {
        "rows": [
            {"row": located + 1, "lon": h.lon, "lat": h.lat},
            {"row": 1, "lon": h.lon, "lat": h.lat},
        ]
    }
    fixed = client.post(url, json=fix, headers=dept.editor).json()
    assert [p["row"] for p in fixed["proposals"]] == [located + 1]
    assert fixed["skipped_rows"] == [{"row": 1, "reason": "not a not-found row of this report"}]
    outside = {"rows": [{"row": len(mixed), "lon": 121.47, "lat": 31.23}]}
    refused = client.post(url, json=outside, headers=dept.editor).json()
    assert refused["proposed"] == 0 and refused["skipped"] == 1


def test_a_report_whose_worker_died_reads_interrupted_and_expired_ones_go(
    client: TestClient, dept: Dept
) -> None:
    """The lock is the worker's: closed without finishing (a process gone), the report is
    failed, not running for ever; past its expiry, the sweep removes it."""
    folder, fd = jobs.create(dept.code, {"file": "x.csv", "column": "地址", "rows": 1})
    meta = jobs.read_meta(folder)
    assert jobs.state(folder)["status"] == "queued"  # the lock is held: still waiting
    os.close(fd)  # as the kernel does for a process that died
    jobs._waiting.release()  # this process's slot (a dead process's goes with it)
    state = jobs.state(folder)
    assert state["status"] == "failed" and state["error"]["code"] == "Interrupted"
    response = client.get(f"/addresses/quality/{folder.name}/summary", headers=dept.viewer)
    assert response.status_code == 409 and response.json()["code"] == "ReportNotReady"
    jobs.sweep(now=meta["expires"] + 1)
    assert not folder.exists()


def test_a_full_queue_is_a_429_and_keeps_nothing(
    client: TestClient, dept: Dept, mixed: list[dict[str, Any]]
) -> None:
    taken = 0
    while jobs._waiting.acquire(blocking=False):  # every slot busy, as with reports waiting
        taken += 1
    try:
        before = set(jobs.root().iterdir())
        response = client.post(
            "/addresses/quality",
            files={"file": ("list.csv", csv_bytes(mixed))},
            headers=dept.viewer,
        )
        assert response.status_code == 429 and response.json()["code"] == "TooManyReports"
        assert set(jobs.root().iterdir()) == before
    finally:
        for _ in range(taken):
            jobs._waiting.release()

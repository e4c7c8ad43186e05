"""The addresses page on the server side (issue 13): the page itself, reading an uploaded table
(UTF-8, UTF-8 with BOM, GB18030 CSVs and XLSX alike; the address column found or left for the
person to pick), each bad file refused with its code and nothing left behind, and the result
written as XLSX. The flow in a browser is tests/e2e/test_console_addresses.py (pytest needs
distinct basenames: tests/ has no __init__.py, hence this file's name)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

import openpyxl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from addressbook.geocoding import batch
from console import addresses
from geo import spool
from tests.address_library import HOUSES, ROOMS, Stored, fresh_names, load, pick
from tests.conftest import Dept
from tests.test_accounts import activate, create_account, new_browser

TABLE = "/console/addresses/table"
XLSX = "/console/addresses/xlsx"


@pytest.fixture(scope="module")
def stored(database_url: str) -> Iterator[list[Stored]]:
    load()
    from geo.db import session_scope

    with session_scope() as session:
        found = pick(session, ROOMS, n=3) + pick(session, HOUSES, n=2)
    with fresh_names():
        yield found


@pytest.fixture(scope="module")
def person(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
) -> tuple[TestClient, dict[str, str]]:
    """A signed-in viewer's browser and the CSRF header its writes carry."""
    browser = new_browser(app)
    viewer = create_account(client, admin_headers, make_department().code, role="viewer")
    _, token = activate(browser, viewer)
    return browser, {"X-CSRF-Token": token}


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding)


def read(
    person: tuple[TestClient, dict[str, str]], content: bytes, name: str = "in.csv"
) -> tuple[int, dict]:
    browser, headers = person
    r = browser.post(TABLE, files={"file": (name, content)}, headers=headers)
    return r.status_code, r.json()


def leftovers() -> list[str]:
    return [p.name for p in spool.root().glob("console-addresses-*")]


def test_the_page_chinese_first_english_on_request(
    person: tuple[TestClient, dict[str, str]], app: FastAPI
) -> None:
    browser, _ = person
    page = browser.get("/console/addresses")
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text and "批量地理编码" in page.text
    assert 'href="/console/addresses" aria-current="page">地址</a>' in page.text
    assert f"最多 {batch.MAX_ITEMS} 行" in page.text
    en = browser.get("/console/addresses?lang=en")
    assert '<html lang="en">' in en.text and "Batch geocoding" in en.text
    browser.get("/console/addresses?lang=zh-CN")
    signed_out = new_browser(app).get("/console/addresses", follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/console/login?next=%2Fconsole%2Faddresses"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_encodings_read_alike(
    person: tuple[TestClient, dict[str, str]], stored: list[Stored], encoding: str
) -> None:
    rows = [["编号", "地址", "score"]] + [
        [f"{i:03d}", a.full_address, "7"] for i, a in enumerate(stored)
    ]
    status, table = read(person, csv_bytes(rows, encoding))
    assert status == 200, table
    assert table["columns"] == ["编号", "地址", "score"]
    assert table["rows"] == rows[1:]  # codes keep their leading zeros: every cell is text
    assert table["address_column"] == "地址" and table["text_columns"] == ["地址"]
    assert table["encoding"] == {"utf-8-sig": "UTF-8"}.get(encoding, encoding.upper())
    # The batch API's names for its match columns beside these: its own score clashes.
    assert table["match_columns"][4] == "geocode_score"
    assert table["match_columns"][0] == "address_id"
    assert table["max_rows"] == batch.MAX_ITEMS


def test_xlsx_and_the_address_column_left_to_pick(
    person: tuple[TestClient, dict[str, str]], stored: list[Stored]
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["单位", "位置", "人数"])
    for a in stored:
        sheet.append(["社区服务中心", a.full_address, 12])
    sheet.append([None, None, None])  # a blank row is no row
    data = io.BytesIO()
    book.save(data)
    status, table = read(person, data.getvalue(), "units.xlsx")
    assert status == 200, table
    assert table["kind"] == "xlsx" and len(table["rows"]) == len(stored)
    assert table["rows"][0] == ["社区服务中心", stored[0].full_address, "12"]
    # Two text columns, neither named as an address: the person picks.
    assert table["text_columns"] == ["单位", "位置"] and table["address_column"] is None
    # One text column: that one.
    status, table = read(person, csv_bytes([["位置", "人数"], [stored[0].full_address, "3"]]))
    assert status == 200 and table["address_column"] == "位置"


@pytest.mark.parametrize(
    ("content", "name", "status", "code"),
    [
        (b"%PDF-1.4", "report.pdf", 415, "UnsupportedMediaType"),
        (b"", "empty.csv", 400, "EmptyFile"),
        (b"\r\n,,\r\n", "blank.csv", 400, "EmptyFile"),
        ("地址,备注\r\n".encode(), "header.csv", 400, "EmptyFile"),
        (b"id,count\r\n1,2\r\n2,3.5\r\n", "numbers.csv", 400, "NoAddressColumn"),
        ("地址\r\n天津市,多余\r\n".encode(), "wide.csv", 400, "InvalidFile"),
        (b"\x80\xff\x80\xff,x\r\n", "binary.csv", 400, "InvalidEncoding"),
        (b"PK\x03\x04 not a workbook", "fake.xlsx", 400, "InvalidFile"),
    ],
)
def test_bad_files_are_refused_and_leave_nothing(
    person: tuple[TestClient, dict[str, str]], content: bytes, name: str, status: int, code: str
) -> None:
    before = leftovers()
    got, answer = read(person, content, name)
    assert (got, answer["code"]) == (status, code), answer
    assert leftovers() == before


def test_a_workbook_sent_as_csv_is_named(person: tuple[TestClient, dict[str, str]]) -> None:
    data = io.BytesIO()
    openpyxl.Workbook().save(data)
    status, answer = read(person, data.getvalue(), "book.csv")
    assert (status, answer["code"]) == (400, "InvalidFile") and "xlsx" in answer["message"]


def test_more_rows_than_the_batch_api_takes(person: tuple[TestClient, dict[str, str]]) -> None:
    content = "地址\n".encode() + b"x\n" * (batch.MAX_ITEMS + 1)
    status, answer = read(person, content, "big.csv")
    assert (status, answer["code"]) == (413, "TooManyRows")
    assert answer["details"] == {"limit": batch.MAX_ITEMS}
    exactly = "地址\n".encode() + b"x\n" * batch.MAX_ITEMS
    status, table = read(person, exactly, "limit.csv")
    assert status == 200 and len(table["rows"]) == batch.MAX_ITEMS


def test_signed_in_with_the_csrf_token_only(
    person: tuple[TestClient, dict[str, str]], app: FastAPI
) -> None:
    browser, _ = person
    content = csv_bytes([["地址"], ["天津市"]])
    anonymous = new_browser(app).post(TABLE, files={"file": ("a.csv", content)})
    assert anonymous.status_code == 401
    no_token = browser.post(TABLE, files={"file": ("a.csv", content)})
    assert no_token.status_code == 403 and no_token.json()["code"].startswith("CsrfToken")


def test_the_result_as_xlsx(person: tuple[TestClient, dict[str, str]]) -> None:
    browser, headers = person
    content = csv_bytes(
        [
            ["编号", "地址", "score", "lon", "lat"],
            ["007", '=HYPERLINK("http://x")', "0.6", "117.2", "39.1"],
            ["008", "天津市河西区", "", "", ""],
        ],
        "utf-8-sig",
    )
    r = browser.post(
        XLSX,
        params={"numeric": "score,lon,lat"},
        files={"file": ("r.csv", content)},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == addresses.XLSX_TYPE
    assert 'filename="geocoded.xlsx"' in r.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("编号", "地址", "score", "lon", "lat")
    # Codes stay text, a cell starting with "=" is text (never a formula), numbers are numbers.
    assert rows[1] == ("007", '=HYPERLINK("http://x")', 0.6, 117.2, 39.1)
    assert sheet["B2"].data_type == "s"
    assert rows[2] == ("008", "天津市河西区", None, None, None)
    too_many = ",".join(f"c{i}" for i in range(addresses.MAX_NUMERIC + 1))
    refused = browser.post(
        XLSX, params={"numeric": too_many}, files={"file": ("r.csv", content)}, headers=headers
    )
    assert refused.status_code == 400


def test_read_rows_geocode_through_the_batch_api(
    person: tuple[TestClient, dict[str, str]], stored: list[Stored]
) -> None:
    """The page's path: the table read here, its address column sent to the batch API with the
    same session, one answer per row in order."""
    browser, headers = person
    rows = [["地址"]] + [[a.full_address] for a in stored]
    _, table = read(person, csv_bytes(rows, "gb18030"))
    texts = [row[0] for row in table["rows"]]
    r = browser.post("/addresses/geocode/batch?f=json", json=texts, headers=headers)
    assert r.status_code == 200, r.text
    assert [m["address_id"] for m in r.json()] == [a.id for a in stored]

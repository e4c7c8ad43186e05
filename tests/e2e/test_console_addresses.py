"""The addresses page in a real browser (issue 13): Debian's Chromium against `geo serve` with the
sample address library loaded. A department's editor searches as they type and sees the address
and its areas on the map, clicks the map for the nearest address, batch-geocodes a 2,000-row
GB18030 CSV (standard forms mixed with messy variants, so some rows are low-confidence), fixes
two of them (a candidate picked, a point placed on the map), downloads the result and checks the
fixed rows in the file, and saves it as a layer. Bad files get their Chinese message on the
page. Screenshots: tests/e2e/artifacts/console-addresses-*.png; axe-core on each state."""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bench.address_variants import Source, variants
from geo.db import session_scope
from tests.address_library import Stored, load, pick
from tests.conftest import ADMIN_KEY, Dept, bearer
from tests.e2e.test_console import (
    fill,
    no_serious_violations,
    shot,
    sign_in,
    text_of,
    wait_for,
    wait_text,
)
from tests.live_server import live_server
from tests.test_accounts import Person, activate, create_account, new_browser

ROWS = 2000
# Texts no library address answers confidently: the page must highlight them.
UNSURE = ("天津市星光大道888号", "河西区幸福小区", "天津市某某街道某某社区")


@pytest.fixture(scope="module")
def library(database_url: str) -> list[Stored]:
    load()
    with session_scope() as session:
        return pick(session, "true", n=1000)


@pytest.fixture(scope="module")
def server(library: list[Stored]) -> Iterator[str]:
    with live_server() as running:
        yield running.base


@pytest.fixture(scope="module")
def editor(
    app: FastAPI,
    client: TestClient,
    admin_headers: dict[str, str],
    make_department: Callable[..., Dept],
) -> Person:
    code = make_department().code
    person, _ = activate(new_browser(app), create_account(client, admin_headers, code, "editor"))
    return person


def gb18030_csv(path: Path, library: list[Stored]) -> Path:
    """2,000 rows: even rows a library address in its standard form, odd rows a messy variant
    (typos, missing levels, numerals, noise: bench/address_variants.py), a few unsure texts."""
    sources = [
        Source(
            a.id,
            a.district,
            a.subdistrict,
            a.road,
            a.house_number,
            a.compound,
            a.building,
            a.unit,
            a.room,
        )
        for a in library
    ]
    messy = variants(sources, lambda _district, _name: False, seed=13)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["编号", "地址", "备注"])
    for i in range(ROWS):
        if i % 400 == 7:
            text = UNSURE[(i // 400) % len(UNSURE)]
        elif i % 2:
            text = messy[i % len(messy)].text
        else:
            text = library[i % len(library)].full_address
        writer.writerow([f"{i + 1:05d}", text, f"第{i + 1}条"])
    path.write_bytes(out.getvalue().encode("gb18030"))
    return path


def click_map(driver: Any, dx: int, dy: int) -> None:
    """A real click on the map canvas, (dx, dy) pixels from its centre."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("css selector", "#addr-map canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, dx, dy).click().perform()


def cells(driver: Any, row: int) -> list[str]:
    return list(
        driver.execute_script(
            "return [...document.querySelector(`#batch-body tr[data-row='${arguments[0]}']`)"
            ".cells].map(c => c.innerText)",
            row,
        )
    )


def downloaded(folder: Path, name: str, timeout: float = 30) -> Path:
    path = folder / name
    deadline = time.monotonic() + timeout
    while not path.exists() or list(folder.glob("*.crdownload")):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not downloaded: {list(folder.iterdir())}")
        time.sleep(0.1)
    return path


def test_search_reverse_and_batch_geocoding_with_fixes(
    server: str, driver: Any, editor: Person, library: list[Stored], tmp_path: Path
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    sign_in(driver, server, editor, editor.password)
    wait_for(driver, "return location.pathname === '/console/layers'", what="signed in")
    driver.find_element("css selector", "nav a[href='/console/addresses']").click()
    wait_for(driver, "return location.pathname === '/console/addresses'", what="the page")
    assert driver.execute_script("return document.documentElement.lang") == "zh-CN"
    wait_for(driver, "return window.addressesMapReady", what="the map")

    # 1. Search as you type: a road's first characters, a suggestion picked, the address and
    # its areas on the map, each missing level with the API's reason.
    target = next(a for a in library if a.road and len(a.road) >= 3 and a.subdistrict)
    driver.find_element("id", "addr-q").send_keys(target.road[:2])
    wait_text(driver, "addr-suggestions", target.road[:2])
    driver.execute_script(
        "document.querySelector('#addr-suggestions li').dispatchEvent(new MouseEvent('mousedown'))"
    )
    wait_for(driver, "return window.addressesShown", what="the chosen address")
    drawn = wait_for(driver, "return window.addressesAreasDrawn", what="its areas drawn")
    assert "subdistrict" in drawn
    place = text_of(driver, "addr-place")
    assert "街道/镇" in place and "社区/村" in place and "网格" in place
    shown = driver.execute_script("return window.addressesShown")
    assert target.road[:2] in shown
    # The full address typed and entered: the library's own address, its district shown.
    fill(driver, {"addr-q": target.full_address})
    driver.execute_script("document.getElementById('search-form').requestSubmit()")
    wait_for(
        driver,
        f"return window.addressesShown === {target.full_address!r}",
        what="the typed address found",
    )
    wait_text(driver, "addr-place", target.district)
    shot(driver, "console-addresses-1-search.png")
    no_serious_violations(driver)

    # 2. A click on the map: the nearest address and the areas at that point.
    click_map(driver, 5, 25)  # beside the marker, which would take the click
    answer = wait_for(driver, "return window.addressesReverse", what="the reverse answer")
    assert answer["district"]["name"] == target.district
    reverse_text = text_of(driver, "reverse-result")
    assert "最近地址" in reverse_text and target.district in reverse_text

    # 3. Bad files: a Chinese message each, nothing read.
    file_input = driver.find_element("id", "batch-file")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4")
    file_input.send_keys(str(tmp_path / "report.pdf"))
    wait_text(driver, "batch-error", "不支持这种文件类型")
    (tmp_path / "numbers.csv").write_text("编号,人数\n1,2\n")
    file_input.send_keys(str(tmp_path / "numbers.csv"))
    wait_text(driver, "batch-error", "找不到地址列")
    (tmp_path / "empty.csv").write_bytes(b"")
    file_input.send_keys(str(tmp_path / "empty.csv"))
    wait_text(driver, "batch-error", "文件是空的")
    assert driver.execute_script("return document.getElementById('batch-start').disabled")
    # Two text columns, neither called an address: the person picks.
    (tmp_path / "two.csv").write_text(f"单位,位置\n社区中心,{target.full_address}\n")
    file_input.send_keys(str(tmp_path / "two.csv"))
    wait_text(driver, "batch-status", "请选择哪一列是地址")
    assert driver.execute_script("return document.getElementById('batch-start').disabled")
    fill(driver, {"batch-column": "位置"})
    assert not driver.execute_script("return document.getElementById('batch-start').disabled")

    # 4. The 2,000-row GB18030 CSV: read, geocoded with progress, low-confidence rows marked.
    file_input.send_keys(str(gb18030_csv(tmp_path / "居民地址.csv", library)))
    wait_text(driver, "batch-status", f"已读取 {ROWS} 行")
    assert driver.execute_script("return document.getElementById('batch-column').value") == "地址"
    driver.find_element("id", "batch-start").click()
    wait_for(driver, "return window.addressesBatch", timeout=120, what="the batch")
    progress = driver.execute_script("return window.addressesProgress")
    assert progress[0] == 0 and progress[-1] == ROWS and progress == sorted(progress)
    assert f"{ROWS} / {ROWS}" in text_of(driver, "batch-status")
    summary = text_of(driver, "batch-summary")
    assert f"完成：{ROWS} 行" in summary
    low = int(summary.split("低置信度 ")[1].split(" 行")[0])
    assert low >= len(UNSURE), summary
    driver.find_element("id", "batch-low-only").click()
    wait_text(driver, "batch-range", f"共 {low} 行")
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#batch-body tr.low')].map(t => +t.dataset.row)"
    )
    assert len(rows) == min(low, 50)
    driver.execute_script("document.getElementById('batch-summary').scrollIntoView()")
    shot(driver, "console-addresses-2-batch.png")
    no_serious_violations(driver)

    # 5. Fix one low row by picking a candidate: the first low row with a match has some.
    matched = [r for r in rows if "未匹配" not in cells(driver, r)[7]]
    by_candidate = matched[0]
    driver.execute_script(
        f"document.querySelector(\"#batch-body tr[data-row='{by_candidate}'] button.fix\").click()"
    )
    wait_text(driver, "fix-title", f"修正第 {by_candidate} 行")
    wait_for(driver, "return document.querySelector('#fix-candidates button')", what="candidates")
    picked = driver.execute_script(
        "return document.querySelector('#fix-candidates li').firstChild.textContent"
    )
    driver.execute_script("document.querySelector('#fix-candidates button').click()")
    wait_text(driver, "fix-status", f"第 {by_candidate} 行已修正")
    fixed = cells(driver, by_candidate)
    assert fixed[4 + 5] == "true" and picked.startswith(fixed[4 + 2])  # confident, standard

    # ...and another by clicking the map: level "manual" at the clicked point.
    by_hand = next(r for r in rows if r != by_candidate)
    driver.execute_script(
        f"document.querySelector(\"#batch-body tr[data-row='{by_hand}'] button.fix\").click()"
    )
    wait_text(driver, "fix-title", f"修正第 {by_hand} 行")
    driver.find_element("id", "fix-place").click()
    wait_text(driver, "fix-status", "请在地图上点击")
    click_map(driver, 40, -30)
    wait_text(driver, "fix-status", f"第 {by_hand} 行已修正")
    placed = cells(driver, by_hand)
    assert "manual" in placed[4 + 3] and placed[4 + 5] == "true"
    wait_text(driver, "batch-summary", "已修正 2 行")
    driver.execute_script("document.getElementById('batch-summary').scrollIntoView()")
    shot(driver, "console-addresses-3-fixed.png")
    no_serious_violations(driver)

    # 6. Downloads: the same columns plus the match columns, the fixed rows as fixed.
    driver.find_element("id", "download-csv").click()
    result = downloaded(downloads, "居民地址-geocoded.csv")
    out = list(csv.DictReader(io.StringIO(result.read_text(encoding="utf-8-sig"))))
    assert len(out) == ROWS
    assert list(out[0]) == [
        "编号",
        "地址",
        "备注",
        "address_id",
        "code",
        "standard",
        "level",
        "score",
        "confident",
        "lon",
        "lat",
    ]
    assert out[0]["编号"] == "00001" and out[0]["address_id"] == str(library[0].id)
    candidate_row, hand_row = out[by_candidate - 1], out[by_hand - 1]
    assert candidate_row["confident"] == "true" and candidate_row["address_id"] == fixed[4]
    assert candidate_row["standard"] == fixed[4 + 2]
    assert hand_row["level"] == "manual" and hand_row["confident"] == "true"
    assert hand_row["address_id"] == "" and hand_row["score"] == ""
    assert (hand_row["lon"], hand_row["lat"]) == (placed[4 + 6], placed[4 + 7])
    driver.find_element("id", "download-xlsx").click()
    book = openpyxl.load_workbook(downloaded(downloads, "居民地址-geocoded.xlsx"))
    sheet = book.active
    assert sheet is not None
    table = list(sheet.iter_rows(values_only=True))
    assert len(table) == ROWS + 1 and table[by_hand][6] == "manual"
    assert table[by_hand][9] == float(placed[4 + 6])

    # 7. Saved as a layer through the upload API: it exists, with every row that has a place.
    layer = "geocoded_" + secrets.token_hex(3)
    fill(driver, {"save-id": layer, "save-title": "居民地址"})
    with_place = sum(1 for r in out if r["lon"])
    driver.find_element("id", "save-submit").click()
    wait_text(driver, "save-status", f"已保存为图层 {layer}，共 {with_place} 个要素", timeout=120)
    items = httpx.get(
        f"{server}/collections/{layer}/items", params={"limit": 1}, headers=bearer(ADMIN_KEY)
    )
    assert items.status_code == 200 and items.json()["numberMatched"] == with_place
    driver.get(server + "/console/layers")
    wait_text(driver, "layers-body", layer)

    # English on request.
    driver.get(server + "/console/addresses?lang=en")
    wait_text(driver, "main", "Batch geocoding")
    no_serious_violations(driver)
    driver.get(server + "/console/addresses?lang=zh-CN")

"""Batch geocoding through the console beside the same file through the API, in one run on one
server (issue 13: "batch-geocode throughput through the console vs through the API").

The file: N rows (BENCH_CONSOLE_GEOCODE_ROWS, default 20,000) of library addresses, half in the
library's standard form and half as messy variants (bench/address_variants.py), as UTF-8 CSV
with an id, the address and a note (the API takes UTF-8 only, so both get these same bytes).

API: POST /addresses/geocode/batch with the file as multipart and an editor key, timed to the
last byte of the streamed CSV answer (what `curl -F file=@...` does).
Console: a signed-in editor on /console/addresses in Debian's headless Chromium (selenium and
chromedriver, as the e2e tests drive it; benchmarks import nothing from tests/), timed from
choosing the file to the result table shown: the file read by the console, the address column
sent to the same batch route as JSON in 10,000-row requests (NDJSON streamed back), the table,
its first page and the map's points drawn.

Both on `geo serve --workers 1` after one warm-up batch (the batch worker processes build their
dictionary once), taking turns for BENCH_CONSOLE_GEOCODE_ROUNDS rounds (default 3) so that the
machine's noise falls on both alike; medians reported, each round printed. The library: the
bench database's addresses when bench_addresses loaded them, else BENCH_CONSOLE_LIBRARY demo
addresses (default 200,000) through `geo addresses import`.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench import bench_address_import
from bench.address_variants import Source, standard, variants
from bench.common import BenchContext, console, running_server

ROWS = int(os.environ.get("BENCH_CONSOLE_GEOCODE_ROWS", "20000"))
ROUNDS = int(os.environ.get("BENCH_CONSOLE_GEOCODE_ROUNDS", "3"))
LIBRARY = int(os.environ.get("BENCH_CONSOLE_LIBRARY", "200000"))
SEED = 17
PASSWORD = "Haihe-Bridge-7th!"

_SOURCES = """
SELECT a.id, d.name, s.name, a.road, a.house_number, a.compound, a.building, a.unit, a.room
FROM addresses a
JOIN current_admin_areas d ON d.code = a.district_code
LEFT JOIN current_admin_areas s ON s.code = a.subdistrict_code
WHERE a.status = 'active'
ORDER BY md5(a.code) LIMIT :n
"""


def _library(ctx: BenchContext) -> None:
    from addressbook.ingest import demo
    from geo.db import session_scope

    with session_scope() as session:
        have = session.execute(text("SELECT count(*) FROM addresses")).scalar_one()
    if have >= min(LIBRARY, ROWS):
        console.print(f"{have:,} addresses in the bench database")
        return
    bench_address_import._prepare(ctx)
    path = ctx.root / "console-geocode-library.csv"
    with session_scope() as session:
        communities = demo.load_communities(session)
    demo.write_csv(path, communities, LIBRARY, SEED)
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from geo.cli import main; main()",
            "addresses",
            "import",
            str(path),
        ],
        env=ctx.env(),
        check=True,
        capture_output=True,
    )
    console.print(f"{LIBRARY:,} demo addresses imported in {time.perf_counter() - started:.1f} s")


def _file(ctx: BenchContext) -> Path:
    """The CSV both contenders geocode: standard forms and messy variants, alternating."""
    from geo.db import bulk_statement_timeout, session_scope

    with session_scope() as session:
        bulk_statement_timeout(session)  # the bench's set-up, not a request: a busy machine
        rows = session.execute(text(_SOURCES), {"n": ROWS}).tuples().all()
    sources = [Source(*row) for row in rows]
    texts = [
        v.text
        for pair in zip(
            standard(sources), variants(sources, lambda _d, _n: False, SEED), strict=True
        )
        for v in pair
    ]
    path = ctx.root / "console-geocode.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["编号", "地址", "备注"])
        for i in range(ROWS):
            writer.writerow([f"{i + 1:06d}", texts[i % len(texts)], f"第{i + 1}条"])
    return path


def _editor(base: str, ctx: BenchContext) -> tuple[str, str]:
    """A department with an editor key and an editor account whose password is set: (key,
    username)."""
    admin = {"Authorization": f"Bearer {ctx.admin_key}"}
    code = "bench-console-" + secrets.token_hex(3)
    with httpx.Client(base_url=base, timeout=60) as client:
        client.post("/departments", json={"name": "批量编码", "code": code}, headers=admin)
        key = client.post(f"/departments/{code}/keys", json={"role": "editor"}, headers=admin)
        account = client.post(
            f"/departments/{code}/accounts",
            json={"username": "u" + secrets.token_hex(4), "role": "editor"},
            headers=admin,
        ).json()
        login = client.post(
            "/auth/login",
            json={"username": account["username"], "password": account["temporary_password"]},
        ).json()
        changed = client.post(
            "/auth/password",
            json={"current_password": account["temporary_password"], "new_password": PASSWORD},
            headers={"X-CSRF-Token": login["csrf_token"]},
        )
        changed.raise_for_status()
    return key.json()["key"], account["username"]


def _api(base: str, key: str, path: Path) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=3600) as client:
        response = client.post(
            "/addresses/geocode/batch",
            files={"file": (path.name, path.read_bytes(), "text/csv")},
            headers={"Authorization": f"Bearer {key}"},
        )
    seconds = time.perf_counter() - started
    response.raise_for_status()
    lines = response.text.count("\n")
    if lines != ROWS + 1:
        raise RuntimeError(f"the API answered {lines} lines for {ROWS} rows")
    return seconds


@contextmanager
def _chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, with a software WebGL for MapLibre."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver: Any, script: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"timed out: {script}")


def _console(driver: Any, base: str, path: Path) -> float:
    """From choosing the file to the result table shown, on a freshly loaded page."""
    driver.get(base + "/console/addresses")
    _wait(driver, "return window.addressesMapReady")
    started = time.perf_counter()
    driver.find_element("id", "batch-file").send_keys(str(path))
    _wait(driver, "return window.addressesTableRead")
    driver.execute_script("document.getElementById('batch-start').click()")
    _wait(
        driver, "return window.addressesBatch && document.getElementById('batch-body').rows.length"
    )
    seconds = time.perf_counter() - started
    error = driver.execute_script("return document.getElementById('batch-error').innerText")
    if error:
        raise RuntimeError(f"the console said: {error}")
    return seconds


def run(ctx: BenchContext) -> None:
    _library(ctx)
    path = _file(ctx)
    with running_server(ctx, workers=1) as base, _chromium() as driver:
        key, username = _editor(base, ctx)
        driver.get(base + "/console/login")
        driver.find_element("id", "username").send_keys(username)
        driver.find_element("id", "password").send_keys(PASSWORD)
        driver.find_element("css selector", "#login-form button[type=submit]").click()
        _wait(driver, "return location.pathname === '/console/layers'", 60)
        _api(base, key, path)  # warm-up: the batch worker processes build their dictionary
        api, browser = [], []
        for n in range(ROUNDS):
            api.append(_api(base, key, path))
            browser.append(_console(driver, base, path))
            console.print(
                f"round {n + 1}: API {ROWS / api[-1]:,.0f} rows/s ({api[-1]:.2f} s), "
                f"console {ROWS / browser[-1]:,.0f} rows/s ({browser[-1]:.2f} s)"
            )
    ours, peer = statistics.median(browser), statistics.median(api)
    ctx.report(
        f"batch geocode of {ROWS:,} CSV rows through the console (file chosen to table shown), "
        f"median of {ROUNDS}",
        f"{ROWS / ours:,.0f} rows/s ({ours:.2f} s)",
        "the same file through POST /addresses/geocode/batch",
        f"{ROWS / peer:,.0f} rows/s ({peer:.2f} s)",
        f"console at {peer / ours:.0%} of the API's rate",
    )

"""Two of the console's figures (issue 13), each beside a peer from the same run on one server:

1. **First paint of /console on a cold cache.** Headless Chromium with a fresh profile per load
   (no HTTP cache, no service state), the person's session cookie set beforehand so /console
   opens their first page (303 to My layers) instead of sign-in; `first-contentful-paint` from
   the Performance API, measured from the navigation's start (the redirect included). Beside it
   the standalone viewer /map loaded the same way, anonymously (the page departments used
   before the console; its stylesheet and MapLibre are the heaviest assets the service serves),
   and the console's own map /console/map. Medians of BENCH_CONSOLE_PAINTS loads (default 7),
   taken in turn after one unmeasured round (the server's first requests).
2. **From choosing a 100,000-feature file in the new-layer form to seeing it on the map.** A
   signed-in editor on /console/layers types the layer's id and title and chooses the file
   (BENCH_CONSOLE_FEATURES octagons, default 100,000, one GeoJSON FeatureCollection, from
   bench.layers_data); when the form has a preview step (console/static/preview.js: choosing
   the file sends it to /upload/preview) the bench waits for the preview and clicks commit, as
   a person would; otherwise it submits the form. Then it opens the layer on the console's map
   (/console/map?layers=id) and stops when the map has settled with the layer's features drawn.
   Beside it: the same file uploaded by POST /collections/{id}/upload with the department's
   editor key (httpx, what `curl -F file=@...` does), timed to its 201. Taken in turn for
   BENCH_CONSOLE_ROUNDS rounds (default 2), medians reported, each round printed.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from typing import Any

import httpx

from bench.bench_console_geocode import PASSWORD, _chromium, _editor, _wait
from bench.common import BenchContext, console, running_server
from bench.layers_data import polygons_geojson

PAINTS = int(os.environ.get("BENCH_CONSOLE_PAINTS", "7"))
FEATURES = int(os.environ.get("BENCH_CONSOLE_FEATURES", "100000"))
ROUNDS = int(os.environ.get("BENCH_CONSOLE_ROUNDS", "2"))
FCP = (
    "const e = performance.getEntriesByName('first-contentful-paint')[0];"
    " return e ? e.startTime : null;"
)
# The viewer has loaded, is idle, and draws features of the layer (its own source layer).
DRAWN = (
    "const v = window.geoViewer; if (!(v && v.map && v.idle && v.map.loaded()"
    " && v.map.areTilesLoaded())) return 0;"
    " return v.map.queryRenderedFeatures().filter(f => f.sourceLayer === arguments[0]).length;"
)


def _session(base: str, username: str) -> str:
    """A session cookie of the editor's account, signed in by the API."""
    from geo.accounts.sessions import COOKIE

    with httpx.Client(base_url=base, timeout=60) as client:
        r = client.post("/auth/login", json={"username": username, "password": PASSWORD})
        r.raise_for_status()
        return str(r.cookies[COOKIE])


def _first_paint(base: str, path: str, cookie: str | None) -> float:
    """Milliseconds to the first contentful paint of `path` in a browser with a fresh profile."""
    from geo.accounts.sessions import COOKIE

    with _chromium() as driver:
        if cookie is not None:
            driver.execute_cdp_cmd(
                "Network.setCookie", {"name": COOKIE, "value": cookie, "url": base, "path": "/"}
            )
        driver.get(base + path)
        painted = float(_wait(driver, FCP, 60))
        landed = driver.execute_script("return location.pathname")
    if cookie is not None and landed.startswith("/console/login"):
        raise RuntimeError(f"{path} went to sign-in: the session cookie was not taken")
    return painted


def _api_upload(base: str, key: str, path: Any, layer: str) -> float:
    started = time.perf_counter()
    with path.open("rb") as f:
        r = httpx.post(
            f"{base}/collections/{layer}/upload",
            params={"mode": "create"},
            files={"file": (path.name, f, "application/geo+json")},
            headers={"Authorization": f"Bearer {key}"},
            timeout=1800,
        )
    seconds = time.perf_counter() - started
    if r.status_code != 201 or r.json()["features"] != FEATURES:
        raise RuntimeError(f"API upload: {r.status_code} {r.text[:300]}")
    return seconds


def _console_upload(driver: Any, base: str, path: Any, layer: str) -> dict[str, float]:
    """The form driven as a person would: seconds from choosing the file to the preview shown
    (when the form has one), to the commit's answer, and to the layer drawn on the map."""
    driver.get(base + "/console/layers")
    _wait(driver, "return document.readyState === 'complete'", 60)
    for element, value in (("upload-id", layer), ("upload-title", f"基准 {layer}")):
        driver.find_element("id", element).clear()
        driver.find_element("id", element).send_keys(value)
    has_preview = bool(driver.execute_script("return !!document.getElementById('preview-commit')"))
    times: dict[str, float] = {}
    started = time.perf_counter()
    driver.find_element("id", "upload-file").send_keys(str(path))
    if has_preview:
        _wait(
            driver,
            "const p = document.getElementById('preview'), c = "
            "document.getElementById('preview-commit'); return (p && !p.hidden && !c.disabled)"
            " || document.getElementById('upload-error').innerText;",
            1800,
        )
        times["preview"] = time.perf_counter() - started
        _refused(driver)
        driver.find_element("id", "preview-commit").click()
    else:
        driver.find_element("id", "upload-submit").click()
    # The page's own words for a commit of FEATURES features (its progress lines count them too).
    done = (
        "const m = JSON.parse(document.getElementById('messages').textContent);"
        f" const want = m.upload_done.replace('{{n}}', '{FEATURES}');"
        " return document.getElementById('upload-status').innerText.includes(want)"
        " || document.getElementById('upload-error').innerText;"
    )
    _wait(driver, done, 1800)
    _refused(driver)
    times["committed"] = time.perf_counter() - started
    driver.get(f"{base}/console/map?layers={layer}")
    drawn = 0
    deadline = time.monotonic() + 300
    while not drawn and time.monotonic() < deadline:
        drawn = int(driver.execute_script(DRAWN, layer) or 0)
        time.sleep(0.02)
    if not drawn:
        raise RuntimeError(f"{layer} not drawn on /console/map within 300 s")
    times["on the map"] = time.perf_counter() - started
    return times


def _refused(driver: Any) -> None:
    error = driver.execute_script("return document.getElementById('upload-error').innerText")
    if error:
        raise RuntimeError(f"the console said: {error}")


def run(ctx: BenchContext) -> None:
    path = ctx.root / f"console-{FEATURES}.geojson"
    polygons_geojson(path, FEATURES)
    console.print(f"{FEATURES:,} polygons, {path.stat().st_size / 1e6:.0f} MB")
    with running_server(ctx) as base:
        key, username = _editor(base, ctx)
        cookie = _session(base, username)
        paints: dict[str, list[float]] = {"/console": [], "/map": [], "/console/map": []}
        # One unmeasured round first: the browser's cache is cold on every load, the server's
        # first requests (templates compiled, connections opened) are not what is measured.
        for n in range(PAINTS + 1):
            for page in paints:
                painted = _first_paint(base, page, None if page == "/map" else cookie)
                if n:
                    paints[page].append(painted)
        for page, samples in paints.items():
            console.print(f"first paint {page}: " + ", ".join(f"{s:.0f}" for s in samples))
        ours, peer = statistics.median(paints["/console"]), statistics.median(paints["/map"])
        ctx.report(
            f"first contentful paint of /console, cold cache (fresh Chromium profile, signed "
            f"in: 303 to My layers), median of {PAINTS}",
            f"{ours:.0f} ms",
            "/map (standalone viewer, anonymous), same loads in turn",
            f"{peer:.0f} ms",
            f"{ours / peer:.2f}x; /console/map {statistics.median(paints['/console/map']):.0f} ms",
        )

        api: list[float] = []
        steps: list[dict[str, float]] = []
        with _chromium() as driver:
            driver.get(base + "/console/login")
            driver.find_element("id", "username").send_keys(username)
            driver.find_element("id", "password").send_keys(PASSWORD)
            driver.find_element("css selector", "#login-form button[type=submit]").click()
            _wait(driver, "return location.pathname === '/console/layers'", 60)
            for n in range(ROUNDS):
                tag = secrets.token_hex(3)
                api.append(_api_upload(base, key, path, f"bench_api_{n}_{tag}"))
                steps.append(_console_upload(driver, base, path, f"bench_console_{n}_{tag}"))
                console.print(
                    f"round {n + 1}: API {api[-1]:.1f} s; console "
                    + ", ".join(f"{what} {s:.1f} s" for what, s in steps[-1].items())
                )
    median = {what: statistics.median(s[what] for s in steps) for what in steps[0]}
    breakdown = ", ".join(f"{what} at {s:.1f} s" for what, s in median.items())
    ours, peer = median["on the map"], statistics.median(api)
    ctx.report(
        f"{FEATURES:,} polygons (GeoJSON, {path.stat().st_size / 1e6:.0f} MB): file chosen in "
        f"the console's new-layer form to the layer drawn on /console/map, median of {ROUNDS}",
        f"{ours:.1f} s ({breakdown})",
        "the same file by POST /collections/{id}/upload (httpx, editor key) to its 201",
        f"{peer:.1f} s",
        f"{ours / peer:.2f}x the API's time",
    )

"""The upload preview beside the upload it previews (issue 13): a BENCH_PREVIEW_FEATURES-polygon
GeoJSON (default 100,000, bench.layers_data) sent to POST /collections/{id}/upload/preview as
the console sends it (Accept: application/x-ndjson: a progress line per 10,000 features, then
the preview), and to POST /collections/{id}/upload (its 201), on one server, in turn for
BENCH_PREVIEW_ROUNDS rounds (default 3); medians. The preview reads and checks the whole file
as the upload does and writes nothing, so the upload is its natural baseline: what it saves is
the COPY, the index build and the commit. Also the time to the first progress line, which is
when the console's processing bar starts counting.
"""

from __future__ import annotations

import os
import statistics
import time

import httpx
import orjson

from bench.bench_layers_upload import _key
from bench.common import BenchContext, console, running_server
from bench.layers_data import polygons_geojson

N = int(os.environ.get("BENCH_PREVIEW_FEATURES", "100000"))
ROUNDS = int(os.environ.get("BENCH_PREVIEW_ROUNDS", "3"))


def run(ctx: BenchContext) -> None:
    path = ctx.root / f"polygons-{N}.geojson"
    polygons_geojson(path, N)
    body = path.read_bytes()
    key = _key(ctx)
    auth = {"Authorization": f"Bearer {key}"}
    previews: list[float] = []
    first_lines: list[float] = []
    uploads: list[float] = []
    with running_server(ctx, workers=1) as base, httpx.Client(base_url=base, timeout=600) as http:
        for round_ in range(ROUNDS):
            layer = f"bench_preview_{round_}"
            started = time.perf_counter()
            first = None
            lines = []
            with http.stream(
                "POST",
                f"/collections/{layer}/upload/preview",
                files={"file": (path.name, body, "application/geo+json")},
                headers={**auth, "Accept": "application/x-ndjson"},
            ) as r:
                r.raise_for_status()
                for line in r.iter_lines():
                    first = first or time.perf_counter() - started
                    lines.append(orjson.loads(line))
            previews.append(time.perf_counter() - started)
            first_lines.append(first or float("nan"))
            outcome = lines[-1]
            assert outcome["status"] == 200 and outcome["result"]["features"] == N, outcome
            started = time.perf_counter()
            r = http.post(
                f"/collections/{layer}/upload",
                files={"file": (path.name, body, "application/geo+json")},
                headers=auth,
            )
            uploads.append(time.perf_counter() - started)
            assert r.status_code == 201 and r.json()["features"] == N, r.text
            console.print(
                f"round {round_}: preview {previews[-1]:.2f} s (first progress line at "
                f"{first_lines[-1]:.2f} s), upload {uploads[-1]:.2f} s"
            )
    preview, upload, first_line = (
        statistics.median(previews),
        statistics.median(uploads),
        statistics.median(first_lines),
    )
    ctx.report(
        f"preview of {N:,} polygons (GeoJSON, {len(body) / 1e6:.0f} MB), median of {ROUNDS}",
        f"{preview:.2f} s (first progress line at {first_line:.2f} s)",
        "the upload of the same file (POST /collections/{id}/upload to its 201)",
        f"{upload:.2f} s",
        f"{preview / upload:.2f}x the upload's time",
    )

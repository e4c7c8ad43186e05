"""Working a quality report: the rows geocoded chunk by chunk (the batch geocode's own pipeline
and worker processes), each written out annotated as it is done, the counts kept as they go.

Memory stays flat whatever the file's size: the rows pass through, and what is kept is bounded
(counts per class and per area the library knows, the MAX_WORST worst rows). The not-found
rows are kept on the side (their text, location when the file has one, and areas) for the
one-step proposal (quality.propose).
"""

from __future__ import annotations

import csv
import heapq
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson

from addressbook.geocoding import batch, scoring
from addressbook.quality.classes import CLASSES, FLOOR, REPORT_COLUMNS, assess
from addressbook.quality.table import Table

MAX_WORST: Final = 100
ANNOTATED: Final = "annotated.csv"
NOT_FOUND: Final = "not_found.ndjson"
SUMMARY: Final = "summary.json"
# Worst first: not found, then ambiguous, then corrected; exact rows are never among them.
_RANK: Final = {"not_found": 0, "ambiguous": 1, "corrected": 2}


def _tally(counts: dict[Any, dict[str, int]], key: Any, quality: str) -> None:
    entry = counts.get(key)
    if entry is None:
        entry = counts[key] = {**dict.fromkeys(CLASSES, 0), "total": 0}
    entry[quality] += 1
    entry["total"] += 1


def _location(table: Table, row: list[str], crs: str) -> tuple[float, float, str] | None:
    if table.lon is None or table.lat is None:
        return None
    try:
        lon, lat = float(row[table.lon]), float(row[table.lat])
    except ValueError:
        return None
    return (lon, lat, crs) if math.isfinite(lon) and math.isfinite(lat) else None


def run(
    table: Table, folder: Path, crs: str, progress: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Write the annotated rows, the not-found rows and the summary into `folder`; the summary's
    counts, for the report's state."""
    counts = dict.fromkeys(CLASSES, 0)
    districts: dict[Any, dict[str, int]] = {}
    subdistricts: dict[Any, dict[str, int]] = {}
    worst: list[tuple[int, float, int, dict[str, Any]]] = []  # a heap, the best of the worst on top
    names = batch.CsvInput(table.header, table.address, iter(())).out_header
    done = 0
    with (
        (folder / ANNOTATED).open("w", encoding="utf-8", newline="") as out,
        (folder / NOT_FOUND).open("wb") as missing,
    ):
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*names, *REPORT_COLUMNS])
        chunks = batch.matched(table.read(), lambda row: row[table.address], None, crs, work=assess)
        for chunk, results in chunks:
            for row, result in zip(chunk, results, strict=True):
                done += 1
                quality = result["quality"]
                counts[quality] += 1
                _tally(districts, result["district"], quality)
                _tally(subdistricts, (result["district"], result["subdistrict"]), quality)
                writer.writerow(
                    [
                        *row,
                        *(batch._cell(result[c]) for c in batch.MATCH_COLUMNS),
                        quality,
                        result["reason"],
                    ]
                )
                if quality == "exact":
                    continue
                if quality == "not_found":
                    missing.write(
                        orjson.dumps(
                            {
                                "row": done,
                                "address": row[table.address],
                                "location": _location(table, row, crs),
                                "district": result["district"],
                                "subdistrict": result["subdistrict"],
                            }
                        )
                        + b"\n"
                    )
                key = (-_RANK[quality], -(result["score"] or 0.0), -done)
                entry = {
                    "row": done,
                    "address": row[table.address],
                    "quality": quality,
                    "reason": result["reason"],
                    "standard": result["standard"],
                    "score": result["score"],
                }
                if len(worst) < MAX_WORST:
                    heapq.heappush(worst, (*key, entry))
                elif key > worst[0][:3]:
                    heapq.heapreplace(worst, (*key, entry))
            progress({"done": done})
    summary = {
        "rows": done,
        "counts": counts,
        "by_district": [{"district": d, **c} for d, c in sorted(districts.items(), key=_by_total)],
        "by_subdistrict": [
            {"district": d, "subdistrict": s, **c}
            for (d, s), c in sorted(subdistricts.items(), key=_by_total)
        ],
        "worst": [entry for *_, entry in sorted(worst, reverse=True)],
        "rule": {"confident": scoring.CONFIDENT, "floor": FLOOR},
    }
    (folder / SUMMARY).write_bytes(orjson.dumps(summary))
    return {"counts": counts}


def _by_total(item: tuple[Any, dict[str, int]]) -> tuple[int, str]:
    return (-item[1]["total"], str(item[0]))

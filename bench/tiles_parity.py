"""Feature parity with tipg on z14+ tiles (bench_tiles): the same features, by name, inside each
tile's own extent."""

from __future__ import annotations

from typing import Any

import httpx

from bench.common import console

PARITY_SAMPLE = 60


def _names_inside(data: bytes) -> tuple[set[str], int]:
    """The names of the features inside the tile's own extent (not only in its buffer, which
    tipg does not fill), and how many features the tile holds in all."""
    import mapbox_vector_tile

    names: set[str] = set()
    total = 0
    for layer in mapbox_vector_tile.decode(data).values():
        extent = layer.get("extent", 4096)
        for feature in layer["features"]:
            total += 1
            xs, ys = zip(*_points(feature["geometry"]["coordinates"]), strict=True)
            if min(xs) <= extent and max(xs) >= 0 and min(ys) <= extent and max(ys) >= 0:
                names.add(feature["properties"]["name"])
    return names, total


def _points(nested: list[Any]) -> list[tuple[float, float]]:
    """The vertices of a decoded MVT geometry (a point, or lists of lists of them)."""
    if nested and isinstance(nested[0], int | float):
        return [(nested[0], nested[1])]
    return [point for part in nested for point in _points(part)]


def feature_parity(
    ours: str,
    tipg: str,
    tiles: list[tuple[str, int, int, int]],
    our_paths: list[str],
    tipg_paths: list[str],
    max_features: int,
) -> str:
    """Both serve the same features on z14+ tiles: the same names inside each tile, for tiles
    under the feature cap (a capped tile holds whichever `max_features` its index scan yields
    first, for us and for tipg alike, so capped tiles are counted but not compared). `our_paths`
    and `tipg_paths` are the two servers' paths of `tiles`, in the same order."""
    sample = [(t, a, b) for t, a, b in zip(tiles, our_paths, tipg_paths, strict=True) if t[1] >= 14]
    same, differ, capped = 0, [], 0
    with httpx.Client(timeout=120) as client:
        for tile, a, b in sample[:PARITY_SAMPLE]:
            mine, theirs = client.get(ours + a), client.get(tipg + b)
            names_mine, n_mine = _names_inside(mine.content if mine.status_code == 200 else b"")
            names_theirs, n_theirs = _names_inside(
                theirs.content if theirs.status_code == 200 else b""
            )
            if max_features in (n_mine, n_theirs):
                capped += 1
            elif names_mine == names_theirs:
                same += 1
            else:
                differ.append(f"{tile}: ours {len(names_mine)}, tipg {len(names_theirs)}")
    for line in differ:
        console.print(f"[red]  features differ on {line}[/red]")
    summary = (
        f"{same} of {same + len(differ)} z14+ tiles hold the same features as tipg "
        f"({capped} more capped at {max_features:,} in either, not compared)"
    )
    console.print(summary)
    return summary

"""`geo tiles ...`: offline packages from the server's console."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

app = typer.Typer(help="Vector tiles: offline packages (离线包)", no_args_is_help=True)
err = Console(stderr=True)


@app.command("export")
def export(
    layers: Annotated[str, typer.Argument(help="layer ids, comma-separated")],
    out: Annotated[Path, typer.Argument(help="the .pmtiles file to write")],
    zooms: Annotated[str, typer.Option(help="zoom range")] = "8-16",
    bbox: Annotated[
        str | None, typer.Option(help="minlon,minlat,maxlon,maxlat; default: the layers' extent")
    ] = None,
) -> None:
    """Write the layers' tiles to a PMTiles v3 archive (为政务内网导出离线包), as the platform
    administrator; refused over GEO_PMTILES_MAX_TILES tiles."""
    from geo.auth import PLATFORM, Principal
    from geo.errors import ApiError
    from tiles import pmtiles_export
    from tiles.service import parse_layer_ids

    admin = Principal(PLATFORM, "admin", "console")
    partial = out.with_name(out.name + ".partial")
    progress = Progress(
        TextColumn("导出瓦片 (tiles)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
    )
    try:
        ids = parse_layer_ids(layers)
        zoom_range = pmtiles_export.parse_zooms(zooms)
        area = pmtiles_export.parse_bbox(bbox) if bbox is not None else None
        with progress, partial.open("wb") as file:
            task = progress.add_task("tiles", total=None)
            summary = pmtiles_export.export_archive(
                admin,
                ids,
                zoom_range,
                area,
                file,
                on_start=lambda total: progress.update(task, total=total),
                on_tile=lambda: progress.advance(task),
            )
        partial.replace(out)
    except ApiError as error:
        partial.unlink(missing_ok=True)
        err.print(f"[red]导出失败 (export failed)[/red]：{error.message} [{error.code}]")
        raise typer.Exit(1) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    err.print(
        f"已写入 {out}：{summary.written} 个非空瓦片 / {summary.addressed} 个，"
        f"{summary.size / 1_048_576:.1f} MB (written: {summary.written} non-empty tiles of "
        f"{summary.addressed}, {summary.size} bytes)"
    )

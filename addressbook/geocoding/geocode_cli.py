"""`geo addresses geocode FILE`: the batch geocoder on a CSV file, with a progress bar.

The same code path as POST /addresses/geocode/batch (addressbook.geocoding.batch): the file is
checked first (UTF-8, the address column), then written out chunk by chunk with the match columns
added.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

err = Console(stderr=True)


def _rows(file: Path) -> int:
    """Data lines in the file (a quoted field with a line break makes it an estimate)."""
    with file.open("rb") as handle:
        return max(
            0, sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1
        )


def geocode_file(
    file: Path,
    column: Annotated[
        str | None, typer.Option(help="the address column (default: address, 地址...)")
    ] = None,
    area: Annotated[
        str | None, typer.Option(help="only inside this district/subdistrict/community code")
    ] = None,
    crs: Annotated[str, typer.Option(help="CRS of the lon/lat written out")] = "CRS84",
    out: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
) -> None:
    """Geocode the address column of a CSV file: the rows come back with address_id, code,
    standard, level, score, confident, lon, lat."""
    from addressbook.geocoding import batch
    from addressbook.geocoding.gazetteer import current
    from addressbook.geocoding.geocoder import area_filter
    from geo.db import session_scope

    with session_scope() as session:
        area_filter(current(session), area)  # an unknown area fails before any output
    columns = (
        TextColumn("geocoding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        file.open("rb") as stream,
        out.open("wb") if out else nullcontext(sys.stdout.buffer) as sink,
        Progress(*columns, console=err) as progress,
    ):
        source = batch.open_csv(stream, column)
        task = progress.add_task("rows", total=_rows(file))
        for chunk in batch.stream_csv(
            source, area, crs, lambda done: progress.update(task, completed=done)
        ):
            sink.write(chunk)

"""`geo areas`, `geo grids`, `geo addresses`, `geo places`, `geo demo`: the same functions the
API calls.

Console commands act as the platform administrator ("console" in the audit log).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from addressbook.geocoding.geocode_cli import geocode_file
from geo.auth import Principal
from geo.errors import ApiError

err = Console(stderr=True)
areas_app = typer.Typer(help="Admin areas (区/街道/社区) with code history", no_args_is_help=True)
grids_app = typer.Typer(help="Grids (网格)", no_args_is_help=True)
addresses_app = typer.Typer(help="The standard address library", no_args_is_help=True)
demo_app = typer.Typer(help="Generated demo data", no_args_is_help=True)
places_app = typer.Typer(help="Named places (地名 / 兴趣点)", no_args_is_help=True)

CONSOLE = Principal("platform", "admin", "console")
CrsOpt = Annotated[str, typer.Option("--crs", help="CRS of the coordinates in the file")]


def _session():
    from geo.db import bulk_session_scope

    return bulk_session_scope()


@contextmanager
def _reported() -> Iterator[None]:
    """An ApiError's details (the bad rows) on the console before `geo` prints its message."""
    try:
        yield
    except ApiError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        for error in (details.get("errors") or [])[:20]:
            err.print(f"  {json.dumps(error, ensure_ascii=False)}")
        raise


@areas_app.command("import")
def areas_import(
    divisions: Annotated[Path | None, typer.Option(help="divisions CSV (default: shipped)")] = None,
    townships: Annotated[
        Path | None, typer.Option(help="2023 township list (default: shipped)")
    ] = None,
    boundaries: Annotated[
        Path | None, typer.Option(help="district boundaries GeoJSON (default: shipped)")
    ] = None,
    crs: CrsOpt = "GCJ02",
) -> None:
    """Load (or replace) the admin areas, their code history and derived polygons."""
    from addressbook.areas import import_areas

    with _reported(), _session() as session:
        counts = import_areas.import_areas(
            session,
            divisions or import_areas.DIVISIONS,
            townships or import_areas.TOWNSHIPS,
            boundaries or import_areas.BOUNDARIES,
            crs,
        )
    err.print(f"[green]admin areas imported[/green]: {counts}")


@grids_app.command("import")
def grids_import(
    file: Path,
    crs: CrsOpt = "CRS84",
    source: Annotated[str | None, typer.Option(help="source name (default: file name)")] = None,
) -> None:
    """Load grids from GeoJSON (upsert by code; the source's vanished grids are removed)."""
    from addressbook.areas.import_grids import read_grid_file, save_grids

    with _reported(), file.open("rb") as stream, _session() as session:
        counts = save_grids(session, read_grid_file(stream, crs), source or file.name)
    err.print(f"[green]grids imported[/green]: {counts}")


def _import(file: Path, crs: str, skip_invalid: bool) -> None:
    from addressbook.ingest.importer import import_addresses

    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        reading = progress.add_task("reading the file", total=file.stat().st_size)

        def report(step: str, done: int, total: int | None) -> None:
            """The file's bytes as they stream in; then one line per finished SQL step."""
            if step == "reading":
                progress.update(reading, completed=done)
                return
            progress.update(reading, completed=progress.tasks[reading].total)
            progress.add_task(f"{step} done", total=1, completed=1)

        with _reported(), file.open("rb") as stream, _session() as session:
            result = import_addresses(
                session, stream, file.name, CONSOLE, crs, skip_invalid, report
            )
    summary = {k: v for k, v in result.as_dict().items() if k != "errors"}
    err.print(
        f"[green]addresses imported[/green]: {json.dumps(summary, ensure_ascii=False)}",
        soft_wrap=True,
    )
    for error in result.errors[:20]:
        err.print(f"  skipped {json.dumps(error, ensure_ascii=False)}")


@addresses_app.command("import")
def addresses_import(
    file: Path,
    crs: CrsOpt = "CRS84",
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="import the good rows, report the bad ones")
    ] = False,
) -> None:
    """Import addresses from CSV or GeoJSON (one transaction; bad rows reported by line)."""
    _import(file, crs, skip_invalid)


addresses_app.command("geocode")(geocode_file)


@places_app.command("import")
def places_import(
    file: Path,
    crs: CrsOpt = "CRS84",
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="import the good rows, report the bad ones")
    ] = False,
    source: Annotated[
        str | None, typer.Option(help="source name (default: file name); replaced on import")
    ] = None,
) -> None:
    """Import named places from CSV or GeoJSON (all or nothing; bad rows reported by line)."""
    from addressbook.places.read import read_places
    from addressbook.places.store import import_places

    with _reported(), file.open("rb") as stream, _session() as session:
        rows = read_places(stream, file.name)
        report = import_places(session, rows, source or file.name, CONSOLE, crs, skip_invalid)
    summary = {k: v for k, v in report.as_dict().items() if k != "errors"}
    shown = json.dumps(summary, ensure_ascii=False)
    err.print(f"[green]地名已导入 places imported[/green]: {shown}")
    for error in report.errors[:20]:
        err.print(f"  跳过 skipped {json.dumps(error, ensure_ascii=False)}")


@demo_app.command("addresses")
def demo_addresses(
    count: Annotated[int, typer.Option(min=1, help="how many addresses")] = 200_000,
    seed: Annotated[int, typer.Option(help="the same seed gives the same addresses")] = 1,
    out: Annotated[
        Path | None, typer.Option(help="write the import CSV here instead of loading it")
    ] = None,
) -> None:
    """Generate plausible addresses in the real communities; load them or write a CSV."""
    from addressbook.ingest import demo

    with _session() as session:
        communities = demo.load_communities(session)
    if out is not None:
        demo.write_csv(out, communities, count, seed)
        err.print(f"[green]{count} addresses written to {out}[/green]")
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "demo-addresses.csv"
        demo.write_csv(path, communities, count, seed)
        _import(path, "CRS84", False)


@demo_app.command("grids")
def demo_grids(
    seed: Annotated[int, typer.Option(help="the same seed gives the same staff")] = 1,
    out: Annotated[Path | None, typer.Option(help="write GeoJSON here instead of loading")] = None,
) -> None:
    """Cut every community into ~500 m grids; load them or write GeoJSON."""
    from addressbook.areas.import_grids import grids_payload, save_grids
    from addressbook.ingest import demo

    with _session() as session:
        frame = demo.generate_grids(demo.load_communities(session), seed)
        if out is None:
            counts = save_grids(session, frame, demo.GRID_SOURCE)
            err.print(f"[green]demo grids loaded[/green]: {counts}")
            return
    out.write_text(json.dumps(grids_payload(frame), ensure_ascii=False))
    err.print(f"[green]{len(frame)} grids written to {out}[/green]")


COMMANDS = {
    "areas": areas_app,
    "grids": grids_app,
    "addresses": addresses_app,
    "places": places_app,
    "demo": demo_app,
}

"""`geo layers ...`: the catalogue and uploads from the server's console."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Department thematic layers", no_args_is_help=True)


def _actor(department: str):
    from geo.auth import Principal

    return Principal(department, "admin", "console")


@app.command("list")
def list_layers() -> None:
    """Every layer: id, owner, access, geometry type, title."""
    from geo.db import session_scope
    from layers import catalogue

    with session_scope() as session:
        for layer in catalogue.readable_layers(session, _actor("platform")):
            typer.echo(
                f"{layer.id:<32} {layer.owner:<16} {layer.access:<8} {layer.geometry_type:<16} "
                f"{layer.title}"
            )


@app.command("upload")
def upload_file(
    file: Path,
    layer: Annotated[str, typer.Option(help="collection id")],
    department: Annotated[str, typer.Option(help="owning department code")],
    mode: Annotated[str, typer.Option(help="create | append | replace | upsert")] = "create",
    crs: Annotated[str | None, typer.Option(help="CRS of the file's coordinates")] = None,
    access: Annotated[str, typer.Option(help="public | shared | private")] = "private",
    title: Annotated[str | None, typer.Option()] = None,
    key_property: Annotated[str | None, typer.Option()] = None,
    make_valid: Annotated[bool, typer.Option()] = False,
    source_layer: Annotated[str | None, typer.Option(help="layer inside a GeoPackage/zip")] = None,
) -> None:
    """Load a file into a layer (as that department), printing the report as JSON."""
    from geo.db import session_scope
    from geo.departments import get_department
    from layers.ingest.pipeline import UploadOptions, upload

    if not file.is_file():
        raise typer.BadParameter(f"{file} is not a file")
    with session_scope() as session:
        get_department(session, department)
        report = upload(
            session,
            _actor(department),
            layer,
            file,
            file.name,
            UploadOptions(
                mode=mode,
                crs=crs,
                access=access,
                title=title,
                key_property=key_property,
                make_valid=make_valid,
                source_layer=source_layer,
            ),
            progress=lambda n: typer.echo(f"{n} features read", err=True),
        )
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))

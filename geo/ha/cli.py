"""`geo db ha`: the pg_auto_failover formation on one machine (geo.ha.cluster)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

err = Console(stderr=True)


def ha(
    monitor_port: Annotated[
        int | None, typer.Option(help="the monitor's port; free if unset")
    ] = None,
    node_ports: Annotated[
        str | None, typer.Option(help="the two nodes' ports, PORT1,PORT2; free if unset")
    ] = None,
    read_replica: Annotated[
        bool,
        typer.Option(
            "--read-replica",
            help="also a third node for reads only: never promoted, outside the write quorum",
        ),
    ] = False,
    replica_port: Annotated[
        int | None, typer.Option(help="the read replica's port; free if unset")
    ] = None,
) -> None:
    """Create (first time) and start a monitor and two synchronously replicating nodes under
    $GEO_DATA_DIR/ha (and a read replica with --read-replica), then print the URLs for
    DATABASE_URL (writes) and GEO_READ_URLS (reads)."""
    from geo.ha.cluster import HaError, HaFormation
    from geo.settings import get_settings

    ports = None
    if node_ports:
        try:
            ports = [int(p) for p in node_ports.split(",")]
        except ValueError:
            raise HaError(
                f"--node-ports {node_ports!r}: expected two numbers, PORT1,PORT2"
            ) from None
        if len(ports) != 2:
            raise HaError(f"--node-ports {node_ports!r}: expected two numbers, PORT1,PORT2")
    formation = HaFormation(get_settings().data_dir.resolve() / "ha")
    formation.create(monitor_port, ports, read_replica or replica_port is not None, replica_port)
    err.print(f"[green]高可用集群运行中[/green]：{formation.states()}")
    print(f"DATABASE_URL={formation.url()}")
    print(f"GEO_READ_URLS={formation.url(read=True)}")

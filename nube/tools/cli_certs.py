"""``nube certs``: a deployment's TLS certificates (mounted by ``nube.tools.cli``).

``nube certs create DIR --host ADDR [--host ADDR ...]`` writes a CA (reused when ``DIR`` has
one), a server certificate for those hosts and a client certificate (:mod:`nube.certs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nube.certs import DEFAULT_DAYS, CertsError, create

certs_app = typer.Typer(
    help="TLS certificates for Redis and RabbitMQ: a CA per deployment (see docs/security.md)",
    no_args_is_help=True,
)


@certs_app.command("create")
def create_cmd(
    directory: Annotated[Path, typer.Argument(help="Where the PEM files go (made if missing)")],
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="A host name or IP address clients reach Redis/RabbitMQ by (repeat for more)",
        ),
    ] = None,
    days: Annotated[int, typer.Option(help="Validity of the server and client certificates")] = (
        DEFAULT_DAYS
    ),
) -> None:
    """Make the CA (or reuse DIR's), a server certificate for the hosts and a client
    certificate; keys are mode 0600."""
    try:
        written = create(directory, host or [], days)
    except CertsError as e:
        typer.echo(f"nube certs: {e}", err=True)
        raise typer.Exit(2) from None
    for w in written:
        typer.echo(f"{'kept' if w.kept else 'wrote'} {w.path}  ({w.what})")

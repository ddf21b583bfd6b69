"""The ``nube`` command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from nube.redis_client import connect
from nube.settings import load_settings_or_exit
from nube.tokens import Scope, TokenStore
from nube.tools.cli_audit import audit_app
from nube.tools.cli_keys import keys_app
from nube.tools.client import ApiError, NubeClient

app = typer.Typer(help="nube: containers and VMs through a message broker.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="Manage bearer tokens (talks to Redis directly).", no_args_is_help=True
)
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
console = Console()


def _token_store() -> TokenStore:
    return TokenStore(connect(load_settings_or_exit()))


@tokens_app.command("create")
def tokens_create(
    tenant: Annotated[str, typer.Option(help="Tenant the token acts for")],
    scope: Annotated[
        list[Scope] | None, typer.Option(help="Scope, repeat for several (default read, write)")
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the token")] = "",
    secret: Annotated[
        str | None, typer.Option(help="Use this secret instead of a random one")
    ] = None,
) -> None:
    """Create a token; the secret is printed once."""
    scopes = scope or [Scope.READ, Scope.WRITE]
    token, info = _token_store().create(tenant, scopes, name, secret)
    console.print(f"[bold]{token}[/bold]", soft_wrap=True)
    console.print(
        f"id {info.id}, tenant {info.tenant}, scopes {', '.join(info.scopes)}", style="dim"
    )


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (never their secrets)."""
    table = Table("id", "tenant", "scopes", "name", "created")
    for t in _token_store().list():
        table.add_row(t.id, t.tenant, ",".join(t.scopes), t.name, t.created_at)
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by id."""
    _token_store().revoke(token_id)
    console.print(f"revoked {token_id}")


def _local_env(path: Path = Path(".nube/local.env")) -> dict[str, str]:
    """What `make up` wrote, as a fallback for variables not in the environment."""
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _client() -> NubeClient:
    env = {**_local_env(), **os.environ}
    url, token = env.get("NUBE_URL"), env.get("NUBE_TOKEN")
    if not url or not token:
        console.print(
            "set NUBE_URL and NUBE_TOKEN (see .nube/local.env after `make up`)", style="red"
        )
        raise typer.Exit(2)
    return NubeClient(url, token)


@app.command("call")
def call(
    method: str,
    path: str,
    body: Annotated[str | None, typer.Argument(help="JSON body")] = None,
    wait: Annotated[int, typer.Option(help="Seconds to wait for the job (0: return at once)")] = 60,
) -> None:
    """Call an operation, e.g. `nube call POST /v1/containers '{"image": "busybox"}'`."""
    payload: Any = json.loads(body) if body else None
    try:
        job = _client().submit(method.upper(), path, payload, wait=wait)
    except ApiError as e:
        console.print_json(data=e.problem)
        raise typer.Exit(1) from e
    console.print_json(data=job)


@app.command("job")
def job(job_id: str, wait: Annotated[int, typer.Option(help="Long-poll seconds")] = 0) -> None:
    """Show a job."""
    console.print_json(data=_client().job(job_id, wait=wait))


def main() -> None:
    app()


if __name__ == "__main__":
    main()

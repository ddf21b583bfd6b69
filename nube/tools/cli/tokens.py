"""``nube tokens create|list|revoke``: through the API (``/v1/tokens``, an admin token) when a
URL and token are configured, else (or with ``--redis``) in Redis itself, with nube's settings
(``NUBE_REDIS_URL``, ``NUBE_REDIS_PASSWORD``: the environment, then ``.nube/local.env``) — how
the first admin token of a deployment is made."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nube.tools.cli import render
from nube.tools.cli.catalog import JsonOpt
from nube.tools.cli.config import resolve, settings_environment
from nube.tools.cli.core import client, display, err, out, usage

if TYPE_CHECKING:
    from nube.tokens import TokenStore

tokens_app = typer.Typer(
    help="Bearer tokens: through the API as an admin, or with --redis in Redis itself",
    no_args_is_help=True,
)


class ScopeName(StrEnum):
    """Token scopes (:class:`nube.tokens.Scope`, not imported here: it brings redis)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


RedisOpt = Annotated[
    bool,
    typer.Option(
        "--redis", help="Use Redis directly (NUBE_REDIS_URL ...), not the API: the first token"
    ),
]


def _direct(redis: bool) -> bool:
    """Redis when asked, or when no URL and token are configured."""
    target = resolve()
    return redis or not (target.url and target.token)


def _store() -> TokenStore:
    from nube.redis_client import connect
    from nube.settings import load_settings
    from nube.tokens import TokenStore

    return TokenStore(connect(load_settings(settings_environment())))


@tokens_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the token acts for", show_default=False)],
    scope: Annotated[
        list[ScopeName] | None,
        typer.Option(help="Scope, repeat for several (default read, write)"),
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the token")] = "",
    secret: Annotated[
        str | None, typer.Option(help="Use this secret, not a random one (with --redis)")
    ] = None,
    redis: RedisOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; its secret is printed once, alone on stdout."""
    scopes = [s.value for s in scope or [ScopeName.READ, ScopeName.WRITE]]
    if _direct(redis):
        from nube.tokens import Scope

        token, info = _store().create(tenant, [Scope(s) for s in scopes], name, secret)
        made: dict[str, Any] = {**info.model_dump(mode="json"), "token": token}
    elif secret is not None:
        usage("--secret needs --redis: the API always makes a random secret")
    else:
        made = client().create_token(tenant, scopes, name)
    if as_json:
        return render.emit_json(made)
    print(made["token"], flush=True)
    err.print(
        f"id {made['id']}, tenant {made['tenant']}, scopes {', '.join(made['scopes'])}",
        style="dim",
    )


@tokens_app.command("list")
def list_(redis: RedisOpt = False, as_json: JsonOpt = False) -> None:
    """Every token (never a secret)."""
    if _direct(redis):
        tokens = [t.model_dump(mode="json") for t in _store().list()]
    else:
        tokens = client().tokens()
    if as_json:
        return render.emit_json({"tokens": tokens})
    display(render.table(tokens, ["id", "tenant", "scopes", "name", "created_at"]))


tokens_app.command("ls", hidden=True)(list_)


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id")], redis: RedisOpt = False
) -> None:
    """Revoke a token by id: requests that carry it are 401 from now on."""
    if _direct(redis):
        _store().revoke(token_id)
    else:
        client().revoke_token(token_id)
    out.print(f"revoked {token_id}")

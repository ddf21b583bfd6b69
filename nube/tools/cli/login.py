"""``nube login``, ``nube logout`` and ``nube config``: the config file (``$NUBE_CONFIG``, else
``~/.config/nube/config.toml``, mode 600) with the URL and token the commands use."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from nube.tools.cli.config import config_path, read_config, resolve, write_config
from nube.tools.cli.core import out, usage
from nube.tools.client import NubeClient


def login(
    url: Annotated[
        str | None,
        typer.Argument(help="The API, e.g. http://127.0.0.1:8080 (default: the one in use)"),
    ] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from stdin, not a prompt")
    ] = False,
    verify: Annotated[
        bool, typer.Option(help="Check the token against the API before saving it")
    ] = True,
) -> None:
    """Save the URL and a token in the config file (mode 600).

    The token is asked for (hidden), or read from stdin (--token-stdin, or stdin not a
    terminal). It is checked with one request first: refused (401) it is not saved, exit 1.
    """
    url = (url or resolve().url or "").strip()
    if not url:
        url = typer.prompt("nube URL").strip()
    if not url.startswith(("http://", "https://")):
        usage(f"URL: expected http:// or https://, got {url!r}")
    if token_stdin or not sys.stdin.isatty():
        token = sys.stdin.readline().strip()
    else:
        token = typer.prompt("token", hide_input=True).strip()
    if not token:
        usage("the token is empty")
    if verify:
        NubeClient(url, token, timeout=15).jobs(limit=1)  # 401/403 or unreachable: not saved
    path = config_path()
    write_config(path, {"url": url.rstrip("/"), "token": token})
    out.print(f"saved the URL and token for {url} in {path}", soft_wrap=True)


def logout() -> None:
    """Remove the token from the config file (the URL stays)."""
    path = config_path()
    kept = {k: v for k, v in read_config(path).items() if k != "token"}
    if path.exists():
        write_config(path, kept)
    out.print(f"removed the token from {path}", soft_wrap=True)


def config() -> None:
    """Show the URL and token the commands use, and where each comes from."""
    target = resolve()
    token = f"{target.token[:8]}... (from {target.token_from})" if target.token else "none"
    out.print(f"config file  {config_path()}", soft_wrap=True)
    out.print(f"url          {target.url or 'none'} (from {target.url_from})", soft_wrap=True)
    out.print(f"token        {token}", soft_wrap=True)

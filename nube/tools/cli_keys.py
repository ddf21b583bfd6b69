"""``nube keys``: generate and rotate the sealing keyring (mounted by ``nube.tools.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nube.errors import KeyringInvalid
from nube.sealing.keyring import Keyring, drop, generate_key, rotate, write_keyring

keys_app = typer.Typer(help="Sealing keys: generate, rotate, drop, list (see docs/security.md)")

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="Keyring file (kid:base64 lines)")]
KidOpt = Annotated[str | None, typer.Option("--kid", help="Key id (default: k<UTC time>)")]


def _load(path: Path) -> Keyring:
    try:
        return Keyring.from_files([path])
    except KeyringInvalid as e:
        typer.echo(f"nube keys: {e.message}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("generate")
def generate(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write a new keyring here")
    ] = None,
    kid: KidOpt = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file")] = False,
) -> None:
    """Make a new key; print it as one keyring line, or write a new keyring file (0600)."""
    key = generate_key(kid)
    if file is None:
        typer.echo(key.to_line())
        return
    if file.exists() and not force:
        typer.echo(f"nube keys: {file} exists; use 'nube keys rotate' (or --force)", err=True)
        raise typer.Exit(2)
    write_keyring(Keyring([key]), file)
    typer.echo(f"wrote {file} with key {key.kid}")


@keys_app.command("rotate")
def rotate_cmd(
    file: FileOpt,
    kid: KidOpt = None,
    keep: Annotated[int | None, typer.Option(help="Keep at most N keys (oldest dropped)")] = None,
) -> None:
    """Add a new sealing key in front; older keys stay and keep opening in-flight messages."""
    ring = _load(file)
    try:
        new = rotate(ring, kid=kid, keep=keep)
    except KeyringInvalid as e:
        typer.echo(f"nube keys: {e.message}", err=True)
        raise typer.Exit(2) from None
    write_keyring(new, file)
    typer.echo(f"sealing key is now {new.current.kid}; keys: {', '.join(new.kids)}")


@keys_app.command("drop")
def drop_cmd(file: FileOpt, kid: Annotated[str, typer.Argument(help="Key id to remove")]) -> None:
    """Remove an old key: messages and results sealed with it can no longer be opened."""
    try:
        new = drop(_load(file), kid)
    except KeyringInvalid as e:
        typer.echo(f"nube keys: {e.message}", err=True)
        raise typer.Exit(2) from None
    write_keyring(new, file)
    typer.echo(f"dropped {kid}; keys: {', '.join(new.kids)}")


@keys_app.command("list")
def list_cmd(file: FileOpt) -> None:
    """Show the key ids, the sealing key first (never the key bytes)."""
    ring = _load(file)
    for i, k in enumerate(ring.kids):
        typer.echo(f"{k}{'  (seals)' if i == 0 else ''}")

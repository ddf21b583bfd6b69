"""``nube run``, ``nube ps`` and ``nube images build``: the container commands written by hand
(the rest of ``containers`` and ``images`` is made from the catalog)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer

from nube.catalog import CATALOG
from nube.tools.cli import render
from nube.tools.cli.catalog import (
    JsonOpt,
    NoWaitOpt,
    exited,
    finish,
    pairs,
    perform,
    show_job,
)
from nube.tools.cli.core import display, usage

Repeat = list[str] | None


def run(
    image: Annotated[str, typer.Argument(help="Image, e.g. busybox:latest", show_default=False)],
    command: Annotated[
        Repeat, typer.Argument(help="Command and its arguments (all after IMAGE, or after --)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Container name")] = None,
    env: Annotated[Repeat, typer.Option("--env", "-e", help="KEY=VALUE, repeatable")] = None,
    label: Annotated[Repeat, typer.Option("--label", "-l", help="KEY=VALUE, repeatable")] = None,
    publish: Annotated[
        Repeat, typer.Option("--publish", "-p", help="[ip:][host:]container[/proto]")
    ] = None,
    volume: Annotated[
        Repeat, typer.Option("--volume", "-v", help="volume:/path[:ro], a named volume")
    ] = None,
    tmpfs: Annotated[Repeat, typer.Option(help="A tmpfs mount path, repeatable")] = None,
    network: Annotated[str | None, typer.Option(help="A network of yours, bridge or none")] = None,
    memory: Annotated[str | None, typer.Option("--memory", "-m", help="e.g. 64m, 1g")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs, e.g. 0.5")] = None,
    pids_limit: Annotated[int | None, typer.Option(help="Most processes")] = None,
    workdir: Annotated[str | None, typer.Option("--workdir", "-w")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="user[:group]")] = None,
    entrypoint: Annotated[str | None, typer.Option(help="Entrypoint (one word)")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start it and print its id; do not wait")
    ] = False,
    timeout: Annotated[
        int | None, typer.Option(help="Seconds it may run (default 240, at most 280)")
    ] = None,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Run a container and wait for it: print its output, exit with its exit code.

    The container is removed once it exited (unless --detach). Options go before IMAGE;
    everything after IMAGE is the command: nube run busybox:latest sh -c 'echo hi; exit 3'
    """
    argv = list(command or [])
    if argv[:1] == ["--"]:
        argv = argv[1:]
    given: dict[str, Any] = {
        "image": image,
        "command": argv or None,
        "name": name,
        "env": pairs(env, "--env") if env else None,
        "labels": pairs(label, "--label") if label else None,
        "ports": publish or None,
        "volumes": volume or None,
        "tmpfs": tmpfs or None,
        "network": network,
        "memory": memory,
        "cpus": cpus,
        "pids_limit": pids_limit,
        "working_dir": workdir,
        "user": user,
        "entrypoint": [entrypoint] if entrypoint else None,
        "detach": detach or None,
        "wait_timeout": timeout,
    }
    raw = {k: v for k, v in given.items() if v is not None}
    result = perform(CATALOG.get("containers.run"), raw, no_wait=no_wait)
    if no_wait:
        return show_job(result, as_json)
    if detach:
        return render.show(result, as_json=as_json) if as_json else print(result["id"])
    exited(result, as_json)


def ps(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Stopped containers too")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Your containers (running ones; --all: every one)."""
    result = perform(CATALOG.get("containers.list"), {"all": all_})
    if as_json:
        return render.emit_json(result)
    columns = ["id", "name", "image", "state", "status"]
    display(render.table(result["containers"], columns))


def build(
    context: Annotated[
        Path, typer.Argument(help="The build context: a directory", show_default=True)
    ] = Path("."),
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="name[:tag] of the image")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Dockerfile (default CONTEXT/Dockerfile)")
    ] = None,
    build_arg: Annotated[Repeat, typer.Option("--build-arg", help="KEY=VALUE")] = None,
    label: Annotated[Repeat, typer.Option("--label", "-l", help="KEY=VALUE")] = None,
    pull: Annotated[bool, typer.Option(help="Pull newer base images")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache")] = False,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Build an image from a Dockerfile and the files of CONTEXT (sent in the request, at most
    16 MiB): a progress bar of its steps on a terminal, then one line."""
    if not context.is_dir():
        usage(f"CONTEXT: {context} is not a directory")
    dockerfile = file or context / "Dockerfile"
    try:
        text = dockerfile.read_text()
    except (OSError, UnicodeDecodeError) as e:
        usage(f"--file: cannot read {dockerfile}: {getattr(e, 'strerror', None) or e}")
    files = {
        path.relative_to(context).as_posix(): base64.b64encode(path.read_bytes()).decode()
        for path in sorted(context.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
    given: dict[str, Any] = {
        "dockerfile": text,
        "files": files,
        "tag": tag,
        "build_args": pairs(build_arg, "--build-arg") if build_arg else None,
        "labels": pairs(label, "--label") if label else None,
        "pull": pull or None,
        "nocache": no_cache or None,
    }
    raw = {k: v for k, v in given.items() if v is not None}
    op = CATALOG.get("containers.image_build")
    result = perform(op, raw, no_wait=no_wait, progress="build")
    if no_wait:
        return show_job(result, as_json)
    finish(op, result, as_json, None)

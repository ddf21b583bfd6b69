"""A fake build: a Dockerfile's instructions applied to an in-memory image.

``FROM``, ``COPY``/``ADD`` (from the context files), ``RUN`` (with :mod:`.programs`), ``CMD``,
``ENTRYPOINT``, ``WORKDIR``, ``USER``, ``ENV``, ``LABEL``, ``EXPOSE`` and ``ARG``. A failing
step is ``InvalidRequest`` with the build's message, as the Docker driver reports it.
"""

from __future__ import annotations

import base64
import json
import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nube.catalog.container_models import ImageBuild
from nube.errors import InvalidRequest
from workers.drivers.base import JobContext
from workers.drivers.fake.common import now_iso
from workers.drivers.fake.container_store import FakeImage, image_id
from workers.drivers.fake.programs import FileSystem, NotExecutable, run


@dataclass
class Built:
    image: FakeImage
    log: str


@dataclass
class _Build:
    params: ImageBuild
    image: FakeImage
    args: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def build(params: ImageBuild, base_image: Callable[[str], FakeImage], ctx: JobContext) -> Built:
    """Run the Dockerfile; ``base_image`` resolves ``FROM`` (or raises)."""
    steps = _instructions(params.dockerfile)
    if not steps or steps[0][0] != "FROM":
        raise InvalidRequest("the build failed: no build stage in current context")
    state: _Build | None = None
    for number, (keyword, rest) in enumerate(steps, start=1):
        ctx.report_progress({"phase": "build", "step": number, "steps": len(steps)})
        if state is None:
            state = _Build(params, _from(base_image(rest.split()[0])))
        state.log.append(f"Step {number}/{len(steps)} : {keyword} {rest}")
        if number > 1:
            _apply(state, keyword, rest)
        state.log.append(f" ---> {image_id()[7:19]}")
    assert state is not None
    image = state.image
    image.id, image.tags = image_id(), [params.tag] if params.tag else []
    state.log.append(f"Successfully built {image.id[7:19]}")
    state.log += [f"Successfully tagged {t}" for t in image.tags]
    return Built(image, "\n".join(state.log) + "\n")


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = dockerfile.replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    steps = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            steps.append((keyword.upper(), rest.strip()))
    return steps


def _from(base: FakeImage) -> FakeImage:
    return FakeImage(
        id=base.id,
        tags=[],
        labels=dict(base.labels),
        config=json.loads(json.dumps(base.config)),
        files=dict(base.files),
        history=list(base.history),
    )


def _apply(state: _Build, keyword: str, rest: str) -> None:
    handler = _HANDLERS.get(keyword)
    if handler is None:
        raise InvalidRequest(f"the build failed: unknown instruction: {keyword}")
    handler(state, rest)
    created_by = f"/bin/sh -c {rest}" if keyword == "RUN" else f"/bin/sh -c #(nop) {keyword} {rest}"
    state.image.history.append({"created": now_iso(), "created_by": created_by, "size": 0})


def _run(state: _Build, rest: str) -> None:
    image = state.image
    env = dict(e.partition("=")[::2] for e in image.config.get("Env") or []) | state.args
    fs = FileSystem(image.files, image.files)
    try:
        outcome = run(_command(rest), fs, env, image.config.get("WorkingDir") or "/")
    except NotExecutable:
        outcome = None
    code = 127 if outcome is None else (outcome.exit_code or 0)
    output = b"" if outcome is None else outcome.stdout + outcome.stderr
    if output:
        state.log.append(output.decode(errors="replace").rstrip("\n"))
    if code:
        raise InvalidRequest(
            f"the build failed: The command '/bin/sh -c {rest}' returned a non-zero code: {code}"
        )


def _copy(state: _Build, rest: str) -> None:
    *sources, target = shlex.split(rest)
    for source in sources:
        data = _context_file(state.params, source)
        to_dir = target.endswith("/") or len(sources) > 1
        path = posixpath.join(target, posixpath.basename(source)) if to_dir else target
        workdir = state.image.config.get("WorkingDir") or "/"
        state.image.files[posixpath.normpath(posixpath.join(workdir, path))] = data


def _context_file(params: ImageBuild, source: str) -> bytes:
    if source == "Dockerfile":
        return params.dockerfile.encode()
    if source not in params.files:
        raise InvalidRequest(
            "the build failed: COPY failed: file not found in build context or excluded by "
            f".dockerignore: stat {source}: file does not exist"
        )
    return base64.b64decode(params.files[source])


def _command(rest: str) -> list[str]:
    """Exec form (a JSON array) or shell form."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", rest]


def _set(key: str) -> Callable[[_Build, str], None]:
    def handler(state: _Build, rest: str) -> None:
        state.image.config[key] = _command(rest) if key in ("Cmd", "Entrypoint") else rest

    return handler


def _pairs(rest: str) -> dict[str, str]:
    """``k=v k2="v 2"`` or the old ``k v`` form."""
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.partition("=")[::2] for w in words)


def _env(state: _Build, rest: str) -> None:
    env = dict(e.partition("=")[::2] for e in state.image.config.get("Env") or [])
    env |= _pairs(rest)
    state.image.config["Env"] = [f"{k}={v}" for k, v in env.items()]


def _label(state: _Build, rest: str) -> None:
    state.image.labels |= _pairs(rest)


def _expose(state: _Build, rest: str) -> None:
    ports: dict[str, Any] = state.image.config.setdefault("ExposedPorts", {})
    for port in rest.split():
        ports[port if "/" in port else f"{port}/tcp"] = {}


def _arg(state: _Build, rest: str) -> None:
    name, _, default = rest.partition("=")
    state.args[name] = state.params.build_args.get(name, default)


_HANDLERS: dict[str, Callable[[_Build, str], None]] = {
    "RUN": _run,
    "COPY": _copy,
    "ADD": _copy,
    "CMD": _set("Cmd"),
    "ENTRYPOINT": _set("Entrypoint"),
    "WORKDIR": _set("WorkingDir"),
    "USER": _set("User"),
    "ENV": _env,
    "LABEL": _label,
    "EXPOSE": _expose,
    "ARG": _arg,
}

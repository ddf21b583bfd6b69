"""Commands made from the operation catalog: one per operation, grouped by resource.

An operation's path segments (``<id>``, ``<name>`` ...) and its other required scalar fields
are arguments, in that order; a ``command`` list is the trailing arguments; every other field is
an option named after it (``memory_mib`` → ``--memory-mib``; booleans ``--x/--no-x``; lists
repeat; maps repeat as ``KEY=VALUE``; nested objects take ``key=value,...`` or JSON; fields
carrying an archive take a file). Only what is given is sent: the API applies the defaults.
Every command takes ``--json`` and ``--no-wait``; changes also ``--body FILE`` (a JSON object
of parameters, under the options).
"""

from __future__ import annotations

import base64
import inspect
import json
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Union, get_args, get_origin
from urllib.parse import quote

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from nube.catalog import CATALOG, Operation
from nube.tools.cli import render
from nube.tools.cli.core import client, err, out, stdout_text, usage

#: The command groups made from the catalog, and their help.
GROUPS: dict[str, str] = {
    "containers": "Containers: create, inspect, start, stop, exec, logs, remove ...",
    "images": "Images: pull, build, push, tag, inspect, remove, save, load",
    "networks": "Container networks (user bridges)",
    "volumes": "Container volumes: create, inspect, remove, backup, restore",
    "vm": "Virtual machines: define, start, stop (shutdown), destroy, snapshots ...",
    "vm-networks": "Virtual networks of the VM nodes",
    "pools": "Storage pools of the VM nodes",
    "vm-volumes": "Storage volumes of a pool",
}

#: Extra names: (group, alias) → the command it stands for.
ALIASES = {
    **{(g, "ls"): "list" for g in ("containers", "images", "networks", "volumes", "vm")},
    **{(g, "rm"): "remove" for g in ("containers", "images", "networks", "volumes")},
    ("vm", "stop"): "shutdown",
    ("vm", "rm"): "undefine",
    **{(g, "ls"): "list" for g in ("vm-networks", "pools", "vm-volumes")},
    **{(g, "rm"): "undefine" for g in ("vm-networks", "pools")},
    ("vm-volumes", "rm"): "delete",
}

#: Aliases listed in the help (and completed); the others are just accepted.
SHOWN_ALIASES = {("vm", "stop")}

#: Operations whose job reports progress: drawn as a bar on a terminal.
PROGRESS = {"containers.image_pull": "pull", "containers.image_push": "push"}
#: Operations whose result carries an archive (base64, in the named field) that ``--output``
#: writes.
ARCHIVES = {
    "containers.image_save": "archive",
    "containers.volume_backup": "archive",
    "vms.volume_download": "content",
}
#: Operations with a command of their own (``nube run``, ``nube images build``).
HANDWRITTEN = {"containers.run", "containers.image_build"}


#: Action prefixes that put an operation in a group of its own, by service.
PREFIXES = {
    "containers": [("image_", "images"), ("network_", "networks"), ("volume_", "volumes")],
    "vms": [("pool_", "pools"), ("network_", "vm-networks"), ("volume_", "vm-volumes")],
}


def place(op: Operation) -> tuple[str, str]:
    """The group and command name of an operation."""
    action = op.action
    if action == "hypervisor_info":
        return "vm", "hypervisor"
    for prefix, group in PREFIXES[op.service]:
        if action.startswith(prefix):
            return group, _name(action.removeprefix(prefix))
    return ("containers" if op.service == "containers" else "vm"), _name(action)


def _name(action: str) -> str:
    return action.replace("_", "-")


# --- parameters ----------------------------------------------------------------------------------

Kind = Literal["scalar", "flag", "list", "map", "object", "objects", "file"]


@dataclass(frozen=True)
class Param:
    """One field of an operation as a command-line parameter."""

    field: str
    kind: Kind
    positional: bool
    required: bool
    annotation: Any
    help: str


def _bare(annotation: Any) -> Any:
    """The type without ``Optional`` and ``Annotated``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return str
            annotation = rest[0]
        else:
            return annotation


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _takes_text(model: Any) -> bool:
    """A model with a short text form (``8080:80/tcp``, ``data:/data:ro``)."""
    return _is_model(model) and "_short_form" in model.__pydantic_decorators__.model_validators


OBJECT_HELP = "key=value,... or a JSON object"


def param_of(op: Operation, name: str, info: FieldInfo, in_path: bool) -> Param:
    t = _bare(info.annotation)
    origin, args = get_origin(t), get_args(t)
    help_text = info.description or ""
    required = info.is_required()
    if name in op.binary and t is str:
        return Param(name, "file", True, required, str, help_text or "A file ('-': stdin)")
    if t is bool:
        return Param(name, "flag", False, False, bool, help_text)
    if origin is list:
        item = _bare(args[0]) if args else str
        if _is_model(item) and not _takes_text(item):
            return Param(name, "objects", False, False, list[str], help_text or OBJECT_HELP)
        variadic = name == "command"
        return Param(name, "list", variadic, variadic and required, list[str], help_text)
    if origin is dict:
        return Param(name, "map", False, False, list[str], help_text or "KEY=VALUE, repeatable")
    if _is_model(t):
        return Param(name, "object", False, False, str, help_text or OBJECT_HELP)
    scalar = t if t in (int, float) or get_origin(t) is Literal else str
    positional = in_path or required
    return Param(name, "scalar", positional, positional, scalar, help_text)


def params_of(op: Operation) -> list[Param]:
    """Path fields first (in path order), then the model's fields."""
    path_fields = re.findall(r"<(\w+)>", op.path)
    fields = op.params.model_fields
    ordered = path_fields + [f for f in fields if f not in path_fields]
    made = [param_of(op, f, fields[f], f in path_fields) for f in ordered]
    return [p for p in made if p.positional] + [p for p in made if not p.positional]


def _parameter(p: Param) -> inspect.Parameter:
    flag = "--" + p.field.replace("_", "-")
    if p.positional:
        info = typer.Argument(help=p.help, metavar=p.field.upper(), show_default=False)
        annotation: Any = p.annotation if p.required else p.annotation | None
    elif p.kind == "flag":
        info = typer.Option(f"{flag}/--no-{flag[2:]}", help=p.help, show_default=False)
        annotation = bool | None
    else:
        info = typer.Option(flag, help=p.help, show_default=False)
        annotation = p.annotation | None
    default = inspect.Parameter.empty if p.required else None
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(p.field, kind, default=default, annotation=Annotated[annotation, info])


def _common(op: Operation) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    made = [
        inspect.Parameter("as_json", kw, default=False, annotation=JsonOpt),
        inspect.Parameter("no_wait", kw, default=False, annotation=NoWaitOpt),
    ]
    if op.method != "GET":
        made.append(inspect.Parameter("body", kw, default=None, annotation=BodyOpt))
    if op.name in ARCHIVES:
        made.append(inspect.Parameter("output", kw, default=None, annotation=OutputOpt))
    return made


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts)")]
NoWaitOpt = Annotated[
    bool, typer.Option("--no-wait", help="Print the job at once instead of waiting for it")
]
BodyOpt = Annotated[
    Path | None,
    typer.Option("--body", help="A JSON file of parameters ('-': stdin); options override it"),
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the archive to this file ('-': stdout)")
]


# --- values --------------------------------------------------------------------------------------


def pairs(values: list[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` texts as a map."""
    made = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            usage(f"{what}: expected KEY=VALUE, got {value!r}")
        made[key] = rest
    return made


def an_object(value: str, what: str) -> Any:
    """``key=value,...`` or a JSON object."""
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError as e:
            usage(f"{what}: not JSON: {e}")
    return pairs([part for part in value.split(",") if part], what)


def read_file(path: Path, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as e:
        usage(f"{what}: cannot read {path}: {e.strerror or e}")


def collect(spec: list[Param], values: dict[str, Any], body: Path | None) -> dict[str, Any]:
    """The operation's raw parameters from the command line (what was given only)."""
    raw: dict[str, Any] = {}
    if body is not None:
        loaded = _json_file(body)
        raw.update(loaded)
    for p in spec:
        value = values.get(p.field)
        if value is None or (p.kind in ("list", "map", "objects") and not value):
            continue
        what = "--" + p.field.replace("_", "-")
        if p.kind == "map":
            value = pairs(value, what)
        elif p.kind == "object":
            value = an_object(value, what)
        elif p.kind == "objects":
            value = [an_object(v, what) for v in value]
        elif p.kind == "file":
            value = base64.b64encode(read_file(Path(value), p.field.upper())).decode()
        raw[p.field] = value
    return raw


def _json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_file(path, "--body"))
    except ValueError as e:
        usage(f"--body: not JSON: {e}")
    if not isinstance(data, dict):
        usage("--body: expected a JSON object")
    return data


def check(op: Operation, raw: dict[str, Any]) -> None:
    """Validate as the API will: a bad value is a usage error (2) before anything is sent."""
    try:
        op.params.model_validate(raw)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "parameters"
        usage(f"{field}: {first['msg']}")


def path_of(op: Operation, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The request path with its segments filled, and the rest of the parameters."""
    rest = dict(raw)
    path = re.sub(r"<(\w+)>", lambda m: quote(str(rest.pop(m[1])), safe=""), op.path)
    return path, rest


def query(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as a query string: booleans as ``true``/``false``."""
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}


# --- running -------------------------------------------------------------------------------------


def perform(
    op: Operation,
    raw: dict[str, Any],
    *,
    no_wait: bool = False,
    progress: str | None = None,
) -> Any:
    """Send the operation; return its result once its job ended (its problem raises), or the
    job itself with ``no_wait``."""
    check(op, raw)
    path, rest = path_of(op, raw)
    api = client()
    body, params = (None, query(rest)) if op.method == "GET" else (rest, None)
    if no_wait:
        return api.submit(op.method, path, body, params=params, wait=0)
    if progress and render.err.is_terminal:
        job = api.submit(op.method, path, body, params=params, wait=0)
        what = f"{progress} {raw.get(op.target or '', '')}".strip()
        return api.outcome(render.follow_progress(api, job, what))
    with render.waiting(f"{op.summary.split(';')[0]} ..."):
        return api.run(op.method, path, body, params=params)


def show_job(job: dict[str, Any], as_json: bool) -> None:
    """A job submitted with ``--no-wait``."""
    if as_json:
        render.emit_json(job)
    else:
        out.print(f"{job['id']}  {job['status']}", soft_wrap=True)


#: The one line that ends a pull, push or build on a terminal (``--json``: the whole result).
SUMMARY: dict[str, Callable[[dict[str, Any]], str]] = {
    "containers.image_pull": lambda r: f"pulled {render.cell(r.get('tags'))} ({_short(r)})",
    "containers.image_push": lambda r: f"pushed {r.get('reference')} ({r.get('digest')})",
    "containers.image_build": lambda r: f"built {_short(r)} ({render.cell(r.get('tags'))})",
}


def _short(result: dict[str, Any]) -> str:
    return render.cell(result.get("id"), short=True)


def finish(op: Operation, result: Any, as_json: bool, output: Path | None) -> None:
    """Show an operation's result: raw text for logs and XML, the archive to ``--output``, one
    line for a pull, push or build."""
    field = ARCHIVES.get(op.name, "")
    if field and isinstance(result, dict) and field in result:
        data = base64.b64decode(result.pop(field))
        if output is None:
            usage("the result is an archive: give --output FILE (or -o - for stdout)")
        if str(output) == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        output.write_bytes(data)
        result["written"] = str(output)
    if not as_json and isinstance(result, dict):
        if op.name == "containers.logs":
            return stdout_text(str(result.get("logs", "")))
        if op.name == "vms.xml":
            return stdout_text(str(result.get("xml", "")) + "\n")
        if op.name == "vms.console":
            return stdout_text("".join(f"{line}\n" for line in result.get("lines") or []))
        if op.name in SUMMARY:
            return out.print(SUMMARY[op.name](result), soft_wrap=True)
    render.show(result, as_json=as_json)


def exited(result: dict[str, Any], as_json: bool) -> NoReturn:
    """A container that ran to its end: its output as it wrote it (stdout, then stderr), and
    its exit code as ours."""
    if as_json:
        render.emit_json(result)
    else:
        sys.stdout.write(str(result.get("stdout", "")))
        sys.stdout.flush()
        sys.stderr.write(str(result.get("stderr", "")))
        if result.get("truncated"):
            err.print("nube: the output was cut to its last 1 MiB", style="dim")
    raise typer.Exit(int(result.get("exit_code", 0)))


def make_command(op: Operation) -> Callable[..., None]:
    spec = params_of(op)

    def command(**values: Any) -> None:
        as_json, no_wait = values.pop("as_json"), values.pop("no_wait")
        body, output = values.pop("body", None), values.pop("output", None)
        raw = collect(spec, values, body)
        result = perform(op, raw, no_wait=no_wait, progress=PROGRESS.get(op.name))
        if no_wait:
            return show_job(result, as_json)
        if op.name == "containers.exec":
            exited(result, as_json)
        finish(op, result, as_json, output)

    parameters = [_parameter(p) for p in spec] + _common(op)
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__doc__ = f"{op.summary}.\n\n{op.method} {op.path}"
    return command


def register(groups: dict[str, typer.Typer]) -> None:
    """Add a command for each catalog operation (and its aliases) to ``groups``."""
    made: dict[tuple[str, str], Callable[..., None]] = {}
    for op in CATALOG:
        if op.name in HANDWRITTEN:
            continue
        group, name = place(op)
        fn = make_command(op)
        made[group, name] = fn
        variadic = any(p.kind == "list" and p.positional for p in params_of(op))
        settings = {"allow_interspersed_args": False} if variadic else {}
        groups[group].command(name, context_settings=settings)(fn)
    for (group, alias), target in ALIASES.items():
        if (group, target) in made:
            hidden = (group, alias) not in SHOWN_ALIASES
            groups[group].command(alias, hidden=hidden)(made[group, target])

"""How results are shown: JSON for scripts (``--json``), rich tables for people, and the
progress bar of pulls, pushes and builds drawn from the job's ``progress``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from nube.tools.cli.core import display, err, out
from nube.tools.client import ENDED, NubeClient

#: Columns shown first when a list's items have them.
PREFERRED = [
    "id",
    "name",
    "image",
    "tags",
    "operation",
    "status",
    "state",
    "tenant",
    "scopes",
    "target",
    "driver",
    "mode",
    "subnet",
    "memory_mib",
    "vcpus",
    "node",
    "size",
    "created",
    "created_at",
    "submitted_at",
]
MAX_COLUMNS = 7
_LONG_ID = re.compile(r"^(sha256:)?([0-9a-f]{64})$")


def emit_json(data: Any) -> None:
    """``data`` as indented JSON on stdout, nothing else (for scripts)."""
    print(json.dumps(data, indent=2))


def show(data: Any, *, as_json: bool) -> None:
    """A result: JSON, or a table of its list, or a key/value table."""
    if as_json:
        emit_json(data)
    elif isinstance(data, dict):
        listed = [k for k, v in data.items() if isinstance(v, list) and _records(v)]
        if len(listed) == 1:
            rest = {k: v for k, v in data.items() if k != listed[0]}
            if rest:
                display(key_values(rest))
            display(table(data[listed[0]]))
        elif len(data) == 1 and isinstance(next(iter(data.values())), list):
            for item in next(iter(data.values())):
                out.print(cell(item), soft_wrap=True)
        else:
            display(key_values(data))
    elif isinstance(data, list) and _records(data):
        display(table(data))
    else:
        out.print(cell(data), soft_wrap=True)


def _records(items: list[Any]) -> bool:
    return all(isinstance(item, dict) for item in items)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> Table:
    """A table of ``rows``; columns: the given ones, else the scalar ones (preferred first)."""
    columns = columns or pick_columns(rows)
    grid = Table(box=None, pad_edge=False)
    for c in columns:
        grid.add_column(c.upper().replace("_", " "), no_wrap=c in ("id", "name"))
    for row in rows:
        grid.add_row(*[_column_cell(c, row.get(c)) for c in columns])
    return grid


def _column_cell(column: str, value: Any) -> str:
    return size(value) if column == "size" else cell(value, short=column == "id")


def pick_columns(rows: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    simple = [k for k in keys if all(_simple(row.get(k)) for row in rows)]
    ordered = [k for k in PREFERRED if k in simple] + [k for k in simple if k not in PREFERRED]
    return ordered[:MAX_COLUMNS] or keys[:MAX_COLUMNS]


def _simple(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) <= 4 and all(not isinstance(v, dict | list) for v in value)
    return not isinstance(value, dict)


def key_values(data: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in data.items():
        grid.add_row(key, cell(value))
    return grid


def cell(value: Any, short: bool = False) -> str:
    """One value as text: ``-`` for none, lists joined, objects as compact JSON, long ids cut
    to 12 characters in lists (``short``)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    text = str(value)
    match = _LONG_ID.match(text) if short else None
    return match[2][:12] if match else text


def size(n: Any) -> str:
    """Bytes as ``1.2 MB``."""
    if not isinstance(n, int | float):
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


@contextmanager
def waiting(what: str) -> Iterator[None]:
    """A spinner on stderr while waiting, when stderr is a terminal."""
    with err.status(what) if err.is_terminal else nullcontext():
        yield


def follow_progress(client: NubeClient, job: dict[str, Any], what: str) -> dict[str, Any]:
    """Follow ``job``'s events stream to its end, drawing its ``progress`` (``current`` and
    ``total`` bytes of a pull or push, ``step`` of ``steps`` of a build) as a bar on stderr;
    returns the ended job."""
    if job["status"] in ENDED:
        return job
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(what, total=None, detail="queued")
        for _, current in client.events(job["id"]):
            _advance(bar, task, current)
            job = current
    return job


def _advance(bar: Progress, task: Any, job: dict[str, Any]) -> None:
    progress = job.get("progress") or {}
    status = job["status"]
    if "steps" in progress:  # a build: Step n/N
        steps, step = int(progress["steps"]), int(progress["step"])
        if status == "succeeded":
            step = steps
        bar.update(task, total=steps, completed=step, detail=f"step {step}/{steps}")
    elif "layers" in progress:  # a pull or push: its layers, and their bytes where known
        total, current = int(progress.get("total") or 0), int(progress.get("current") or 0)
        finished = bool(progress.get("done")) or status == "succeeded"
        detail = f"{progress.get('layers_done', 0)}/{progress['layers']} layers"
        if total:
            detail += f" {size(total if finished else current)}/{size(total)}"
        total = total or 1
        done = total if finished else min(current, total)
        bar.update(task, total=total, completed=done, detail=detail)
    elif status == "succeeded":
        bar.update(task, total=1, completed=1, detail="done")
    else:
        bar.update(task, detail=status)
    if status in ("failed", "cancelled"):
        bar.update(task, detail=status)
        bar.stop_task(task)

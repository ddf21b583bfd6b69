"""``nube jobs ls|get|wait|cancel|watch``, and the older ``nube call`` and ``nube job``."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

import typer
from rich.text import Text

from nube.tools.cli import render
from nube.tools.cli.catalog import JsonOpt
from nube.tools.cli.core import FAILED, TIMED_OUT, client, display, fail, out
from nube.tools.client import ENDED, ApiError

jobs_app = typer.Typer(help="Jobs: list, show, wait for, cancel, watch live", no_args_is_help=True)

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobId = Annotated[str, typer.Argument(help="The job's id", show_default=False)]
LIST_COLUMNS = ["id", "operation", "status", "target", "submitted_at", "finished_at"]
SHOWN = [
    "id",
    "operation",
    "status",
    "target",
    "node",
    "attempts",
    "submitted_at",
    "started_at",
    "finished_at",
    "progress",
    "waiting",
    "error",
    "result",
]


@jobs_app.command("ls")
def ls(
    status: Annotated[Status | None, typer.Option(help="Only jobs in this state")] = None,
    operation: Annotated[str | None, typer.Option(help="Only this operation")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many")] = 20,
    cursor: Annotated[int | None, typer.Option(help="Continue after this cursor")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Your jobs, newest first."""
    page = client().jobs(status=status, operation=operation, limit=limit, cursor=cursor)
    if as_json:
        return render.emit_json(page)
    display(render.table(page["jobs"], LIST_COLUMNS))
    if page.get("next_cursor") is not None:
        render.err.print(f"more: --cursor {page['next_cursor']}", style="dim")


jobs_app.command("list", hidden=True)(ls)


def show_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        return render.emit_json(job)
    view = {k: job.get(k) for k in SHOWN if job.get(k) is not None}
    if job.get("error"):
        view["error"] = f"{job['error']['code']}: {job['error']['message']}"
    if "result" in view:
        text = json.dumps(view["result"], separators=(",", ":"))
        view["result"] = text if len(text) <= 400 else text[:400] + " ... (--json: all of it)"
    display(render.key_values(view))


def ended(job: dict[str, Any]) -> None:
    """Exit as the job ended: 0 succeeded; else its error as one line and 1."""
    if job["status"] == "succeeded":
        return
    error = job.get("error") or {"code": job["status"], "message": f"the job was {job['status']}"}
    fail(f"{error['code']}: {error['message']}", FAILED)


@jobs_app.command("get")
def get(job_id: JobId, as_json: JsonOpt = False) -> None:
    """Show a job (its result too, cut; --json: whole)."""
    show_job(client().job(job_id), as_json)


@jobs_app.command("wait")
def wait(
    job_id: JobId,
    timeout: Annotated[
        int | None, typer.Option(min=1, help="Give up after this many seconds (exit 124)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait until a job ends; show it, exit 0 if it succeeded, 1 if not."""
    api = client()
    deadline = None if timeout is None else time.monotonic() + timeout
    job = api.job(job_id)
    with render.waiting(f"waiting for job {job_id} ..."):
        while job["status"] not in ENDED:
            left = 60 if deadline is None else int(deadline - time.monotonic())
            if left <= 0:
                show_job(job, as_json)
                fail(f"job {job_id} is still {job['status']} after {timeout} s", TIMED_OUT)
            job = api.job(job_id, wait=min(60, left))
    show_job(job, as_json)
    ended(job)


@jobs_app.command("cancel")
def cancel(job_id: JobId, as_json: JsonOpt = False) -> None:
    """Cancel a queued job (a running or ended one cannot be: conflict, exit 1)."""
    job = client().cancel(job_id)
    if as_json:
        return render.emit_json(job)
    out.print(f"{job['id']}  {job['status']}", soft_wrap=True)


@jobs_app.command("watch")
def watch(
    job_id: JobId,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line: {event, job}")
    ] = False,
) -> None:
    """Follow a job live (its events stream) until it ends: one line an event; exit 0 if it
    succeeded, 1 if not."""
    seen = 0
    job: dict[str, Any] = {}
    for event, job in client().events(job_id):
        if as_json:
            print(json.dumps({"event": event, "job": job}), flush=True)
            continue
        history = job.get("history") or []
        for entry in history[seen:]:
            out.print(_line(entry, job), soft_wrap=True)
        seen = max(seen, len(history))
    if not as_json and job.get("status") == "succeeded":
        out.print(f"result: {render.cell(job.get('result'))[:400]}", soft_wrap=True)
    ended(job)


def _line(entry: dict[str, Any], job: dict[str, Any]) -> Text:
    at = str(entry.get("at", ""))[11:23]
    name = str(entry.get("event", ""))
    detail = entry.get("detail") or ""
    if name == "progress":
        detail = _progress(job.get("progress") or {})
    style = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(name, "")
    return Text.assemble((at, "dim"), "  ", (f"{name:<10}", style), " ", str(detail))


def _progress(p: dict[str, Any]) -> str:
    if "steps" in p:
        return f"{p.get('phase', '')} step {p['step']}/{p['steps']}"
    if p.get("total"):
        done = f"{p.get('layers_done', 0)}/{p.get('layers', 0)} layers"
        moved = f"{render.size(p.get('current'))}/{render.size(p['total'])}"
        return f"{p.get('phase', '')} {moved} {done}"
    return " ".join(f"{k}={v}" for k, v in p.items())


# --- the first commands, kept ---------------------------------------------------------------


def call(
    method: Annotated[str, typer.Argument(help="GET, POST, DELETE ...")],
    path: Annotated[str, typer.Argument(help="e.g. /v1/containers")],
    body: Annotated[str | None, typer.Argument(help="JSON body")] = None,
    wait: Annotated[int, typer.Option(help="Seconds to wait for the job (0: return at once)")] = 60,
) -> None:
    """Call an operation and print its job as JSON, e.g.
    nube call POST /v1/containers '{"image": "busybox"}'."""
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError as e:
        fail(f"BODY: not JSON: {e}", 2)
    try:
        job = client().submit(method.upper(), path, payload, wait=wait)
    except ApiError as e:
        out.print_json(data=e.problem)
        raise
    out.print_json(data=job)


def job(job_id: JobId, wait: Annotated[int, typer.Option(help="Long-poll seconds")] = 0) -> None:
    """Show a job as JSON (see also nube jobs)."""
    out.print_json(data=client().job(job_id, wait=wait))

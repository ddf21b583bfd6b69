"""``/v1/jobs``: read, list, long-poll, follow and cancel jobs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context
from pydantic import Field

from api.auth import current_token, require
from api.representation import SERVED_MAX_AGE, job_body, job_response
from api.routedoc import Answer, documented
from api.services import services
from api.waiting import requested_wait
from nube.catalog import Params
from nube.errors import Conflict
from nube.jobs import JobStatus

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


class JobQuery(Params):
    status: JobStatus | None = None
    operation: str | None = Field(default=None, max_length=100)
    limit: int = Field(default=50, ge=1, le=500)
    cursor: int | None = Field(default=None, ge=0)


@bp.get("")
@documented("jobs.list", query=JobQuery)
@require("read")
def list_jobs() -> Response:
    """The caller's jobs, newest first, with a cursor to the next page."""
    query = JobQuery.model_validate(request.args.to_dict())
    svc = services()
    jobs, cursor = svc.jobs.list(
        current_token().tenant,
        status=query.status,
        operation=query.operation,
        limit=query.limit,
        cursor=query.cursor,
    )
    served = svc.registry.served_queues(SERVED_MAX_AGE)
    body: dict[str, Any] = {
        "jobs": [job_body(svc, job, served) for job in jobs],
        "next_cursor": cursor,
    }
    if cursor is not None:
        body["links"] = {"next": f"/v1/jobs?limit={query.limit}&cursor={cursor}"}
    return jsonify(body)


@bp.get("/<job_id>")
@documented("jobs.get", Answer.JOB, waits=True)
@require("read")
def get_job(job_id: str) -> Response:
    """The job; with ``?wait=N`` (or ``Prefer: wait=N``) waits up to N s for it to end (wakes
    on completion).

    Always ``200`` with the job, whatever its state: reading a job is a successful read even
    when the job is still running or failed (its ``error`` says how).
    """
    svc = services()
    job = svc.jobs.get(job_id, current_token().tenant)
    wait = requested_wait(svc.settings.max_wait_seconds)
    if wait and not job.status.terminal:
        job = svc.jobs.wait(job_id, wait) or job
    return job_response(svc, job, 200, None if wait is None else f"wait={wait}")


@bp.delete("/<job_id>")
@documented("jobs.cancel", Answer.JOB, conflicts=True)
@require("write")
def cancel_job(job_id: str) -> Response:
    """Cancel a queued job (it never runs); a running or finished job is ``409``.

    No Celery revoke is broadcast: the relay drops a cancelled job's message and a worker skips
    it (the job record is the source of truth), which holds across restarts, unlike revokes.
    """
    svc = services()
    job = svc.jobs.get(job_id, current_token().tenant)
    if job.status != JobStatus.QUEUED:
        raise Conflict(f"job {job_id} is {job.status.value} and cannot be cancelled")
    cancelled = svc.jobs.cancel(job_id)
    if cancelled is None:
        raise Conflict(f"job {job_id} ended before it could be cancelled")
    return job_response(svc, cancelled, 200)


@bp.get("/<job_id>/events")
@documented("jobs.events", Answer.STREAM)
@require("read")
def job_events(job_id: str) -> Response:
    """Server-Sent Events of the job's transitions until it ends."""
    svc = services()
    job = svc.jobs.get(job_id, current_token().tenant)

    def stream() -> Iterator[str]:
        yield _sse("job", job_body(svc, job))
        if job.status.terminal:
            return
        for event in svc.jobs.events(job_id, timeout=300):
            if not event:
                yield ": keep-alive\n\n"
                continue
            current = svc.jobs.get(job_id)
            yield _sse(event["event"], job_body(svc, current))

    return Response(stream_with_context(stream()), mimetype="text/event-stream")


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"

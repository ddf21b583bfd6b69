"""How a job is shown to clients: the stored record, links, and why it is still waiting."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from api.services import Services
from nube.catalog import CATALOG
from nube.jobs import Job, JobStatus


def job_body(svc: Services, job: Job, served: set[str] | None = None) -> dict[str, Any]:
    """The job as clients see it; ``served`` (the queues with live consumers) is read from the
    registry when not given, so a list reads it once for all its jobs."""
    body = job.model_dump(mode="json", exclude={"seq"})
    body["links"] = {
        "self": f"/v1/jobs/{job.id}",
        "events": f"/v1/jobs/{job.id}/events",
    }
    if job.status == JobStatus.QUEUED:
        body["waiting"] = waiting_reason(
            job, svc.registry.served_queues() if served is None else served
        )
    return body


def waiting_reason(job: Job, served: set[str]) -> str | None:
    """Says so when no live agent or worker would pick the job up."""
    relayed = any(event.event == "relayed" for event in job.history)
    if not relayed and "nube.ingress" not in served:
        return "no live agent serves queue 'nube.ingress'; the job waits until one starts"
    if job.queue not in served:
        return f"no live worker serves queue '{job.queue}'; the job waits until one starts"
    return None


def job_response(
    svc: Services, job: Job, waited: bool = False, wait: int = 0, unfinished: int = 202
) -> Response:
    """``unfinished`` (202 for a submission) while the job runs; once terminal, 200 (201 for a
    finished create)."""
    response = jsonify(job_body(svc, job))
    if not job.status.terminal:
        response.status_code = unfinished
    elif job.status == JobStatus.SUCCEEDED and CATALOG.get(job.operation).creates:
        response.status_code = 201
    else:
        response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if waited:
        response.headers["Preference-Applied"] = f"wait={wait}"
    return response

"""How a job is shown to clients: the stored record, links, and why it is still waiting; and
how an operation answers from its job (the resource, the job, or the job's error)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from api.problems import problem
from api.services import Services
from api.waiting import Preferences
from nube.catalog import Operation
from nube.errors import Cancelled, error_class
from nube.jobs import Job, JobError, JobStatus

#: How old the registry's answer may be in a job's representation (seconds).
SERVED_MAX_AGE = 1.0


def job_body(svc: Services, job: Job, served: set[str] | None = None) -> dict[str, Any]:
    """The job as clients see it; ``served`` (the queues with live consumers) is read from the
    registry when not given, so a list reads it once for all its jobs."""
    body = job.model_dump(mode="json", exclude={"seq"})
    body["links"] = {
        "self": job_url(job),
        "events": f"{job_url(job)}/events",
    }
    if job.status == JobStatus.QUEUED:
        body["waiting"] = waiting_reason(
            job, svc.registry.served_queues(SERVED_MAX_AGE) if served is None else served
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
    svc: Services, job: Job, status: int = 200, applied: str | None = None
) -> Response:
    """The job as the answer, at ``status``, with its ``Location`` (and ``Preference-Applied``
    when the answer honours a preference)."""
    response = jsonify(job_body(svc, job))
    response.status_code = status
    response.headers["Location"] = job_url(job)
    if applied:
        response.headers["Preference-Applied"] = applied
    return response


def operation_response(
    svc: Services, op: Operation, job: Job, prefs: Preferences, waited: bool
) -> Response:
    """The answer to a catalog operation, from its job as it is after any wait.

    - the job has not ended: ``202`` with the job;
    - it succeeded: a read (``GET``) answers ``200`` with the resource (the job's result, the
      job linked); a change answers ``200`` with the job (``201`` where it created something);
    - it failed or was cancelled: the error's own status (:func:`job_problem`).

    ``Preference-Applied`` names the ``wait`` honoured (``waited``), and ``respond-async`` when
    the answer is the ``202`` it asked for.
    """
    honoured = [f"wait={prefs.wait}"] if waited and prefs.wait is not None else []
    if not job.status.terminal:
        if prefs.respond_async:
            honoured.insert(0, "respond-async")
        response = job_response(svc, job, 202, ", ".join(honoured))
    elif job.status != JobStatus.SUCCEEDED:
        response = job_problem(job, ", ".join(honoured))
    elif op.method == "GET":
        response = jsonify(job.result)
        response.headers["Link"] = f'<{job_url(job)}>; rel="related"'
        if honoured:
            response.headers["Preference-Applied"] = ", ".join(honoured)
    else:
        response = job_response(svc, job, 201 if op.creates else 200, ", ".join(honoured))
    response.headers["Vary"] = "Prefer"
    return response


def job_problem(job: Job, applied: str | None = None) -> Response:
    """A job that failed (or was cancelled) as problem+json with its error's own status: the
    error's ``code``, ``detail`` (its message), ``details``, ``retryable``, its
    ``allowed_actions`` at the top (where the error names them) and the ``job``'s URL (also in
    ``Location`` and ``Link``)."""
    error = job.error or JobError.of(Cancelled().to_dict())
    title = error.label if error.label != error.code else None
    cls = error_class(error.code, title)
    status = error.status or cls.status
    extra: dict[str, Any] = {"retryable": error.retryable, "job": job_url(job)}
    if error.details:
        extra["details"] = error.details
        if "allowed_actions" in error.details:
            extra["allowed_actions"] = error.details["allowed_actions"]
    response = problem(status, error.code, title or cls.title, error.message, **extra)
    response.headers["Location"] = job_url(job)
    response.headers["Link"] = f'<{job_url(job)}>; rel="related"'
    if "retry_after" in error.details:
        response.headers["Retry-After"] = str(error.details["retry_after"])
    if applied:
        response.headers["Preference-Applied"] = applied
    return response


def job_url(job: Job) -> str:
    return f"/v1/jobs/{job.id}"

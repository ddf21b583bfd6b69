"""How a job is shown to clients: the stored record, links, and why it is still waiting; and
how an operation answers from its job (the resource, the job, or the job's error)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from api.problems import problem
from api.services import Services
from api.waiting import Preferences
from nube.catalog import CATALOG, Operation
from nube.errors import Cancelled, error_class
from nube.jobs import Job, JobError, JobStatus
from nube.nodes import LAST_SEEN, lost_nodes, when

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
            job, svc.registry.served_queues(SERVED_MAX_AGE) if served is None else served, svc
        )
    return body


def waiting_reason(job: Job, served: set[str], svc: Services | None = None) -> str | None:
    """Says so when no live agent or worker would pick the job up; for a queue pinned to a
    node (``<service>.<node>``), what the agent's node watch knows of that node (read from
    ``svc``'s Redis)."""
    relayed = any(event.event == "relayed" for event in job.history)
    if not relayed and "nube.ingress" not in served:
        return "no live agent serves queue 'nube.ingress'; the job waits until one starts"
    if job.queue in served:
        return None
    reason = f"no live worker serves queue '{job.queue}'"
    service, dot, node = job.queue.partition(".")
    if svc is None or not dot or service not in CATALOG.services():
        return f"{reason}; the job waits until one starts"
    return f"{reason}: {_node_state(svc, node)}"


def _node_state(svc: Services, node: str) -> str:
    """Whether ``node`` is lost, else when it was last heard of, and what becomes of its jobs."""
    lost = lost_nodes(svc.redis).get(node)
    if lost is not None:
        return (
            f"node '{node}' is lost (silent since {when(float(lost['last_seen']))}, declared "
            f"lost at {when(float(lost['declared_at']))}); the job fails node_lost"
        )
    seen = svc.redis.hget(LAST_SEEN, node)
    heard = f"node '{node}' was last heard of at {when(float(seen))}" if seen else ""
    limit = svc.settings.node_lost_seconds
    outcome = (
        f"the job waits for it, and fails node_lost if the node stays silent for "
        f"NUBE_NODE_LOST_SECONDS ({limit} s)"
        if limit
        else "the job waits until it is back"
    )
    return f"{heard}; {outcome}" if heard else f"node '{node}': {outcome}"


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
